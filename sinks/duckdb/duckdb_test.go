package duckdb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the "duckdb" database/sql driver, for reading copies

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/duckdb"
	"github.com/walmirror/walmirror/sinks/sinktest"
)

var _ apply.Sink = (*duckdb.Sink)(nil)

func TestContract(t *testing.T) {
	sinktest.Run(t, contractTarget(func(s *duckdb.Sink) {}))
}

// TestContractIndexed runs the contract with every keyed table indexed on
// its key as soon as a transaction looks a row of it up (KeyIndexRows 1),
// so each case's schema changes, renames and moves meet the index DuckDB
// refuses most ALTERs under.
func TestContractIndexed(t *testing.T) {
	sinktest.Run(t, contractTarget(func(s *duckdb.Sink) { s.KeyIndexRows = 1 }))
}

// contractTarget is the DuckDB sink for the contract suite, as the walmirror
// command runs it, with set applied.
func contractTarget(set func(*duckdb.Sink)) sinktest.Target {
	return sinktest.FileTarget("duckdb", "target.duckdb",
		func(ctx context.Context, path string) (sinktest.Sink, error) {
			s, err := duckdb.Open(ctx, path, nil)
			if err == nil {
				s.SerialSmallWrites = true // as the walmirror command runs it
				set(s)
			}
			return s, err
		},
		func(t *testing.T, s sinktest.Sink, _ string, table *schema.Table) [][]string {
			// The sink's own instance: a second process could not open the
			// file. Its pooled connections see committed data only.
			db := s.(*duckdb.Sink).DB()
			cols := make([]string, len(table.Columns))
			for i, c := range table.Columns {
				cols[i] = c.Name
			}
			return readTable(t, db, table.Schema, table.Name, cols, "")
		})
}

func openSink(t *testing.T, path string) *duckdb.Sink {
	t.Helper()
	s, err := duckdb.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// tx runs fn in a transaction of s and commits it.
func tx(t *testing.T, s *duckdb.Sink, fn func(ctx context.Context) error) {
	t.Helper()
	ctx := t.Context()
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fn(ctx); err != nil {
		s.Rollback(ctx)
		t.Fatal(err)
	}
	st, _, err := s.ReadState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, schema.State{LSN: st.LSN + 1, Slot: "s", SystemID: "1", Phase: schema.PhaseStreaming}); err != nil {
		t.Fatal(err)
	}
}

// text builds a tuple of text values; nil is NULL.
func text(vals ...any) schema.Tuple {
	tup := make(schema.Tuple, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
			tup[i] = schema.Datum{State: schema.Null}
		case string:
			tup[i] = schema.Datum{State: schema.Text, Data: []byte(v)}
		default:
			panic(fmt.Sprintf("text(%#v)", v))
		}
	}
	return tup
}

func numericTypmod(p, s int) int32 { return int32(p<<16|(s&0x7ff)) + 4 }

// openRaw opens a DuckDB file directly (catalog u), as another program would.
func openRaw(path string, opts ...string) (*sql.DB, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	q := "ATTACH '" + strings.ReplaceAll(path, "'", "''") + "' AS u"
	if len(opts) > 0 {
		q += " (" + strings.Join(opts, ", ") + ")"
	}
	if _, err := db.Exec(q); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// TestMigrations: Open creates walmirror's tables once; opening again is a
// no-op that keeps the state; the version is recorded.
func TestMigrations(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "m.duckdb")
	s, err := duckdb.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := schema.State{LSN: 42, Slot: "s", SystemID: "7", Phase: schema.PhaseSnapshot}
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, st); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for range 2 {
		s, err = duckdb.Open(ctx, path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok, err := s.ReadState(ctx); err != nil || !ok || !reflect.DeepEqual(got, st) {
			t.Fatalf("state after reopening = %+v, %v, %v; want %+v", got, ok, err, st)
		}
		s.Close()
	}
	db, err := openRaw(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n, version int
	var dirty bool
	if err := db.QueryRow(`SELECT count(*), max(version), bool_or(dirty) FROM u.main._walmirror_migrations`).Scan(&n, &version, &dirty); err != nil {
		t.Fatal(err)
	}
	if n != 1 || version != 7 || dirty {
		t.Errorf("_walmirror_migrations: %d rows, version %d, dirty %v; want 1 row, version 7, clean", n, version, dirty)
	}
	if err := db.QueryRow(`SELECT count(*) FROM duckdb_columns() WHERE database_name = 'u' AND table_name = '_walmirror_state'`).Scan(&n); err != nil || n != 11 {
		t.Errorf("_walmirror_state has %d columns (%v), want 11", n, err)
	}
}

// TestPublishCopy: the published copy is a consistent snapshot another
// process can open read-only while the sink keeps writing, and publishing
// again replaces it.
func TestPublishCopy(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, filepath.Join(dir, "live.duckdb"))
	tbl := schema.NewTable(1, "public", "t", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt8, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{text("1", "one"), text("2", "two")}})
	})
	copyPath := filepath.Join(dir, "published.duckdb")
	if err := s.PublishCopy(t.Context(), copyPath); err != nil {
		t.Fatal(err)
	}
	check := func(want int, wantLSN uint64) {
		t.Helper()
		db, err := openRaw(copyPath, "READ_ONLY")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		var l uint64
		if err := db.QueryRow(`SELECT (SELECT count(*) FROM u.public.t), (SELECT lsn FROM u.main._walmirror_state)`).Scan(&n, &l); err != nil {
			t.Fatal(err)
		}
		if n != want || l != wantLSN {
			t.Errorf("copy has %d rows at LSN %d, want %d at %d", n, l, want, wantLSN)
		}
		if _, err := db.Exec(`INSERT INTO u.public.t VALUES (9, 'x')`); err == nil {
			t.Error("the copy opened read-only accepted a write")
		}
	}
	check(2, 1)
	// The copy is not the live file: later commits do not show until the next publish.
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{text("3", "three")}})
	})
	check(2, 1)
	// Published while a transaction is open: the copy has what is committed.
	if err := s.Begin(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(t.Context(), &schema.Batch{Table: tbl, Inserts: []schema.Tuple{text("4", "uncommitted")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PublishCopy(t.Context(), copyPath); err != nil {
		t.Fatal(err)
	}
	if err := s.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	check(3, 2)
	if err := s.PublishCopy(t.Context(), filepath.Join(dir, "live.duckdb")); err == nil {
		t.Error("PublishCopy over the live file succeeded")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") || strings.HasPrefix(e.Name(), "published.duckdb.") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestOpenUnwritable: a path that cannot hold a database fails Open with an
// error that names it.
func TestOpenUnwritable(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ what, path string }{
		{"missing directory", filepath.Join(dir, "no", "such", "dir", "target.duckdb")},
		{"path is a directory", dir},
	} {
		s, err := duckdb.Open(t.Context(), c.path, nil)
		if err == nil {
			s.Close()
			t.Errorf("%s: Open(%q) succeeded", c.what, c.path)
			continue
		}
		if !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), "writable") {
			t.Errorf("%s: Open error %q does not name the path %q with a hint", c.what, err, c.path)
		}
		t.Logf("%s: %v", c.what, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "no")); !os.IsNotExist(err) {
		t.Errorf("Open created directories: %v", err)
	}
	// A file DuckDB does not recognise.
	junk := filepath.Join(dir, "junk.duckdb")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a database ", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := duckdb.Open(t.Context(), junk, nil); err == nil {
		s.Close()
		t.Error("Open of a junk file succeeded")
	}
}

// TestSecondWriter: a second sink on the same file is refused while the
// first has it open.
func TestSecondWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "one.duckdb")
	openSink(t, path)
	if s, err := duckdb.Open(t.Context(), path, nil); err == nil {
		s.Close()
		t.Fatal("a second Open of an open file succeeded")
	} else {
		t.Log(err)
	}
}

// TestOddPaths: file names with characters that mean something in a DSN or URI.
func TestOddPaths(t *testing.T) {
	for _, name := range []string{"a?b.duckdb", "c#d.duckdb", "e%20f.duckdb", "g h.duckdb", "i:j.duckdb", "ü.duckdb", "it's.duckdb", "%zz.duckdb"} {
		path := filepath.Join(t.TempDir(), name)
		s, err := duckdb.Open(t.Context(), path, nil)
		if err != nil {
			t.Errorf("Open(%q): %v", path, err)
			continue
		}
		tx(t, s, func(context.Context) error { return nil })
		s.Close()
		if _, err := os.Stat(path); err != nil {
			t.Errorf("Open(%q) did not write that file: %v", path, err)
		}
	}
}

// TestReservedNames: a source table that would land on walmirror's own
// tables is refused, in any letter case, and the state stays intact.
func TestReservedNames(t *testing.T) {
	ctx := t.Context()
	s := openSink(t, filepath.Join(t.TempDir(), "reserved.duckdb"))
	tx(t, s, func(context.Context) error { return nil })
	st, _, _ := s.ReadState(ctx)
	cols := []schema.Column{{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true}, {Name: "v", TypeID: schema.OIDText, Typmod: -1}}
	for _, name := range []string{"_walmirror_state", "_WALMIRROR_STATE", "_Walmirror_migrations"} {
		for _, sch := range []string{"main", "MAIN"} {
			if err := s.Begin(ctx); err != nil {
				t.Fatal(err)
			}
			err := s.EnsureTable(ctx, schema.NewTable(1, sch, name, schema.IdentityDefault, cols))
			if err == nil || !(strings.Contains(err.Error(), "reserved") || strings.Contains(err.Error(), "letter case")) {
				t.Errorf("EnsureTable(%s.%s) = %v, want a refusal", sch, name, err)
			}
			if err := s.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The same names in another schema are ordinary tables.
	tx(t, s, func(ctx context.Context) error {
		return s.EnsureTable(ctx, schema.NewTable(2, "public", "_walmirror_state", schema.IdentityDefault, cols))
	})
	if got, ok, err := s.ReadState(ctx); err != nil || !ok || got.LSN != st.LSN+1 {
		t.Fatalf("state = %+v, %v, %v", got, ok, err)
	}
}

// TestCaseCollisions: columns that differ only in case, and a keyless table
// with a column named rowid, are refused with a clear error.
func TestCaseCollisions(t *testing.T) {
	ctx := t.Context()
	s := openSink(t, filepath.Join(t.TempDir(), "case.duckdb"))
	for _, c := range []struct {
		tbl  *schema.Table
		want string
	}{
		{schema.NewTable(1, "public", "t", schema.IdentityDefault, []schema.Column{
			{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true}, {Name: "a", TypeID: schema.OIDText, Typmod: -1}, {Name: "A", TypeID: schema.OIDText, Typmod: -1},
		}), "letter case"},
		{schema.NewTable(2, "public", "k", schema.IdentityFull, []schema.Column{
			{Name: "RowID", TypeID: schema.OIDInt4, Typmod: -1, Key: true}, {Name: "a", TypeID: schema.OIDText, Typmod: -1, Key: true},
		}), "rowid"},
	} {
		if err := s.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		err := s.EnsureTable(ctx, c.tbl)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("EnsureTable(%s) = %v, want an error about %s", c.tbl.QualifiedName(), err, c.want)
		} else {
			t.Log(err)
		}
		if err := s.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A keyed table may have a rowid column.
	tbl := schema.NewTable(3, "public", "r", schema.IdentityDefault, []schema.Column{
		{Name: "rowid", TypeID: schema.OIDInt4, Typmod: -1, Key: true}, {Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{text("1", "a"), text("2", "b")}})
	})
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: tbl, Deletes: []schema.Tuple{text("1", nil)},
			Rows: []schema.RowChange{{Op: schema.Update, Old: text("2", nil), New: text("3", "c")}}})
	})
	if got := readTable(t, s.DB(), "public", "r", []string{"rowid", "v"}, ""); len(got) != 1 || got[0][0] != "3" || got[0][1] != "c" {
		t.Errorf("rows = %q", got)
	}
}

// TestNoPrimaryKey: target tables have no PRIMARY KEY constraint, name their
// key in the comment, and a key deleted and inserted again in one
// transaction is fine; an insert of a present key fails, also when the
// table was emptied in the same transaction (checked at commit).
// TestSerialSmallWrites: writes over small tables run on one thread, those
// over big ones (or big batches) on the instance's threads again; after
// one that needed the instance's threads, small writes keep them for a
// while (serialSettle) rather than switching back and forth.
func TestSerialSmallWrites(t *testing.T) {
	s := openSink(t, filepath.Join(t.TempDir(), "threads.duckdb"))
	db := s.DB()
	threads := func() int {
		t.Helper()
		var n int
		if err := db.QueryRow("SELECT CAST(current_setting('threads') AS BIGINT)").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	def := threads()
	if def < 2 {
		t.Skip("DuckDB has one thread here")
	}
	s.SerialSmallWrites = true
	duckdb.SetSerialSettle(s, 0) // switch at once, to see each decision
	small := schema.NewTable(1, "public", "small", schema.IdentityDefault, []schema.Column{
		{Name: "k", TypeID: schema.OIDInt8, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	big := schema.NewTable(2, "public", "big", schema.IdentityDefault, small.Columns)
	rows := func(from, n int) []schema.Tuple {
		out := make([]schema.Tuple, n)
		for i := range out {
			out[i] = text(strconv.Itoa(from+i), "v")
		}
		return out
	}
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, small); err != nil {
			return err
		}
		if err := s.EnsureTable(ctx, big); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: small, Inserts: rows(0, 10)})
	})
	if got := threads(); got != 1 {
		t.Fatalf("threads after a small write = %d, want 1", got)
	}
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: big, Inserts: rows(0, 300_000)})
	})
	if got := threads(); got != def {
		t.Fatalf("threads after a 300,000-row write = %d, want the instance's %d", got, def)
	}
	tx(t, s, func(ctx context.Context) error { return s.Write(ctx, &schema.Batch{Table: small, Updates: rows(0, 2)}) })
	if got := threads(); got != 1 {
		t.Fatalf("threads after a small update = %d, want 1", got)
	}
	// A small batch over the big table still scans it: the instance's threads.
	tx(t, s, func(ctx context.Context) error { return s.Write(ctx, &schema.Batch{Table: big, Updates: rows(7, 1)}) })
	if got := threads(); got != def {
		t.Fatalf("threads after an update of the 300,000-row table = %d, want %d", got, def)
	}
	// A plain insert reads nothing of its table: a few rows appended to a
	// big keyless table (an append-only log) run on one thread.
	log := schema.NewTable(3, "public", "log", schema.IdentityDefault, []schema.Column{
		{Name: "k", TypeID: schema.OIDInt8, Typmod: -1},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, log); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: log, Inserts: rows(0, 300_000)})
	})
	tx(t, s, func(ctx context.Context) error { return s.Write(ctx, &schema.Batch{Table: log, Inserts: rows(0, 5)}) })
	if got := threads(); got != 1 {
		t.Fatalf("threads after 5 rows appended to a 300,000-row keyless table = %d, want 1", got)
	}
	// Settling: a small write soon after one over the big table keeps the
	// instance's threads (a pgbench-shaped commit over a big table of
	// accounts switched twice per commit and took twice as long); once the
	// big writes stop for long enough, one thread again.
	duckdb.SetSerialSettle(s, time.Hour)
	tx(t, s, func(ctx context.Context) error {
		if err := s.Write(ctx, &schema.Batch{Table: big, Updates: rows(8, 1)}); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: small, Updates: rows(0, 2)})
	})
	if got := threads(); got != def {
		t.Fatalf("threads after a small update just after one of the big table = %d, want the instance's %d (no switch)", got, def)
	}
	duckdb.SetSerialSettle(s, 0)
	tx(t, s, func(ctx context.Context) error { return s.Write(ctx, &schema.Batch{Table: small, Updates: rows(1, 2)}) })
	if got := threads(); got != 1 {
		t.Fatalf("threads after a small update once the big ones settled = %d, want 1", got)
	}
}

func TestNoPrimaryKey(t *testing.T) {
	ctx := t.Context()
	s := openSink(t, filepath.Join(t.TempDir(), "pk.duckdb"))
	tbl := schema.NewTable(1, "public", "kv", schema.IdentityDefault, []schema.Column{
		{Name: "k", TypeID: schema.OIDInt8, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{text("1", "a"), text("2", "b")}})
	})
	var n int
	var comment string
	db := s.DB()
	if err := db.QueryRow(`SELECT count(*) FROM duckdb_constraints() WHERE database_name = ? AND table_name = 'kv' AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')`, duckdb.Catalog).Scan(&n); err != nil || n != 0 {
		t.Errorf("kv has %d key constraints (%v), want none", n, err)
	}
	if err := db.QueryRow(`SELECT comment FROM duckdb_tables() WHERE database_name = ? AND table_name = 'kv'`, duckdb.Catalog).Scan(&comment); err != nil || !strings.Contains(comment, `key ("k")`) {
		t.Errorf("kv comment %q (%v) does not name the key", comment, err)
	}
	// Delete and insert the same key in one transaction, several times.
	tx(t, s, func(ctx context.Context) error {
		for i := range 3 {
			if err := s.Write(ctx, &schema.Batch{Table: tbl, Updates: []schema.Tuple{text("1", "u"+strconv.Itoa(i))}}); err != nil {
				return err
			}
			if err := s.Write(ctx, &schema.Batch{Table: tbl, Deletes: []schema.Tuple{text("2", nil)}}); err != nil {
				return err
			}
			if err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{text("2", "i"+strconv.Itoa(i))}}); err != nil {
				return err
			}
		}
		return nil
	})
	if got := readTable(t, db, "public", "kv", []string{"k", "v"}, "true ORDER BY k"); strings.Join(flatten(got), ",") != "1,u2,2,i2" {
		t.Errorf("rows = %q", got)
	}
	// A duplicate in an emptied table is found at commit.
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Truncate(ctx, []*schema.Table{tbl}); err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]schema.Tuple{{text("1", "x"), text("2", "y")}, {text("3", "z"), text("2", "dup")}} {
		if err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: b}); err != nil {
			t.Fatal(err)
		}
	}
	err := s.Commit(ctx, schema.State{LSN: 99, Slot: "s", SystemID: "1", Phase: schema.PhaseStreaming})
	if err == nil || !strings.Contains(err.Error(), "2") {
		t.Fatalf("Commit with a duplicate key = %v, want an error naming it", err)
	}
	t.Log(err)
	if st, _, _ := s.ReadState(ctx); st.LSN == 99 {
		t.Fatal("the failed commit stored its state")
	}
	if got := readTable(t, db, "public", "kv", []string{"k", "v"}, "true ORDER BY k"); strings.Join(flatten(got), ",") != "1,u2,2,i2" {
		t.Errorf("rows after the failed commit = %q", got)
	}
}

// TestTypeChange: a source column whose type changes is converted in the
// target when its values allow.
func TestTypeChange(t *testing.T) {
	s := openSink(t, filepath.Join(t.TempDir(), "retype.duckdb"))
	t1 := schema.NewTable(1, "public", "c", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "n", TypeID: schema.OIDInt4, Typmod: -1},
		{Name: "s", TypeID: schema.OIDText, Typmod: -1},
	})
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, t1); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: t1, Inserts: []schema.Tuple{text("1", "7", "x")}})
	})
	t2 := schema.NewTable(1, "public", "c", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "n", TypeID: schema.OIDInt8, Typmod: -1},
		{Name: "s", TypeID: schema.OIDInt4, Typmod: -1}, // text → int: the target keeps VARCHAR
	})
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, t2); err != nil {
			return err
		}
		if err := s.Write(ctx, &schema.Batch{Table: t2, Inserts: []schema.Tuple{text("2", "9223372036854775807", "42")}}); err != nil {
			return err
		}
		// The old shape still writes.
		return s.Write(ctx, &schema.Batch{Table: t1, Inserts: []schema.Tuple{text("3", "3", "y")}})
	})
	types := columnTypes(t, s.DB(), "public", "c")
	if types["n"] != "BIGINT" || types["s"] != "VARCHAR" {
		t.Errorf("types after the change: %v", types)
	}
	got := readTable(t, s.DB(), "public", "c", []string{"id", "n", "s"}, "true ORDER BY id")
	if strings.Join(flatten(got), ",") != "1,7,x,2,9223372036854775807,42,3,3,y" {
		t.Errorf("rows = %q", got)
	}
}

// TestBadValues: a value the sink cannot convert fails the write naming the
// column, and the transaction can be rolled back.
func TestBadValues(t *testing.T) {
	ctx := t.Context()
	s := openSink(t, filepath.Join(t.TempDir(), "bad.duckdb"))
	tbl := schema.NewTable(1, "public", "bad", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "raw", TypeID: schema.OIDBytea, Typmod: -1},
		{Name: "small", TypeID: schema.OIDInt2, Typmod: -1},
		{Name: "d", TypeID: schema.OIDDate, Typmod: -1},
		{Name: "iv", TypeID: schema.OIDInterval, Typmod: -1},
		{Name: "arr", TypeID: 1007, Typmod: -1},
	})
	tx(t, s, func(ctx context.Context) error { return s.EnsureTable(ctx, tbl) })
	for _, c := range []struct {
		tup  schema.Tuple
		want string
	}{
		{text("x1", nil, nil, nil, nil, nil), `"id"`},
		{text("1", `\000`, nil, nil, nil, nil), `"raw"`}, // bytea_output = escape
		{text("1", `\xzz`, nil, nil, nil, nil), `"raw"`},
		{text("1", nil, "32768", nil, nil, nil), `"small"`},
		{text("1", nil, nil, "2024-02-30", nil, nil), `"d"`},
		{text("1", nil, nil, nil, "P1D", nil), `"iv"`}, // IntervalStyle iso_8601
		{text("1", nil, nil, nil, nil, "{1,x}"), `"arr"`},
		{schema.Tuple{{State: schema.Text, Data: []byte("1")}, {State: schema.Unchanged}, {State: schema.Null}, {State: schema.Null}, {State: schema.Null}, {State: schema.Null}}, `"raw"`},
	} {
		for _, b := range []schema.Batch{{Inserts: []schema.Tuple{c.tup}}, {Updates: []schema.Tuple{c.tup}}} {
			if err := s.Begin(ctx); err != nil {
				t.Fatal(err)
			}
			b.Table = tbl
			err := s.Write(ctx, &b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Write(%q) = %v, want an error naming column %s", c.tup, err, c.want)
			}
			if err := s.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// An insert of a key that is there already.
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{text("1", nil, nil, nil, nil, nil)}})
	})
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{text("1", nil, nil, nil, nil, nil)}})
	if err == nil || !strings.Contains(err.Error(), `("id")=(1)`) {
		t.Errorf("insert of a present key = %v, want an error naming the key", err)
	} else {
		t.Log(err)
	}
	if err := s.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestDBReaders: connections from DB query the copy by schema-qualified
// names and see committed transactions only.
func TestDBReaders(t *testing.T) {
	ctx := t.Context()
	s := openSink(t, filepath.Join(t.TempDir(), "readers.duckdb"))
	tbl := schema.NewTable(1, "public", "t", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt8, Typmod: -1, Key: true},
		{Name: "at", TypeID: schema.OIDTimestampTZ, Typmod: -1},
	})
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{text("1", "2024-01-02 03:04:05+00")}})
	})
	count := func() int {
		t.Helper()
		var n int
		if err := s.DB().QueryRowContext(ctx, `SELECT count(*) FROM public.t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{text("2", "infinity")}}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Errorf("a reader sees %d rows while the second is uncommitted, want 1", n)
	}
	if err := s.Commit(ctx, schema.State{LSN: 5, Slot: "s", SystemID: "1", Phase: schema.PhaseStreaming}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Errorf("a reader sees %d rows after the commit, want 2", n)
	}
	var at string
	if err := s.DB().QueryRowContext(ctx, `SELECT CAST("at" AS VARCHAR) FROM public.t WHERE id = 1`).Scan(&at); err != nil || at != "2024-01-02 03:04:05+00" {
		t.Errorf("reader sees at = %q (%v), want the UTC text", at, err)
	}
}

// TestUpdatesMissingRow: Updates replace rows by key, and a row that is not
// in the target fails the write: the target no longer mirrors the source.
func TestUpdatesMissingRow(t *testing.T) {
	ctx := t.Context()
	s := openSink(t, filepath.Join(t.TempDir(), "updates.duckdb"))
	tbl := schema.NewTable(1, "public", "kv", schema.IdentityDefault, []schema.Column{
		{Name: "k", TypeID: schema.OIDInt8, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
		{Name: "at", TypeID: schema.OIDTimestampTZ, Typmod: -1},
	})
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{text("1", "a", nil), text("2", "b", nil)}})
	})
	tx(t, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: tbl, Updates: []schema.Tuple{text("1", "A", "infinity")}})
	})
	if got := readTable(t, s.DB(), "public", "kv", []string{"k", "v", "at"}, "true ORDER BY k"); strings.Join(flatten(got), ",") != "1,A,infinity,2,b,NULL" {
		t.Errorf("rows = %q", got)
	}
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	err := s.Write(ctx, &schema.Batch{Table: tbl, Updates: []schema.Tuple{text("2", "B", nil), text("3", "gone", nil)}})
	if err == nil || !strings.Contains(err.Error(), "missing") || !strings.Contains(err.Error(), `("k")=(3)`) || !errors.Is(err, schema.ErrDiverged) {
		t.Errorf("update of a missing row = %v, want an error naming key 3, ErrDiverged", err)
	} else {
		t.Log(err)
	}
	if err := s.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// In a bulk load (past bulkRows updated rows, replaced rather than
	// updated in place) a missing row is found too, for an integer key and
	// for a composite one, and the transaction leaves the table as it was.
	ck := schema.NewTable(3, "public", "ck", schema.IdentityDefault, []schema.Column{
		{Name: "a", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "b", TypeID: schema.OIDText, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	const bulk = 130_000
	var kvRows, ckRows []schema.Tuple
	for i := range bulk {
		kvRows = append(kvRows, text(strconv.Itoa(100+i), "bulk", nil))
		ckRows = append(ckRows, text(strconv.Itoa(i), "b'"+strconv.Itoa(i%3), "bulk"))
	}
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, ck); err != nil {
			return err
		}
		if err := s.Write(ctx, &schema.Batch{Table: ck, Inserts: ckRows}); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: kvRows})
	})
	for _, c := range []struct {
		tbl     *schema.Table
		rows    []schema.Tuple
		missing schema.Tuple
		key     string
	}{
		{tbl, kvRows, text("5", "gone", nil), `("k")=(5)`},
		{ck, ckRows, text("7", "nope", "gone"), `("a", "b")=(7, nope)`},
	} {
		if err := s.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		err := s.Write(ctx, &schema.Batch{Table: c.tbl, Updates: c.rows})
		if err == nil {
			err = s.Write(ctx, &schema.Batch{Table: c.tbl, Updates: []schema.Tuple{c.missing}})
		}
		if err == nil || !strings.Contains(err.Error(), "missing") || !strings.Contains(err.Error(), c.key) {
			t.Errorf("bulk update of a missing row in %s = %v, want an error naming %s", c.tbl.Name, err, c.key)
		} else {
			t.Log(err)
		}
		if err := s.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var n, nBulk int
	if err := s.DB().QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (v = 'bulk') FROM public.kv`).Scan(&n, &nBulk); err != nil {
		t.Fatal(err)
	}
	if n != bulk+2 || nBulk != bulk {
		t.Errorf("kv after the failed bulk updates: %d rows, %d of them as inserted; want %d and %d", n, nBulk, bulk+2, bulk)
	}

	// A table whose columns are all key columns: nothing to set, presence checked.
	all := schema.NewTable(2, "public", "keys", schema.IdentityDefault, []schema.Column{
		{Name: "a", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "b", TypeID: schema.OIDText, Typmod: -1, Key: true},
	})
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, all); err != nil {
			return err
		}
		if err := s.Write(ctx, &schema.Batch{Table: all, Inserts: []schema.Tuple{text("1", "x")}}); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: all, Updates: []schema.Tuple{text("1", "x")}})
	})
}

// TestPublishCopyConcurrent: copies published from another goroutine while
// transactions commit are each consistent: the rows match the stored
// position (every transaction adds one row and advances it by one).
func TestPublishCopyConcurrent(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, filepath.Join(dir, "live.duckdb"))
	// Commits write to one table or the other: a copy that missed a
	// table's commit would not add up.
	var tbls [2]*schema.Table
	for i, name := range []string{"t", "u"} {
		tbls[i] = schema.NewTable(uint32(i+1), "public", name, schema.IdentityDefault, []schema.Column{
			{Name: "id", TypeID: schema.OIDInt8, Typmod: -1, Key: true},
		})
	}
	tx(t, s, func(ctx context.Context) error { // LSN 1, no rows
		if err := s.EnsureTable(ctx, tbls[0]); err != nil {
			return err
		}
		return s.EnsureTable(ctx, tbls[1])
	})
	done := make(chan error)
	copyPath := filepath.Join(dir, "copy.duckdb")
	go func() {
		defer close(done)
		for i := 0; i < 8; i++ {
			if err := s.PublishCopy(context.Background(), copyPath); err != nil {
				done <- err
				return
			}
			db, err := openRaw(copyPath, "READ_ONLY")
			if err != nil {
				done <- err
				return
			}
			var n, l int64
			err = db.QueryRow(`SELECT (SELECT count(*) FROM u.public.t) + (SELECT count(*) FROM u.public.u), (SELECT lsn FROM u.main._walmirror_state)`).Scan(&n, &l)
			db.Close()
			if err == nil && n != l-1 {
				err = fmt.Errorf("copy %d has %d rows at LSN %d: not one snapshot", i, n, l)
			}
			if err != nil {
				done <- err
				return
			}
		}
	}()
	for i := 1; ; i++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
		tx(t, s, func(ctx context.Context) error {
			return s.Write(ctx, &schema.Batch{Table: tbls[i%2], Inserts: []schema.Tuple{text(strconv.Itoa(i))}})
		})
	}
}

// TestMemoryLimitRemedy: a transaction DuckDB cannot hold within its
// memory_limit fails with walmirror's remedy (helper-119: a 200 MB source
// transaction of 100 kB values under --duckdb-memory-limit 256MB failed
// every run at its COMMIT with DuckDB's own advice, SET memory_limit), and
// stores nothing.
func TestMemoryLimitRemedy(t *testing.T) {
	ctx := t.Context()
	s := openSink(t, filepath.Join(t.TempDir(), "mem.duckdb"))
	if _, err := s.DB().ExecContext(ctx, "SET memory_limit = '16MB'"); err != nil {
		t.Fatal(err)
	}
	tbl := schema.NewTable(1, "public", "big", schema.IdentityDefault, []schema.Column{
		{Name: "k", TypeID: schema.OIDInt8, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	tx(t, s, func(ctx context.Context) error { return s.EnsureTable(ctx, tbl) })
	if err := s.Begin(ctx); err != nil {
		t.Fatal(err)
	}
	err := func() error {
		big := strings.Repeat("abcdefghij", 10_000)
		for b := range 40 {
			rows := make([]schema.Tuple, 50)
			for i := range rows {
				rows[i] = text(strconv.Itoa(b*50+i), strconv.Itoa(b*50+i)+big)
			}
			if err := s.Write(ctx, &schema.Batch{Table: tbl, Inserts: rows}); err != nil {
				return err
			}
		}
		return s.Commit(ctx, schema.State{LSN: 99, Slot: "s", SystemID: "1", Phase: schema.PhaseStreaming})
	}()
	if err == nil {
		t.Skip("DuckDB held 200 MB of values under a 16 MB memory_limit: nothing to check")
	}
	if !strings.Contains(err.Error(), "--duckdb-memory-limit") {
		t.Fatalf("a transaction over DuckDB's memory_limit failed with %v; want walmirror's remedy (--duckdb-memory-limit)", err)
	}
	t.Log(err)
	if st, _, _ := s.ReadState(ctx); st.LSN == 99 {
		t.Fatal("the failed transaction stored its state")
	}
}
