// Package mirrortest reads a source table and its copy into comparable form
// for end-to-end tests: every row rendered as one line of canonical text,
// sorted, so two multisets of rows compare as two string slices.
package mirrortest

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" driver
	"github.com/jackc/pgx/v5"
	_ "github.com/mattn/go-sqlite3" // the "sqlite3" driver
)

// SourceRows runs query on the source and renders each row from PostgreSQL's
// text output ("NULL" for NULL), joined by " | ", sorted.
func SourceRows(ctx context.Context, dsn, query string) ([]string, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	cfg.RuntimeParams["TimeZone"] = "UTC"
	cfg.RuntimeParams["client_encoding"] = "UTF8" // the copies hold UTF-8, whatever the database's encoding
	// The simple protocol needs it (a database may set it off).
	cfg.RuntimeParams["standard_conforming_strings"] = "on"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		raw := rows.RawValues()
		vals := make([]string, len(raw))
		for i, v := range raw {
			if v == nil {
				vals[i] = "NULL"
			} else {
				vals[i] = string(v)
			}
		}
		out = append(out, strings.Join(vals, " | "))
	}
	slices.Sort(out)
	return out, rows.Err()
}

// SQLiteRows runs query on a SQLite file (read-only) and renders each row:
// integers in decimal, reals in shortest form, text as is, blobs as
// PostgreSQL's \x hex, "NULL" for NULL.
func SQLiteRows(ctx context.Context, path, query string) ([]string, error) {
	// Escaped as the SQLite sink opens it: a path may hold '#' or '?' (a
	// subtest's temporary directory "name#01" did, and the rows read were
	// another file's).
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: "mode=ro"}
	return sqlRows(ctx, "sqlite3", u.String(), query)
}

// DuckDBRows does the same for a DuckDB file (opened read-only: no writer
// may hold it).
func DuckDBRows(ctx context.Context, path, query string) ([]string, error) {
	return sqlRows(ctx, "duckdb", path+"?access_mode=read_only", query)
}

func sqlRows(ctx context.Context, driver, dsn, query string) ([]string, error) {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		s := make([]string, len(vals))
		for i, v := range vals {
			s[i] = Render(v)
		}
		out = append(out, strings.Join(s, " | "))
	}
	slices.Sort(out)
	return out, rows.Err()
}

// Render shows a database/sql value the way the comparisons expect.
func Render(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		switch {
		case math.IsInf(v, 1):
			return "Infinity"
		case math.IsInf(v, -1):
			return "-Infinity"
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	case string:
		return v
	case []byte:
		return `\x` + hex.EncodeToString(v)
	}
	return fmt.Sprint(v)
}

// Diff describes how two sorted row lists differ, for test failures.
func Diff(want, got []string) string {
	var missing, extra []string
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j >= len(got) || i < len(want) && want[i] < got[j]:
			missing = append(missing, want[i])
			i++
		case i >= len(want) || got[j] < want[i]:
			extra = append(extra, got[j])
			j++
		default:
			i++
			j++
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return ""
	}
	cut := func(s []string) []string { return s[:min(len(s), 5)] }
	return fmt.Sprintf("%d rows missing from the copy (first: %q), %d extra (first: %q)", len(missing), cut(missing), len(extra), cut(extra))
}
