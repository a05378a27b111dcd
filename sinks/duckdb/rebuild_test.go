package duckdb_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/schema"
)

// TestRebuildNameTaken: a published table may bear the name the sink
// gives a table's stand-in while it makes it again
// (_walmirror_rebuild_<table>, in any letter case). Making foo again (a
// column added after its rows changed in the same transaction; its key
// index shed before a TRUNCATE) dropped that table's copy, and the next
// write made it again, empty (helper-141).
func TestRebuildNameTaken(t *testing.T) {
	s := openSink(t, filepath.Join(t.TempDir(), "rebuild.duckdb"))
	s.KeyIndexRows = 1
	db := s.DB()
	cols := func(extra ...schema.Column) []schema.Column {
		return append([]schema.Column{
			{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
			{Name: "v", TypeID: schema.OIDText, Typmod: -1},
		}, extra...)
	}
	foo := schema.NewTable(1, "public", "foo", schema.IdentityDefault, cols())
	other := schema.NewTable(2, "public", "_WALMIRROR_REBUILD_FOO", schema.IdentityDefault, cols())
	tx(t, s, func(ctx context.Context) error {
		for _, tb := range []*schema.Table{foo, other} {
			if err := s.EnsureTable(ctx, tb); err != nil {
				return err
			}
		}
		if err := s.Write(ctx, &schema.Batch{Table: foo, Inserts: []schema.Tuple{text("1", "a")}}); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: other, Inserts: []schema.Tuple{text("1", "kept"), text("2", "kept too")}})
	})
	want := func(step string) {
		t.Helper()
		got := readTable(t, db, "public", "_WALMIRROR_REBUILD_FOO", []string{"id", "v"}, "true ORDER BY id")
		if j := strings.Join(flatten(got), ","); j != "1,kept,2,kept too" {
			t.Fatalf("%s: the other table holds %q", step, j)
		}
	}
	// Rows changed, then a column added, in one transaction: foo is made again.
	foo2 := schema.NewTable(1, "public", "foo", schema.IdentityDefault, cols(schema.Column{Name: "w", TypeID: schema.OIDInt4, Typmod: -1}))
	foo2.Change = &schema.Change{Added: []string{"w"}}
	tx(t, s, func(ctx context.Context) error {
		if err := s.Write(ctx, &schema.Batch{Table: foo, Updates: []schema.Tuple{text("1", "b")}}); err != nil {
			return err
		}
		return s.EnsureTable(ctx, foo2)
	})
	want("after a rebuild")
	// foo has its key index now (KeyIndexRows 1, updated): a TRUNCATE
	// copies it without the index first.
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: foo2, Inserts: []schema.Tuple{text("2", "d", "8"), text("3", "e", "9")}})
	})
	for _, v := range []string{"c", "cc"} {
		tx(t, s, func(ctx context.Context) error {
			return s.Write(ctx, &schema.Batch{Table: foo2, Updates: []schema.Tuple{text("1", v, "7")}})
		})
	}
	if got := keyIndexes(t, db); !strings.Contains(strings.Join(got, ","), "foo") {
		t.Fatalf("foo has no key index to shed: %q", got)
	}
	tx(t, s, func(ctx context.Context) error { return s.Truncate(ctx, []*schema.Table{foo2}) })
	want("after the key index was shed")
	got := readTable(t, db, "public", "foo", []string{"id"}, "true")
	if len(got) != 0 {
		t.Fatalf("foo after TRUNCATE: %q", got)
	}
}

// TestReaddedCaseVariant: a column dropped and another added under its
// name in other letter case (DROP COLUMN v, ADD COLUMN "V", as PostgreSQL
// allows) takes the kept column's place under the new spelling, its rows
// NULL; before, every start stopped at "maps to the existing DuckDB column
// v" (helper-141).
func TestReaddedCaseVariant(t *testing.T) {
	s := openSink(t, filepath.Join(t.TempDir(), "readded.duckdb"))
	m := schema.NewTable(1, "public", "m", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, m); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: m, Inserts: []schema.Tuple{text("1", "a")}})
	})
	m2 := schema.NewTable(1, "public", "m", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "V", TypeID: schema.OIDInt4, Typmod: -1},
	})
	m2.Change = &schema.Change{Added: []string{"V"}, Dropped: []string{"v"}}
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, m2); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: m2, Inserts: []schema.Tuple{text("2", "7")}})
	})
	got := readTable(t, s.DB(), "public", "m", []string{"id", "V"}, "true ORDER BY id")
	if j := strings.Join(flatten(got), ","); j != "1,NULL,2,7" {
		t.Errorf("rows %s, want 1,NULL,2,7", j)
	}
}
