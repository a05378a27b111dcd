// Package sqlrows reads common result shapes through database/sql, for the
// sinks that use it (DuckDB, SQLite).
package sqlrows

import (
	"context"
	"database/sql"
)

// Querier is what runs a query: *sql.DB, *sql.Conn or *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Uint32s returns the first column of every row of query, read as an
// integer that fits 32 bits unsigned (an OID).
func Uint32s(ctx context.Context, q Querier, query string, args ...any) ([]uint32, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uint32
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, uint32(v))
	}
	return out, rows.Err()
}
