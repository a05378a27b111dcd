package verify

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/lsn"
)

// PostgresReader reads a PostgreSQL copy in one repeatable-read, read-only
// transaction: every table as of one moment.
type PostgresReader struct {
	conn *pgx.Conn
	tx   pgx.Tx
}

// OpenPostgres connects to a PostgreSQL copy (a postgres:// URL) and opens
// the read transaction. Values are read in their text form, under the
// session settings walmirror's source connections use.
func OpenPostgres(ctx context.Context, url string) (*PostgresReader, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse target URL: %w", err)
	}
	for k, v := range map[string]string{"DateStyle": "ISO", "IntervalStyle": "postgres", "TimeZone": "UTC",
		"extra_float_digits": "3", "bytea_output": "hex", "application_name": "walmirror verify"} {
		cfg.RuntimeParams[k] = v
	}
	// Text results: the canonical form is built from PostgreSQL's text output.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the target: %w", err)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("begin a read transaction on the target: %w", err)
	}
	return &PostgresReader{conn: conn, tx: tx}, nil
}

// Close ends the transaction and the connection.
func (r *PostgresReader) Close() error {
	ctx := context.Background()
	_ = r.tx.Rollback(ctx)
	return r.conn.Close(ctx)
}

// Scan reads the copy of t: the table of the same schema and name.
func (r *PostgresReader) Scan(ctx context.Context, t *Table, sorted bool, fn func(Row) error) error {
	name := quoteIdent(t.Schema) + "." + quoteIdent(t.Name)
	var have []string
	err := r.tx.QueryRow(ctx, `SELECT coalesce(array_agg(attname::text), '{}') FROM pg_attribute
		WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, name).Scan(&have)
	if err != nil {
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if len(have) == 0 {
		return fmt.Errorf("%s: %w", name, ErrNoTable)
	}
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		if !hasColumn(have, c.Name, false) {
			return fmt.Errorf("the copy's table %s has no column %q", name, c.Name)
		}
		cols[i] = quoteIdent(c.Name)
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + name
	if sorted {
		q += " ORDER BY " + pgOrderBy(t)
	}
	rows, err := r.tx.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	defer rows.Close()
	var b rowBuilder
	for rows.Next() {
		b.reset()
		for i, v := range rows.RawValues() {
			if v == nil {
				b.null()
			} else {
				b.text(t.cols[i], v)
			}
		}
		if err := fn(b.row()); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

// hasColumn looks a column up by name (SQLite and DuckDB ignore case).
func hasColumn(have []string, name string, foldCase bool) bool {
	for _, h := range have {
		if h == name || foldCase && strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

var _ Reader = (*PostgresReader)(nil)

// Position reads the copy's stored position in the read transaction (its
// first query fixes the transaction's snapshot).
func (r *PostgresReader) Position(ctx context.Context) (lsn.LSN, error) {
	var text string
	if err := r.tx.QueryRow(ctx, `SELECT lsn::text FROM _walmirror.state WHERE id = 1`).Scan(&text); err != nil {
		return 0, err
	}
	return lsn.Parse(text)
}

var _ PositionReader = (*PostgresReader)(nil)
