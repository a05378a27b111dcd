package duckdb_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/duckdb"
)

// TestWriteNewCollision: rows WriteNew is told are new but whose key the
// table holds (or that repeat a key among themselves) fail the transaction
// loudly, naming the key, and leave the table as it was: the check put off
// until commit still runs. For an integer key (checked at commit, over the
// rows' key range) and a text one (checked by the statement).
func TestWriteNewCollision(t *testing.T) {
	ctx := t.Context()
	s := openSink(t, filepath.Join(t.TempDir(), "new.duckdb"))
	ik := schema.NewTable(1, "public", "ik", schema.IdentityDefault, []schema.Column{
		{Name: "k", TypeID: schema.OIDInt8, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	tk := schema.NewTable(2, "public", "tk", schema.IdentityDefault, []schema.Column{
		{Name: "k", TypeID: schema.OIDText, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	rows := func(from, to int) []schema.Tuple {
		var out []schema.Tuple
		for i := from; i <= to; i++ {
			out = append(out, text(strconv.Itoa(i), "v"+strconv.Itoa(i)))
		}
		return out
	}
	// The first chunk into emptied tables, then a second one past it.
	tx(t, s, func(ctx context.Context) error {
		for _, tbl := range []*schema.Table{ik, tk} {
			if err := s.EnsureTable(ctx, tbl); err != nil {
				return err
			}
			if err := s.Truncate(ctx, []*schema.Table{tbl}); err != nil {
				return err
			}
			if err := s.WriteNew(ctx, tbl, rows(1, 10)); err != nil {
				return err
			}
		}
		return nil
	})
	tx(t, s, func(ctx context.Context) error {
		for _, tbl := range []*schema.Table{ik, tk} {
			if err := s.WriteNew(ctx, tbl, rows(11, 20)); err != nil {
				return err
			}
		}
		return nil
	})
	count := func(name string) string {
		var n, keys int
		if err := s.DB().QueryRowContext(ctx, `SELECT count(*), count(DISTINCT k) FROM public.`+name).Scan(&n, &keys); err != nil {
			t.Fatal(err)
		}
		return strconv.Itoa(n) + "," + strconv.Itoa(keys)
	}
	for _, name := range []string{"ik", "tk"} {
		if got := count(name); got != "20,20" {
			t.Fatalf("%s: count, distinct keys = %s, want 20,20", name, got)
		}
	}
	for _, c := range []struct {
		name string
		tbl  *schema.Table
		rows []schema.Tuple
		key  string
	}{
		{"integer key the table holds", ik, append(rows(21, 30), text("7", "again")), `("k")=(7)`},
		{"integer key twice in the rows", ik, append(rows(21, 30), text("25", "again")), `("k")=(25)`},
		{"integer key held, rows past bulkRows", ik, append(rows(1000, 130_000), text("3", "again")), `("k")=(3)`},
		{"text key the table holds", tk, append(rows(21, 30), text("7", "again")), `("k")=(7)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := s.Begin(ctx); err != nil {
				t.Fatal(err)
			}
			err := s.WriteNew(ctx, c.tbl, c.rows)
			if err == nil {
				err = s.Commit(ctx, schema.State{LSN: 100, Slot: "s", SystemID: "1", Phase: schema.PhaseStreaming})
			} else {
				s.Rollback(ctx)
			}
			if err == nil || !strings.Contains(err.Error(), c.key) {
				t.Fatalf("WriteNew of a key already there = %v, want an error naming %s", err, c.key)
			}
			t.Log(err)
			if got := count(c.tbl.Name); got != "20,20" {
				t.Errorf("after the failed transaction: count, distinct keys = %s, want 20,20", got)
			}
		})
	}
	// The sink goes on after such a failure.
	tx(t, s, func(ctx context.Context) error { return s.WriteNew(ctx, ik, rows(21, 30)) })
	if got := count("ik"); got != "30,30" {
		t.Errorf("count, distinct keys = %s, want 30,30", got)
	}
}

// The engine finds WriteNew by type assertion (apply's newRowsWriter).
var _ interface {
	WriteNew(ctx context.Context, t *schema.Table, rows []schema.Tuple) error
} = (*duckdb.Sink)(nil)
