package verify

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
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
		"extra_float_digits": "3", "bytea_output": "hex", "lc_monetary": "C", "application_name": "walmirror verify",
		// pgx's simple protocol quotes arguments for this setting only: a
		// target database that sets it off refused every query (helper-104).
		"standard_conforming_strings": "on"} {
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
	return r.scan(ctx, t, sorted, "", fn)
}

// name is the copy's table for t, quoted.
func (r *PostgresReader) name(t *Table) string {
	return quoteIdent(t.Schema) + "." + quoteIdent(t.Name)
}

// columnTypes returns the copy's columns of t's table by name, with
// their types; ErrNoTable when it has no such table.
func (r *PostgresReader) columnTypes(ctx context.Context, t *Table) (map[string]uint32, error) {
	name := r.name(t)
	rows, err := r.tx.Query(ctx, `SELECT attname::text, atttypid FROM pg_attribute
		WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, name)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	have := map[string]uint32{}
	var col string
	var typ uint32
	if _, err := pgx.ForEachRow(rows, []any{&col, &typ}, func() error { have[col] = typ; return nil }); err != nil {
		return nil, fmt.Errorf("look up %s: %w", name, err)
	}
	if len(have) == 0 {
		return nil, fmt.Errorf("%s: %w", name, ErrNoTable)
	}
	return have, nil
}

func (r *PostgresReader) scan(ctx context.Context, t *Table, sorted bool, where string, fn func(Row) error) error {
	name := r.name(t)
	have, err := r.columnTypes(ctx, t)
	if err != nil {
		return err
	}
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		if _, ok := have[c.Name]; !ok {
			return fmt.Errorf("the copy's table %s has no column %q", name, c.Name)
		}
		cols[i] = quoteIdent(c.Name)
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + name
	if where != "" {
		q += " WHERE " + where
	}
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

func (r *PostgresReader) sumTypes(ctx context.Context, t *Table) ([]uint32, bool, error) {
	have, err := r.columnTypes(ctx, t)
	if err != nil {
		return nil, false, err
	}
	types := make([]uint32, len(t.Columns))
	for i, c := range t.Columns {
		types[i] = have[c.Name]
	}
	var ok bool
	if err := r.tx.QueryRow(ctx, sumSetup).Scan(&ok); err != nil {
		return nil, false, err
	}
	return types, ok, nil
}

// query runs q in the read transaction and calls fn with each row's
// values in text form.
func (r *PostgresReader) query(ctx context.Context, q string, fn func([][]byte) error) error {
	rows, err := r.tx.Query(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows.RawValues()); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (r *PostgresReader) sumRanges(ctx context.Context, t *Table, rowHash string, shift uint, lo, hi int64, fn func(*int64, rangeSum) error) error {
	return r.query(ctx, sumQuery(t, r.name(t), rowHash, shift, lo, hi), func(vals [][]byte) error { return readSums(vals, fn) })
}

func (r *PostgresReader) scanRange(ctx context.Context, t *Table, lo, hi int64, fn func(Row) error) error {
	return r.scan(ctx, t, true, rangeWhere(t, lo, hi), fn)
}

func (r *PostgresReader) keyBounds(ctx context.Context, t *Table) (lo, hi int64, ok bool, err error) {
	err = r.query(ctx, keyBoundsQuery(t, r.name(t)), func(vals [][]byte) error {
		lo, hi, ok, err = readBounds(vals)
		return err
	})
	return lo, hi, ok, err
}

// keyIndexed reports whether an index of the copy's table leads with t's
// key column (so a range of keys is read without a scan of the table).
func (r *PostgresReader) keyIndexed(ctx context.Context, t *Table) (bool, error) {
	var ok bool
	err := r.tx.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
		WHERE i.indrelid = to_regclass($1) AND a.attname = $2 AND i.indpred IS NULL)`, r.name(t), t.Columns[t.keys[0]].Name).Scan(&ok)
	return ok, err
}

var _ pgSummer = (*PostgresReader)(nil)

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

// Kept is SQLReader.Kept for a PostgreSQL copy.
func (r *PostgresReader) Kept(ctx context.Context, published []*schema.Table) ([]string, error) {
	rows, err := r.tx.Query(ctx, `SELECT schema_name, table_name FROM _walmirror.tables WHERE relid IS NULL ORDER BY 1, 2`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	live := make(map[[2]string]bool, len(published))
	for _, t := range published {
		live[[2]string{t.Schema, t.Name}] = true
	}
	var names []string
	for rows.Next() {
		var n [2]string
		if err := rows.Scan(&n[0], &n[1]); err != nil {
			return nil, err
		}
		if !live[n] {
			names = append(names, schema.DisplayName(n[0], n[1]))
		}
	}
	return names, rows.Err()
}

func (r *PostgresReader) sumBuckets(ctx context.Context, t *Table, h sideHash, bits uint, within *bucketFilter, fn func(*int64, rangeSum) error) error {
	return r.query(ctx, pgBucketSums(r.name(t), h, bits, within), func(vals [][]byte) error { return readSums(vals, fn) })
}

func (r *PostgresReader) scanBuckets(ctx context.Context, t *Table, h sideHash, f *bucketFilter, sorted bool, fn func(Row) error) error {
	return r.scan(ctx, t, sorted, f.sql(h.bucketKey()), fn)
}

var _ bucketSummer = (*PostgresReader)(nil)
