package memory_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/memory"
	"github.com/walmirror/walmirror/sinks/sinktest"
)

var _ apply.Sink = (*memory.Sink)(nil)

// TestContract runs the shared sink contract suite; Reopen opens a new
// sink on the same DB, as a restart in the same process does.
func TestContract(t *testing.T) {
	var mu sync.Mutex
	dbs := map[sinktest.Sink]*memory.DB{}
	open := func(t *testing.T, db *memory.DB) sinktest.Sink {
		s, err := db.Open()
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		dbs[s] = db
		mu.Unlock()
		return s
	}
	dbOf := func(s sinktest.Sink) *memory.DB {
		mu.Lock()
		defer mu.Unlock()
		return dbs[s]
	}
	sinktest.Run(t, sinktest.Target{
		Name:   "memory",
		Open:   func(t *testing.T) sinktest.Sink { return open(t, memory.New()) },
		Reopen: func(t *testing.T, s sinktest.Sink) sinktest.Sink { return open(t, dbOf(s)) },
		Rows: func(t *testing.T, s sinktest.Sink, table *schema.Table) [][]string {
			cols, rows, ok := dbOf(s).Rows(table.Schema, table.Name)
			if !ok {
				return nil
			}
			idx := map[string]int{}
			for i, c := range cols {
				idx[c] = i
			}
			var out [][]string
			for _, r := range rows {
				o := make([]string, len(table.Columns))
				for i, c := range table.Columns {
					v := r[idx[c.Name]]
					if v.Null {
						o[i] = "NULL"
					} else {
						o[i] = v.Text
					}
				}
				out = append(out, o)
			}
			return out
		},
	})
}

// TestOneWriter: a second sink cannot open a DB while one is open;
// readers see only committed rows.
func TestOneWriter(t *testing.T) {
	ctx := context.Background()
	db := memory.New()
	s, err := db.Open()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Open(); err == nil {
		t.Fatal("a second sink opened")
	}
	kv := schema.NewTable(1, "public", "kv", schema.IdentityDefault, []schema.Column{
		{Name: "k", TypeID: schema.OIDInt4, Typmod: -1, Key: true}, {Name: "v", TypeID: schema.OIDText, Typmod: -1}})
	txt := func(s string) schema.Datum { return schema.Datum{State: schema.Text, Data: []byte(s)} }
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureTable(ctx, kv); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, &schema.Batch{Table: kv, Inserts: []schema.Tuple{{txt("1"), txt("one")}}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := db.Lookup("public", "kv", map[string]string{"k": "1"}); ok {
		t.Error("an uncommitted row is visible")
	}
	if err := s.Commit(ctx, schema.State{LSN: 0x10, Slot: "s", Phase: schema.PhaseStreaming}); err != nil {
		t.Fatal(err)
	}
	if r, ok := db.Lookup("public", "kv", map[string]string{"k": "1"}); !ok || r["v"].Text != "one" {
		t.Errorf("Lookup = %v, %v", r, ok)
	}
	if st, ok := db.State(); !ok || st.LSN != 0x10 {
		t.Errorf("State = %+v, %v", st, ok)
	}
	s.Close()
	if s2, err := db.Open(); err != nil {
		t.Fatal(err)
	} else {
		s2.Close()
	}
}

// TestDivergedErrors: a row inserted that the copy holds already, and a
// row updated that it lacks, fail with schema.ErrDiverged (apply's
// ErrDiverged), for errors.Is.
func TestDivergedErrors(t *testing.T) {
	ctx := context.Background()
	tbl := schema.NewTable(1, "public", "d", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	row := func(id, v string) schema.Tuple {
		return schema.Tuple{{State: schema.Text, Data: []byte(id)}, {State: schema.Text, Data: []byte(v)}}
	}
	s, err := memory.New().Open()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureTable(ctx, tbl); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{row("1", "a")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, schema.State{LSN: 1, Slot: "s", Phase: schema.PhaseStreaming}); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]*schema.Batch{
		"insert of a key held":   {Table: tbl, Inserts: []schema.Tuple{row("1", "b")}},
		"update of a row lacked": {Table: tbl, Updates: []schema.Tuple{row("2", "b")}},
	} {
		if err := s.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		err := s.Write(ctx, b)
		if !errors.Is(err, apply.ErrDiverged) {
			t.Errorf("%s: %v, want ErrDiverged", name, err)
		}
		if err := s.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLookupByKey: a lookup by the table's key goes through its index
// (helper-114: every Lookup scanned the table, 100 ms a call at 100,000
// rows) and agrees with a scan: after updates, a key change and a delete;
// a lookup by other columns still scans.
func TestLookupByKey(t *testing.T) {
	ctx := context.Background()
	db := memory.New()
	s, err := db.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	kv := schema.NewTable(1, "public", "kv", schema.IdentityDefault, []schema.Column{
		{Name: "a", TypeID: schema.OIDInt4, Typmod: -1, Key: true}, {Name: "v", TypeID: schema.OIDText, Typmod: -1},
		{Name: "b", TypeID: schema.OIDText, Typmod: -1, Key: true}})
	txt := func(s string) schema.Datum { return schema.Datum{State: schema.Text, Data: []byte(s)} }
	var rows []schema.Tuple
	for i := range 20_000 {
		rows = append(rows, schema.Tuple{txt(strconv.Itoa(i)), txt("v" + strconv.Itoa(i)), txt("x")})
	}
	step := func(b *schema.Batch, at uint64) {
		t.Helper()
		if err := s.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		if err := s.EnsureTable(ctx, kv); err != nil {
			t.Fatal(err)
		}
		if err := s.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(ctx, schema.State{LSN: lsn.LSN(at), Slot: "s", Phase: schema.PhaseStreaming}); err != nil {
			t.Fatal(err)
		}
	}
	step(&schema.Batch{Table: kv, Inserts: rows}, 0x10)
	step(&schema.Batch{Table: kv, Updates: []schema.Tuple{{txt("7"), txt("seven"), txt("x")}}, Deletes: []schema.Tuple{{txt("8"), {}, txt("x")}}}, 0x20)
	step(&schema.Batch{Table: kv, Rows: []schema.RowChange{{Op: schema.Update, Old: schema.Tuple{txt("9"), {}, txt("x")}, New: schema.Tuple{txt("9"), txt("nine"), txt("y")}}}}, 0x30)
	for _, tc := range []struct {
		key  map[string]string
		want string // v, "" for no row
	}{
		{map[string]string{"a": "7", "b": "x"}, "seven"},
		{map[string]string{"b": "x", "a": "19999"}, "v19999"},
		{map[string]string{"a": "8", "b": "x"}, ""},
		{map[string]string{"a": "9", "b": "x"}, ""},
		{map[string]string{"a": "9", "b": "y"}, "nine"},
		{map[string]string{"a": "20000", "b": "x"}, ""},
		{map[string]string{"v": "v5"}, "v5"},           // not the key: a scan
		{map[string]string{"a": "5"}, "v5"},            // part of the key: a scan
		{map[string]string{"a": "5", "nope": "1"}, ""}, // no such column
	} {
		r, ok := db.Lookup("public", "kv", tc.key)
		if got := ""; ok != (tc.want != "") || ok && r["v"].Text != tc.want {
			if ok {
				got = r["v"].Text
			}
			t.Errorf("Lookup(%v) = %q, %v; want %q", tc.key, got, ok, tc.want)
		}
	}
	start := time.Now()
	for i := range 20_000 {
		if _, ok := db.Lookup("public", "kv", map[string]string{"a": strconv.Itoa(i), "b": "x"}); !ok && i != 8 && i != 9 {
			t.Fatalf("Lookup of key %d found nothing", i)
		}
	}
	t.Logf("20,000 lookups by key in %v", time.Since(start))
}
