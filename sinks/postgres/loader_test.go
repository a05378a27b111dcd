package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/postgres"
)

// TestLoader sends every staged batch through the loader session against a
// target that makes it easy to get wrong: an existing table whose key has a
// collation of its own, a database whose sessions default to REPEATABLE
// READ (a main session at that level would not see what the loader
// committed after its snapshot), several batches of one table in one
// transaction, a batch that fails only when its result is read, and a
// reader holding a lock on a loader table.
func TestLoader(t *testing.T) {
	dsn := newDB(t, "loader")
	conn := connect(t, dsn)
	exec(t, conn, `CREATE TABLE public.lt (k text COLLATE "C" PRIMARY KEY, n int, body text, doc jsonb)`)
	exec(t, conn, "ALTER DATABASE "+qident(conn.Config().Database)+" SET default_transaction_isolation = 'repeatable read'")
	// A loader table left by a crashed session (no backend has PID 4000000).
	exec(t, conn, `CREATE SCHEMA IF NOT EXISTS _walmirror; CREATE UNLOGGED TABLE _walmirror.load_4000000_1 (g int4)`)

	opts := postgres.DefaultOptions()
	opts.LoaderRows = 1
	s := open(t, dsn, opts)
	defer s.Close()
	s.Adopt = true // lt is pre-created, with a collation of its own
	if n := loaderTables(t, conn); len(n) != 0 {
		t.Fatalf("Open left loader tables of gone sessions: %v", n)
	}
	tbl := schema.NewTable(7001, "public", "lt", schema.IdentityDefault, []schema.Column{
		{Name: "k", TypeID: schema.OIDText, Typmod: -1, Key: true},
		{Name: "n", TypeID: schema.OIDInt4, Typmod: -1},
		{Name: "body", TypeID: schema.OIDText, Typmod: -1},
		{Name: "doc", TypeID: schema.OIDJSONB, Typmod: -1},
	})
	unchanged := schema.Datum{State: schema.Unchanged}
	row := func(k string, n int, body string) schema.Tuple {
		return schema.Tuple{txt(k), txt(fmt.Sprint(n)), txt(body), txt(fmt.Sprintf(`{"n": %d}`, n))}
	}
	model := map[string][]string{}
	put := func(k string, n int, body string) {
		model[k] = []string{k, fmt.Sprint(n), body, fmt.Sprintf(`{"n": %d}`, n)}
	}
	check := func(when string) {
		t.Helper()
		got := query(t, conn, "SELECT k, n, body, doc FROM public.lt ORDER BY k")
		if len(got) != len(model) {
			t.Fatalf("%s: %d rows, want %d", when, len(got), len(model))
		}
		for _, r := range got {
			want := model[string(r[0])]
			for i := range want {
				if string(r[i]) != want[i] {
					t.Fatalf("%s: row %s column %d = %q, want %q", when, r[0], i, r[i], want[i])
				}
			}
		}
	}
	state := func(l int) schema.State {
		return schema.State{LSN: lsn.LSN(l), Slot: "s", SystemID: "1", Phase: schema.PhaseStreaming}
	}
	ctx := context.Background()
	commitTx := func(l int, fn func() error) error {
		if err := s.Begin(ctx); err != nil {
			t.Fatal(err)
		}
		if err := fn(); err != nil {
			s.Rollback(ctx)
			return err
		}
		return s.Commit(ctx, state(l))
	}
	key := func(i int) string { return fmt.Sprintf("k%03d", i) }

	var ins []schema.Tuple
	for i := range 100 {
		ins = append(ins, row(key(i), i, "b"+key(i)))
		put(key(i), i, "b"+key(i))
	}
	must(t, commitTx(1, func() error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: ins})
	}))
	check("inserted")

	// Every kind of staged change, in two batches of the same table.
	b := &schema.Batch{Table: tbl}
	for i := range 40 {
		b.Updates = append(b.Updates, row(key(i), 1000+i, "u"))
		put(key(i), 1000+i, "u")
	}
	for i := 40; i < 60; i++ {
		b.Deletes = append(b.Deletes, schema.Tuple{txt(key(i)), unchanged, unchanged, unchanged})
		delete(model, key(i))
	}
	for _, i := range []int{60, 61, 62} {
		b.Updates = append(b.Updates, row(key(i), 2000+i, "up"))
		put(key(i), 2000+i, "up")
	}
	for _, i := range []int{100, 101} { // inserts go by COPY, alongside
		b.Inserts = append(b.Inserts, row(key(i), 2000+i, "new"))
		put(key(i), 2000+i, "new")
	}
	b2 := &schema.Batch{Table: tbl}
	for i := 70; i < 80; i++ {
		// Unchanged TOAST: body keeps its value.
		b2.Patches = append(b2.Patches, schema.Tuple{txt(key(i)), txt(fmt.Sprint(3000 + i)), unchanged, txt(fmt.Sprintf(`{"n": %d}`, 3000+i))})
		put(key(i), 3000+i, "b"+key(i))
	}
	for i := range 10 {
		b2.Updates = append(b2.Updates, row(key(i), 4000+i, "again"))
		put(key(i), 4000+i, "again")
	}
	must(t, commitTx(2, func() error {
		if err := s.Write(ctx, b); err != nil {
			return err
		}
		return s.Write(ctx, b2)
	}))
	check("staged changes")
	names := postgres.LoaderTables(s)
	if len(names) == 0 {
		t.Fatal("no loader table was used")
	}
	if got := query(t, conn, "SELECT relpersistence FROM pg_class WHERE oid = '"+names[0]+"'::regclass"); string(got[0][0]) != "u" {
		t.Fatalf("loader table %s: relpersistence %s, want unlogged", names[0], got[0][0])
	}

	// An update of a row the target lacks fails the transaction, found when
	// its result is read: nothing of it is stored, the state stays.
	err := commitTx(3, func() error {
		return s.Write(ctx, &schema.Batch{Table: tbl, Updates: []schema.Tuple{row(key(0), 5000, "x"), row("nothere", 1, "x")}})
	})
	if err == nil || !strings.Contains(err.Error(), "missing from the target") {
		t.Fatalf("update of a missing row: %v", err)
	}
	check("failed transaction")
	if st, _, err := s.ReadState(ctx); err != nil || st.LSN != 2 {
		t.Fatalf("state after the failed transaction: %v %v", st.LSN, err)
	}

	// A reader holding a loader table (as pg_dump would) does not stall the
	// sink: it moves to another table.
	hold := connect(t, dsn)
	exec(t, hold, "BEGIN")
	for _, n := range names {
		exec(t, hold, "LOCK TABLE "+n+" IN ACCESS SHARE MODE")
	}
	began := time.Now()
	must(t, commitTx(4, func() error {
		return s.Write(ctx, &schema.Batch{Table: tbl, Updates: []schema.Tuple{row(key(1), 6001, "locked")}})
	}))
	put(key(1), 6001, "locked")
	check("while a loader table was locked")
	if d := time.Since(began); d > 10*time.Second {
		t.Fatalf("the transaction took %v while a loader table was locked", d)
	}
	exec(t, hold, "COMMIT")

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	left := loaderTables(t, conn)
	for _, n := range names {
		// A table that was locked when the sink gave it up may remain, for
		// the next Open to drop.
		left = slices.DeleteFunc(left, func(l string) bool { return `_walmirror."`+l+`"` == n })
	}
	if len(left) != 0 {
		t.Fatalf("loader tables after Close: %v", left)
	}
	s2 := open(t, dsn, postgres.DefaultOptions())
	defer s2.Close()
	if left := loaderTables(t, conn); len(left) != 0 {
		t.Fatalf("loader tables after a new Open: %v", left)
	}
}

// TestLoaderUnavailable: when the loader cannot work — a second connection
// is refused (the role's connection limit), or the role may not create
// tables in _walmirror (an administrator set the schema up) — the sink
// stages through its main session.
func TestLoaderUnavailable(t *testing.T) {
	for _, c := range []struct {
		name  string
		limit string // CONNECTION LIMIT
		setup bool   // _walmirror made by another role, without CREATE for this one
	}{{"connection limit", "2", false}, {"no CREATE in _walmirror", "-1", true}} {
		t.Run(c.name, func(t *testing.T) {
			dsn := newDB(t, "loader_unavailable")
			conn := connect(t, dsn)
			db := conn.Config().Database
			role := db + "_role"
			exec(t, conn, "CREATE ROLE "+qident(role)+" LOGIN PASSWORD 'pw' CONNECTION LIMIT "+c.limit)
			t.Cleanup(func() { // after the role's sessions are gone
				conn.PgConn().Exec(context.Background(), "DROP OWNED BY "+qident(role)+"; DROP ROLE "+qident(role)).ReadAll()
			})
			exec(t, conn, "GRANT ALL ON DATABASE "+qident(db)+" TO "+qident(role)+"; GRANT ALL ON SCHEMA public TO "+qident(role))
			opts := postgres.DefaultOptions()
			opts.ReplicaRole = false
			opts.LoaderRows = 1
			if c.setup {
				open(t, dsn, opts).Close() // as the superuser
				exec(t, conn, "GRANT USAGE ON SCHEMA _walmirror TO "+qident(role)+"; GRANT ALL ON ALL TABLES IN SCHEMA _walmirror TO "+qident(role))
			}
			roleDSN := srv.DSNFor(role, "pw", db)
			s := open(t, roleDSN, opts)
			defer s.Close()
			if !c.setup {
				// Open's migration session is closed, but its backend may
				// count against the role's limit a moment longer (seen under
				// load on 17: "too many connections for role").
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
					var n int
					if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role).Scan(&n); err != nil {
						t.Fatal(err)
					}
					if n <= 1 || time.Now().After(deadline) {
						break
					}
				}
				connect(t, roleDSN) // the second and last connection the role may have
			}
			tbl := schema.NewTable(7002, "public", "lim", schema.IdentityDefault, []schema.Column{
				{Name: "k", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
				{Name: "v", TypeID: schema.OIDText, Typmod: -1},
			})
			tx(t, s, func(ctx context.Context) error {
				if err := s.EnsureTable(ctx, tbl); err != nil {
					return err
				}
				return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: []schema.Tuple{{txt("1"), txt("a")}, {txt("2"), txt("b")}}})
			})
			for _, v := range []string{"y", "z"} {
				tx(t, s, func(ctx context.Context) error {
					return s.Write(ctx, &schema.Batch{Table: tbl, Updates: []schema.Tuple{{txt("1"), txt(v)}}})
				})
			}
			got := query(t, conn, "SELECT string_agg(k || v, ',' ORDER BY k) FROM public.lim")
			if string(got[0][0]) != "1z,2b" {
				t.Fatalf("rows: %s", got[0][0])
			}
			if names := loaderTables(t, conn); len(names) != 0 {
				t.Fatalf("loader tables: %v", names)
			}
		})
	}
}

func loaderTables(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	var out []string
	for _, r := range query(t, conn, `SELECT relname FROM pg_class WHERE relnamespace = '_walmirror'::regnamespace AND relname LIKE 'load\_%'`) {
		out = append(out, string(r[0]))
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDenseKeyRange: bulk updates and deletes of consecutive integer keys
// join by key range (write.go); sparse ones by index lookups. Both must
// change exactly the batch's rows.
func TestDenseKeyRange(t *testing.T) {
	dsn := newDB(t, "dense")
	conn := connect(t, dsn)
	s := open(t, dsn, postgres.DefaultOptions())
	defer s.Close()
	tbl := schema.NewTable(7003, "public", "dense", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt8, Typmod: -1, Key: true},
		{Name: "v", TypeID: schema.OIDText, Typmod: -1},
	})
	model := map[int]string{}
	tup := func(id int, v string) schema.Tuple { return schema.Tuple{txt(fmt.Sprint(id)), txt(v)} }
	var ins []schema.Tuple
	for i := -100; i < 5000; i++ {
		ins = append(ins, tup(i, "a"))
		model[i] = "a"
	}
	tx(t, s, func(ctx context.Context) error {
		if err := s.EnsureTable(ctx, tbl); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: ins})
	})
	check := func(when string) {
		t.Helper()
		got := query(t, conn, "SELECT id, v FROM public.dense")
		if len(got) != len(model) {
			t.Fatalf("%s: %d rows, want %d", when, len(got), len(model))
		}
		for _, r := range got {
			id := atoi(r[0])
			if v, ok := model[id]; !ok || v != string(r[1]) {
				t.Fatalf("%s: row %s = %q, want %q (present %v)", when, r[0], r[1], v, ok)
			}
		}
	}
	var upd, sparse, del []schema.Tuple
	for i := -50; i < 1950; i++ { // dense, across zero
		upd = append(upd, tup(i, "dense"))
	}
	for i := 0; i < 3300; i += 3 { // sparse: a third of the range
		sparse = append(sparse, tup(i, "sparse"))
	}
	for i := 3000; i < 4200; i++ { // dense, plus one key further out
		del = append(del, schema.Tuple{txt(fmt.Sprint(i)), {State: schema.Unchanged}})
	}
	del = append(del, schema.Tuple{txt("4999"), {State: schema.Unchanged}})

	tx(t, s, func(ctx context.Context) error { return s.Write(ctx, &schema.Batch{Table: tbl, Updates: upd}) })
	for _, r := range upd {
		model[atoi(r[0].Data)] = "dense"
	}
	check("dense updates")
	tx(t, s, func(ctx context.Context) error { return s.Write(ctx, &schema.Batch{Table: tbl, Updates: sparse}) })
	for _, r := range sparse {
		model[atoi(r[0].Data)] = "sparse"
	}
	check("sparse updates")
	tx(t, s, func(ctx context.Context) error { return s.Write(ctx, &schema.Batch{Table: tbl, Deletes: del}) })
	for _, r := range del {
		delete(model, atoi(r[0].Data))
	}
	check("dense deletes")
	// A later join in the same transaction (patches) is planned as usual.
	var patches []schema.Tuple
	for i := 0; i < 1200; i++ {
		patches = append(patches, schema.Tuple{txt(fmt.Sprint(i)), txt("p")})
	}
	tx(t, s, func(ctx context.Context) error {
		if err := s.Write(ctx, &schema.Batch{Table: tbl, Updates: upd[:1500]}); err != nil {
			return err
		}
		return s.Write(ctx, &schema.Batch{Table: tbl, Patches: patches})
	})
	for _, r := range upd[:1500] {
		model[atoi(r[0].Data)] = "dense"
	}
	for _, r := range patches {
		model[atoi(r[0].Data)] = "p"
	}
	check("dense updates then patches")
}

// txt is a value as the source sends it.
func txt(v string) schema.Datum { return schema.Datum{State: schema.Text, Data: []byte(v)} }

func atoi(b []byte) int {
	var n int
	fmt.Sscan(string(b), &n)
	return n
}
