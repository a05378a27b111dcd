package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// catalog caches the names, comments and size estimates of the file's
// tables. duckdb_tables() and duckdb_columns() list every table of the
// file at each call, filtered or not (16 ms each with 3,000 tables), so
// looking tables up one by one through them made creating, or touching
// for the first time in a run, thousands of tables quadratic (an initial
// copy of 3,000 tables took 113-154 s). The cache is read once, when first
// needed, and kept true by the sink's own DDL: a table it creates is
// added, its comments are recorded as it sets them, and the rarer
// statements that rename, drop or rebuild tables drop the cache, to be
// read again, as a rollback does. Columns are read table by table with
// DESCRIBE, which looks up that table alone (columns).
type catalog struct {
	ok     bool
	tables map[tableRef]*catTable
	// folded lists, by lower-cased name, the tables whose names differ
	// from it at most in letter case (as the sink's checks compare them).
	folded map[tableRef][]string
}

type catTable struct {
	view    bool // a view: columns only (claim refuses it)
	comment string
	// size is DuckDB's estimate of the table's rows when the cache was
	// read (0 for a table created since), or -1: already used (info reads
	// it once; later it may be stale, so it is asked for again).
	size int64
}

func fold(schemaName, table string) tableRef {
	return tableRef{strings.ToLower(schemaName), strings.ToLower(table)}
}

// catalog returns the cached catalog, reading it if needed.
func (s *Sink) catalog(ctx context.Context) (*catalog, error) {
	c := &s.cat
	if c.ok {
		return c, nil
	}
	rows, err := s.conn.QueryContext(ctx, `SELECT schema_name, table_name, comment, estimated_size FROM duckdb_tables()
		WHERE database_name = ? AND NOT temporary`, Catalog)
	if err != nil {
		return nil, fmt.Errorf("list target tables: %w", err)
	}
	defer rows.Close()
	c.tables, c.folded = map[tableRef]*catTable{}, map[tableRef][]string{}
	for rows.Next() {
		var sch, name string
		var comment sql.NullString
		var size sql.NullInt64
		if err := rows.Scan(&sch, &name, &comment, &size); err != nil {
			return nil, fmt.Errorf("list target tables: %w", err)
		}
		c.add(sch, name, comment.String, size.Int64)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list target tables: %w", err)
	}
	// A user's view under a source table's name is no table of walmirror's
	// (claim says so), as duckdb_columns() made it before.
	views, err := s.conn.QueryContext(ctx, `SELECT schema_name, view_name FROM duckdb_views()
		WHERE database_name = ? AND NOT internal AND NOT temporary`, Catalog)
	if err != nil {
		return nil, fmt.Errorf("list target views: %w", err)
	}
	defer views.Close()
	for views.Next() {
		var sch, name string
		if err := views.Scan(&sch, &name); err != nil {
			return nil, fmt.Errorf("list target views: %w", err)
		}
		c.tables[tableRef{sch, name}] = &catTable{view: true, size: -1}
	}
	if err := views.Err(); err != nil {
		return nil, fmt.Errorf("list target views: %w", err)
	}
	c.ok = true
	return c, nil
}

// dropCatalog forgets the cached catalog after DDL that renamed, dropped
// or rebuilt tables, or a rollback.
func (s *Sink) dropCatalog() { s.cat = catalog{} }

func (c *catalog) add(schemaName, table, comment string, size int64) {
	ref := tableRef{schemaName, table}
	if t, ok := c.tables[ref]; ok {
		t.comment, t.size = comment, size
		return
	}
	c.tables[ref] = &catTable{comment: comment, size: size}
	f := fold(schemaName, table)
	c.folded[f] = append(c.folded[f], table)
}

// table returns schemaName.table (exactly so named), or nil.
func (c *catalog) table(schemaName, table string) *catTable {
	return c.tables[tableRef{schemaName, table}]
}

// caseTwin returns a table of schemaName whose name differs from table in
// letter case only, if there is one.
func (c *catalog) caseTwin(schemaName, table string) (string, bool) {
	for _, n := range c.folded[fold(schemaName, table)] {
		if n != table {
			if ct, ok := c.tables[tableRef{schemaName, n}]; ok && !ct.view {
				return n, true
			}
		}
	}
	return "", false
}

// columns lists the columns of the target table schemaName.table, in
// order; none when no table is so named.
func (s *Sink) columns(ctx context.Context, schemaName, table string) ([]columnInfo, error) {
	c, err := s.catalog(ctx)
	if err != nil {
		return nil, err
	}
	if c.table(schemaName, table) == nil {
		return nil, nil
	}
	// DESCRIBE spells types as duckdb_columns() does (checked in
	// TestCatalogCache).
	rows, err := s.conn.QueryContext(ctx, "DESCRIBE "+TableName(schemaName, table))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []columnInfo
	var null, key, def, extra sql.NullString
	for rows.Next() {
		var ci columnInfo
		if err := rows.Scan(&ci.name, &ci.typ, &null, &key, &def, &extra); err != nil {
			return nil, err
		}
		out = append(out, ci)
	}
	return out, rows.Err()
}

// tableSize returns DuckDB's estimate of the rows of schemaName.table.
func (s *Sink) tableSize(ctx context.Context, schemaName, table string) (int64, error) {
	c, err := s.catalog(ctx)
	if err != nil {
		return 0, err
	}
	if ct := c.table(schemaName, table); ct != nil && ct.size >= 0 {
		n := ct.size
		ct.size = -1
		return n, nil
	}
	var n int64
	err = s.conn.QueryRowContext(ctx, "SELECT estimated_size FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = ?",
		Catalog, schemaName, table).Scan(&n)
	return n, err
}
