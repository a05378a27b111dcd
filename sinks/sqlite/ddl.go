package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/walmirror/walmirror/schema"
)

// TableName maps a source table to its SQLite name. SQLite has no schemas:
// public.t becomes t, and other schemas become "schema.table" with '%' and
// '.' percent-encoded inside each part, so no two source tables share a name
// and a name with a dot always came from a non-public schema. (SQLite ignores
// the case of ASCII letters in names: EnsureTable refuses a table whose name
// differs from an existing one only in case.)
func TableName(schemaName, table string) string {
	if schemaName == "public" {
		return escapePart(table)
	}
	return escapePart(schemaName) + "." + escapePart(table)
}

func escapePart(s string) string {
	if !strings.ContainsAny(s, "%.") {
		return s
	}
	return strings.NewReplacer("%", "%25", ".", "%2E").Replace(s)
}

func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// columnType is the declared type, chosen for its affinity: TEXT keeps
// numerics' exact digits (NUMERIC affinity would turn them into floats).
func columnType(k schema.Kind) string {
	switch k {
	case schema.KindInt, schema.KindBool:
		return "INTEGER"
	case schema.KindFloat:
		return "REAL"
	case schema.KindBytea:
		return "BLOB"
	default:
		return "TEXT"
	}
}

// tableInfo is what the sink derives once per table shape.
type tableInfo struct {
	t      *schema.Table
	name   string // quoted
	kinds  []schema.Kind
	cols   []string // quoted column names
	keyIdx []int
}

func (s *Sink) info(t *schema.Table) *tableInfo {
	if ti, ok := s.tables[t]; ok {
		return ti
	}
	ti := &tableInfo{t: t, name: quote(TableName(t.Schema, t.Name)), keyIdx: t.KeyIndexes()}
	for _, c := range t.Columns {
		ti.kinds = append(ti.kinds, schema.KindOf(c.TypeID))
		ti.cols = append(ti.cols, quote(c.Name))
	}
	s.tables[t] = ti
	return ti
}

// EnsureTable creates the table on first sight, or adds columns the source
// gained. Columns the source dropped are kept (with their data; new rows get
// NULL there) and reported, never dropped silently.
func (s *Sink) EnsureTable(ctx context.Context, t *schema.Table) error {
	name := TableName(t.Schema, t.Name)
	// SQLite names ignore the case of ASCII letters; PostgreSQL's do not.
	if lower := strings.ToLower(name); strings.HasPrefix(lower, "_walmirror_") || strings.HasPrefix(lower, "sqlite_") {
		return fmt.Errorf("source table %s maps to SQLite name %q, which is reserved (walmirror's or SQLite's own)", t.QualifiedName(), name)
	}
	// Refuse, rather than share, a table SQLite cannot tell from another
	// source table's ("Users" and "users").
	var other string
	err := s.conn.QueryRowContext(ctx, `SELECT name FROM sqlite_schema WHERE name = ? COLLATE NOCASE AND name <> ?`, name, name).Scan(&other)
	if err == nil {
		return fmt.Errorf("source table %s maps to SQLite name %q, which SQLite does not tell apart from the existing table %q (SQLite names ignore letter case)", t.QualifiedName(), name, other)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("inspect table %q: %w", name, err)
	}
	ti := s.info(t)
	rows, err := s.conn.QueryContext(ctx, `SELECT name, pk FROM pragma_table_info(?)`, name)
	if err != nil {
		return fmt.Errorf("inspect table %q: %w", name, err)
	}
	existing := map[string]bool{}
	for rows.Next() {
		var col string
		var pk int
		if err := rows.Scan(&col, &pk); err != nil {
			rows.Close()
			return err
		}
		existing[col] = true
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("inspect table %q: %w", name, err)
	}
	if len(existing) > 0 {
		if err := s.claim(ctx, t, name); err != nil {
			return err
		}
	}
	if len(existing) == 0 {
		defs := make([]string, len(t.Columns))
		for i := range t.Columns {
			defs[i] = ti.cols[i] + " " + columnType(ti.kinds[i])
		}
		if len(ti.keyIdx) > 0 {
			keys := make([]string, len(ti.keyIdx))
			for i, k := range ti.keyIdx {
				keys[i] = ti.cols[k]
			}
			defs = append(defs, "PRIMARY KEY ("+strings.Join(keys, ", ")+")")
		}
		if _, err := s.conn.ExecContext(ctx, "CREATE TABLE "+ti.name+" ("+strings.Join(defs, ", ")+")"); err != nil {
			return fmt.Errorf("create table %q: %w", name, err)
		}
		if _, err := s.conn.ExecContext(ctx, `INSERT INTO _walmirror_tables (name) VALUES (?)`, name); err != nil {
			return fmt.Errorf("record table %q as walmirror's: %w", name, err)
		}
		s.log.Info("created target table", "table", name, "columns", len(t.Columns))
		return nil
	}
	for i, c := range t.Columns {
		if existing[c.Name] {
			delete(existing, c.Name)
			continue
		}
		fill := t.Fills[c.Name]
		if err := fill.Check(t, c.Name); err != nil {
			return err
		}
		if _, err := s.conn.ExecContext(ctx, "ALTER TABLE "+ti.name+" ADD COLUMN "+ti.cols[i]+" "+columnType(ti.kinds[i])); err != nil {
			return fmt.Errorf("add column %q to %q: %w", c.Name, name, err)
		}
		if fill.Value.State == schema.Text {
			// Rows already here existed before the source added the column:
			// they hold its default (PostgreSQL's missing value) there.
			v, err := value(ti.kinds[i], fill.Value)
			if err != nil {
				return fmt.Errorf("value of added column %q for existing rows of %q: %w", c.Name, name, err)
			}
			if _, err := s.conn.ExecContext(ctx, "UPDATE "+ti.name+" SET "+ti.cols[i]+" = ?", v); err != nil {
				return fmt.Errorf("fill added column %q of %q: %w", c.Name, name, err)
			}
		}
		s.log.Info("added target column", "table", name, "column", c.Name, "existing_rows", fill)
	}
	for col := range existing {
		s.log.Warn("target column no longer in the source: kept, new rows get NULL", "table", name, "column", col)
	}
	return nil
}

// claim makes sure the existing table name is walmirror's: created by it,
// or, with Adopt, an empty table it now takes over.
func (s *Sink) claim(ctx context.Context, t *schema.Table, name string) error {
	var n int
	if err := s.conn.QueryRowContext(ctx, `SELECT count(*) FROM _walmirror_tables WHERE name = ?`, name).Scan(&n); err != nil {
		return fmt.Errorf("look up owner of table %q: %w", name, err)
	}
	if n > 0 {
		return nil
	}
	if !s.Adopt {
		return schema.NotOwned(t, quote(name))
	}
	var rows int
	if err := s.conn.QueryRowContext(ctx, "SELECT count(*) FROM (SELECT 1 FROM "+quote(name)+" LIMIT 1)").Scan(&rows); err != nil {
		return fmt.Errorf("inspect table %q: %w", name, err)
	}
	if rows > 0 {
		return schema.NotEmpty(t, quote(name))
	}
	if _, err := s.conn.ExecContext(ctx, `INSERT INTO _walmirror_tables (name) VALUES (?)`, name); err != nil {
		return fmt.Errorf("record table %q as walmirror's: %w", name, err)
	}
	s.log.Info("adopted existing target table", "table", name)
	return nil
}
