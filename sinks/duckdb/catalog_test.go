package duckdb

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/schema"
)

// TestCatalogCache: the cached catalog answers as DuckDB's own catalog
// does, through the sink's DDL and rollbacks: columns read with DESCRIBE
// carry duckdb_columns()'s type names (which EnsureTable compares with the
// types it would create), and the names and comments follow tables
// created, rolled back, renamed and rebuilt within one run.
func TestCatalogCache(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "cat.duckdb"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	col := func(name string, typ uint32, typmod int32) schema.Column {
		return schema.Column{Name: name, TypeID: typ, Typmod: typmod}
	}
	cols := []schema.Column{{Name: "id", TypeID: schema.OIDInt8, Typmod: -1, Key: true},
		col("b", schema.OIDBool, -1), col("i2", schema.OIDInt2, -1), col("i4", schema.OIDInt4, -1), col("o", schema.OIDOid, -1),
		col("f4", schema.OIDFloat4, -1), col("f8", schema.OIDFloat8, -1), col("n", schema.OIDNumeric, 18<<16|3+4),
		col("nn", schema.OIDNumeric, -1), col("by", schema.OIDBytea, -1), col("j", schema.OIDJSON, -1), col("jb", schema.OIDJSONB, -1),
		col("d", schema.OIDDate, -1), col("tm", schema.OIDTime, -1), col("ttz", schema.OIDTimeTZ, -1), col("ts", schema.OIDTimestamp, -1),
		col("tstz", schema.OIDTimestampTZ, -1), col("iv", schema.OIDInterval, -1), col("u", schema.OIDUUID, -1),
		col("ia", 1007, -1), col("ta", 1009, -1), col("x", 142, -1), col(`we"ird`, schema.OIDText, -1)}
	tbl := schema.NewTable(1, `s"q`, `T"b`, schema.IdentityDefault, cols)
	inTx := func(fn func() error) error {
		t.Helper()
		if err := s.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		if err := fn(); err != nil {
			if rerr := s.Rollback(ctx); rerr != nil {
				t.Fatal(rerr)
			}
			return err
		}
		if err := s.Commit(ctx, schema.State{LSN: 99, Slot: "s", SystemID: "1", Phase: schema.PhaseStreaming}); err != nil {
			t.Fatal(err)
		}
		return nil
	}
	if err := inTx(func() error { return s.EnsureTable(ctx, tbl) }); err != nil {
		t.Fatal(err)
	}
	// Columns as duckdb_columns() lists them, and as the sink reads them.
	catalogColumns := func(sch, name string) []columnInfo {
		t.Helper()
		rows, err := s.conn.QueryContext(ctx, `SELECT column_name, data_type FROM duckdb_columns()
			WHERE database_name = ? AND schema_name = ? AND table_name = ? ORDER BY column_index`, Catalog, sch, name)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []columnInfo
		for rows.Next() {
			var c columnInfo
			if err := rows.Scan(&c.name, &c.typ); err != nil {
				t.Fatal(err)
			}
			out = append(out, c)
		}
		return out
	}
	got, err := s.columns(ctx, tbl.Schema, tbl.Name)
	if err != nil {
		t.Fatal(err)
	}
	if want := catalogColumns(tbl.Schema, tbl.Name); len(want) != len(cols) || !reflect.DeepEqual(got, want) {
		t.Fatalf("columns:\n got %q\nwant %q", got, want)
	}
	for i, c := range cols {
		if want := planFor(c.TypeID, c.Typmod).typ; got[i].typ != want {
			t.Errorf("column %s: %s, created as %s", c.Name, got[i].typ, want)
		}
	}
	// Hand-made types too (a user's VARCHAR or wider type).
	if _, err := s.conn.ExecContext(ctx, `CREATE TABLE `+TableName("main", "hand")+` (a HUGEINT, b STRUCT(x INT, "y z" VARCHAR), c MAP(VARCHAR, INT), d INTEGER[3], e TIMESTAMP_NS, f ENUM('a', 'b'), g DECIMAL(4,0))`); err != nil {
		t.Fatal(err)
	}
	s.dropCatalog() // made behind the sink's back
	if got, err := s.columns(ctx, "main", "hand"); err != nil || !reflect.DeepEqual(got, catalogColumns("main", "hand")) {
		t.Errorf("columns of hand = %q, %v; want %q", got, err, catalogColumns("main", "hand"))
	}

	// A value a column cannot hold, in a table the same transaction
	// creates: the remedy says so (its ALTER would find no table).
	arr := schema.NewTable(6, "public", "arr", schema.IdentityDefault, []schema.Column{cols[0], col("a", 1007, -1)})
	twoDim := schema.Tuple{{State: schema.Text, Data: []byte("1")}, {State: schema.Text, Data: []byte("{{1,2},{3,4}}")}}
	writeArr := func() error {
		if err := s.EnsureTable(ctx, arr); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: arr, Inserts: []schema.Tuple{twoDim}})
	}
	if err := inTx(writeArr); err == nil || !strings.Contains(err.Error(), "--adopt-tables") {
		t.Errorf("unstorable value in a table created in its transaction: %v", err)
	}
	if err := inTx(func() error { return s.EnsureTable(ctx, arr) }); err != nil {
		t.Fatal(err)
	}
	if err := inTx(writeArr); err == nil || !strings.Contains(err.Error(), "VARCHAR") || strings.Contains(err.Error(), "--adopt-tables") {
		t.Errorf("unstorable value in an existing table: %v", err)
	}

	// A user's view under a source table's name is not walmirror's.
	if _, err := s.conn.ExecContext(ctx, `CREATE VIEW `+TableName("main", "v")+` AS SELECT 1 AS id`); err != nil {
		t.Fatal(err)
	}
	s.dropCatalog()
	view := schema.NewTable(5, "main", "v", schema.IdentityDefault, cols[:1])
	if err := inTx(func() error { return s.EnsureTable(ctx, view) }); err == nil || !strings.Contains(err.Error(), "walmirror did not create it") {
		t.Errorf("EnsureTable over a view: %v", err)
	}

	// A table differing in letter case only is refused in the same run as
	// the one it clashes with was created.
	twin := schema.NewTable(2, `s"q`, `t"B`, schema.IdentityDefault, cols[:2])
	if err := inTx(func() error { return s.EnsureTable(ctx, twin) }); err == nil || !strings.Contains(err.Error(), "letter case") {
		t.Errorf("EnsureTable of a case twin: %v", err)
	}
	// Created, then rolled back: created again.
	gone := schema.NewTable(3, "public", "gone", schema.IdentityDefault, cols[:3])
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureTable(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if err := s.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	write := func(tb *schema.Table, id string) error {
		if err := s.EnsureTable(ctx, tb); err != nil {
			return err
		}
		row := make(schema.Tuple, len(tb.Columns))
		row[0] = schema.Datum{State: schema.Text, Data: []byte(id)}
		for i := 1; i < len(row); i++ {
			row[i] = schema.Datum{State: schema.Null}
		}
		return s.Write(ctx, &schema.Batch{Table: tb, Inserts: []schema.Tuple{row}})
	}
	if err := inTx(func() error { return write(gone, "1") }); err != nil {
		t.Fatalf("table created again after a rollback: %v", err)
	}
	// Moved aside, then a new table under the old name (and the moved one
	// still written under its new name).
	if err := inTx(func() error { return s.MoveTable(ctx, "public", "gone", "gone_old") }); err != nil {
		t.Fatal(err)
	}
	again := schema.NewTable(4, "public", "gone", schema.IdentityDefault, cols[:5])
	old := schema.NewTable(3, "public", "gone_old", schema.IdentityDefault, cols[:3])
	if err := inTx(func() error {
		if err := write(again, "2"); err != nil {
			return err
		}
		return write(old, "3")
	}); err != nil {
		t.Fatal(err)
	}
	if got := catalogColumns("public", "gone"); len(got) != 5 {
		t.Errorf("new table gone has %d columns, want 5", len(got))
	}
	// The key changed: the comment follows, in the cache and the file.
	rekeyed := schema.NewTable(4, "public", "gone", schema.IdentityDefault, append([]schema.Column{cols[0], {Name: "b", TypeID: schema.OIDBool, Typmod: -1, Key: true}}, cols[2:5]...))
	if err := inTx(func() error { return s.EnsureTable(ctx, rekeyed) }); err != nil {
		t.Fatal(err)
	}
	var comment string
	if err := s.conn.QueryRowContext(ctx, `SELECT comment FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'public' AND table_name = 'gone'`, Catalog).Scan(&comment); err != nil {
		t.Fatal(err)
	}
	if want := tableComment(rekeyed); comment != want {
		t.Errorf("comment %q, want %q", comment, want)
	}
	c, err := s.catalog(context.WithoutCancel(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if ct := c.table("public", "gone"); ct == nil || ct.comment != comment {
		t.Errorf("cached comment %+v, want %q", ct, comment)
	}
}

// TestParseSize reads DuckDB's renderings of memory_limit.
func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"244 MiB":  244 << 20,
		"18.5 GiB": 37 << 29,
		"0 bytes":  0,
		"1.5 KiB":  1536,
		"2 GB":     2e9,
	} {
		if got, ok := parseSize(in); !ok || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "lots", "12 parsecs", "-1 MiB"} {
		if got, ok := parseSize(in); ok {
			t.Errorf("parseSize(%q) = %d, ok; want not ok", in, got)
		}
	}
}
