package duckdb_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/duckdb"
)

// keyIndexes lists the tables that have walmirror's key index, and the
// index's columns.
func keyIndexes(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT table_name || ' ' || expressions::varchar FROM duckdb_indexes()
		WHERE database_name = ? AND starts_with(index_name, '_walmirror_key_') ORDER BY 1`, duckdb.Catalog)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// kvTable is public.kv (k int8 key, v text).
func kvTable() *schema.Table {
	return schema.NewTable(1, "public", "kv", schema.IdentityDefault, []schema.Column{
		{Name: "k", TypeID: schema.OIDInt8, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
}

// TestKeyIndex: a keyed table gets walmirror's index on its key once it
// holds KeyIndexRows rows and a committed transaction updated or deleted
// rows of it by key; not before, not for inserts alone, not for a table
// with an index of its own, not when the index would not fit a quarter of
// the memory limit. A rename drops it (DuckDB renames no table an index
// depends on) and the next update builds it under the new name; values
// stay right throughout. A truncate drops it.
func TestKeyIndex(t *testing.T) {
	ctx := t.Context()
	s := openSink(t, filepath.Join(t.TempDir(), "idx.duckdb"))
	s.KeyIndexRows = 1000
	db := s.DB()
	tbl := kvTable()
	rows := func(n, from int) []schema.Tuple {
		out := make([]schema.Tuple, n)
		for i := range out {
			out[i] = text(strconv.Itoa(from+i), "v"+strconv.Itoa(from+i))
		}
		return out
	}
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: rows(500, 1)})
	})
	update := func(tbl *schema.Table, k string) {
		t.Helper()
		tx(t, s, func(ctx context.Context) error {
			return s.Write(ctx, &schema.Batch{Table: tbl, Updates: []schema.Tuple{text(k, "u"+k)}})
		})
	}
	update(tbl, "1")
	if got := keyIndexes(t, db); len(got) != 0 {
		t.Fatalf("500 rows, under KeyIndexRows: indexes %q, want none", got)
	}
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: rows(1000, 501)})
	})
	if got := keyIndexes(t, db); len(got) != 0 {
		t.Fatalf("after inserts alone: indexes %q, want none", got)
	}
	update(tbl, "2")
	if got := keyIndexes(t, db); strings.Join(got, ",") != "kv [k]" {
		t.Fatalf("after an update of 1,500 rows: indexes %q, want kv's on k", got)
	}
	// Lookups through the index find the rows; deletes too.
	tx(t, s, func(ctx context.Context) error {
		if err := s.Write(ctx, &schema.Batch{Table: tbl, Updates: []schema.Tuple{text("1000", "x"), text("3", "y")}, Deletes: []schema.Tuple{text("4", nil)}}); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{text("4", "again")}})
	})
	got := readTable(t, db, "public", "kv", []string{"k", "v"}, "k IN (1, 2, 3, 4, 1000) ORDER BY k")
	if j := strings.Join(flatten(got), ","); j != "1,u1,2,u2,3,y,4,again,1000,x" {
		t.Errorf("rows = %s", j)
	}
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{text("5", "dup")}}); err == nil {
		t.Error("an insert of a key already there succeeded with the index")
	}
	s.Rollback(ctx)

	// A rename: the index goes with the old name, and comes back under the
	// new one at the next update.
	tx(t, s, func(ctx context.Context) error { return s.MoveTable(ctx, "public", "kv", "kv2") })
	if got := keyIndexes(t, db); len(got) != 0 {
		t.Fatalf("after the rename: indexes %q, want none", got)
	}
	tbl2 := schema.NewTable(1, "public", "kv2", schema.IdentityDefault, tbl.Columns)
	update(tbl2, "6")
	if got := keyIndexes(t, db); strings.Join(got, ",") != "kv2 [k]" {
		t.Fatalf("after an update of the renamed table: indexes %q, want kv2's", got)
	}

	// Emptied, it loses the index (rows loaded next would each go into
	// it), and an update of its few new rows does not bring it back.
	tx(t, s, func(ctx context.Context) error {
		if err := s.Truncate(ctx, []*schema.Table{tbl2}); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl2, Inserts: rows(10, 1)})
	})
	update(tbl2, "9")
	if got := keyIndexes(t, db); len(got) != 0 {
		t.Fatalf("after a truncate and an update of 10 rows: indexes %q, want none", got)
	}
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: tbl2, Inserts: rows(1000, 11)})
	})
	update(tbl2, "6")
	if got := keyIndexes(t, db); strings.Join(got, ",") != "kv2 [k]" {
		t.Fatalf("after 1,010 rows and an update: indexes %q, want kv2's", got)
	}

	// A table with an index of its own gets none of walmirror's.
	own := schema.NewTable(2, "public", "own", schema.IdentityDefault, tbl.Columns)
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, own); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: own, Inserts: rows(1500, 1)})
	})
	if _, err := db.Exec(`CREATE INDEX mine ON public.own (v)`); err != nil {
		t.Fatal(err)
	}
	update(own, "7")
	if got := keyIndexes(t, db); strings.Join(got, ",") != "kv2 [k]" {
		t.Errorf("after an update of a table with its own index: indexes %q, want only kv2's", got)
	}

	// Nor one whose index would take over a quarter of memory_limit.
	if _, err := db.Exec(`SET memory_limit = '64MB'`); err != nil {
		t.Fatal(err)
	}
	big := schema.NewTable(3, "public", "big", schema.IdentityDefault, tbl.Columns)
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, big); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: big, Inserts: rows(600_000, 1)}) // 19 MB of index
	})
	update(big, "8")
	if got := keyIndexes(t, db); strings.Join(got, ",") != "kv2 [k]" {
		t.Errorf("after an update under a 64MB memory limit: indexes %q, want only kv2's", got)
	}
}

// TestKeyIndexOff: a negative KeyIndexRows never indexes.
func TestKeyIndexOff(t *testing.T) {
	s := openSink(t, filepath.Join(t.TempDir(), "off.duckdb"))
	s.KeyIndexRows = -1
	tbl := kvTable()
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{text("1", "a")}})
	})
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: tbl, Updates: []schema.Tuple{text("1", "b")}})
	})
	if got := keyIndexes(t, s.DB()); len(got) != 0 {
		t.Errorf("indexes %q, want none", got)
	}
}
