package apply_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/internal/mirrortest"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/sqlite"
	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/testenv"
)

var server *testenv.Server

func TestMain(m *testing.M) { os.Exit(testenv.RunTests(m, &server)) }

// mirror is one source database and one SQLite copy of it.
type mirror struct {
	t        *testing.T
	dsn      string
	db       string
	path     string
	slot     string
	onCommit func(apply.CommitInfo) // optional, for catchUp
}

func newMirror(t *testing.T) *mirror {
	t.Helper()
	if server == nil {
		t.Skip("needs PostgreSQL (not in -short mode)")
	}
	db, err := server.CreateDatabase(context.Background(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return &mirror{t: t, dsn: server.DSN(db), db: db, path: filepath.Join(t.TempDir(), "copy.sqlite"), slot: "s_" + db}
}

func (m *mirror) exec(sql string) {
	m.t.Helper()
	if err := server.Exec(context.Background(), m.db, sql); err != nil {
		m.t.Fatal(err)
	}
}

// waitLiveTuples waits until the statistics system counts at least n live
// rows in table (it hears of a session's inserts when that session ends,
// or within seconds).
func (m *mirror) waitLiveTuples(table string, n int64) {
	m.t.Helper()
	conn, err := pgx.Connect(m.t.Context(), m.dsn)
	if err != nil {
		m.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var live int64
	for range 300 {
		if err := conn.QueryRow(m.t.Context(), "SELECT pg_stat_get_live_tuples($1::regclass)", table).Scan(&live); err != nil {
			m.t.Fatal(err)
		}
		if live >= n {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.t.Fatalf("the statistics system counts %d live rows in %s after 30 s, not %d", live, table, n)
}

// catchUp runs walmirror until everything committed so far is applied.
func (m *mirror) catchUp(limits apply.Limits, tables ...string) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sink, err := sqlite.Open(ctx, m.path, nil)
	if err != nil {
		m.t.Fatal(err)
	}
	defer sink.Close()
	err = apply.Run(ctx, sink, apply.Config{
		Source:    source.Config{DSN: m.dsn, Slot: m.slot, Publication: "walmirror", Tables: tables},
		Limits:    limits,
		StopAtNow: true,
		OnCommit:  m.onCommit,
		Logger:    slog.New(slog.NewTextHandler(testWriter{m.t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		m.t.Fatal(err)
	}
}

// same asserts the copy of table equals the source; cols lists the columns
// (their SQLite rendering must equal PostgreSQL's text for the test's types).
func (m *mirror) same(srcTable, copyTable, cols string) {
	m.t.Helper()
	ctx := context.Background()
	want, err := mirrortest.SourceRows(ctx, m.dsn, "SELECT "+cols+" FROM "+srcTable)
	if err != nil {
		m.t.Fatal(err)
	}
	got, err := mirrortest.SQLiteRows(ctx, m.path, "SELECT "+cols+" FROM "+copyTable)
	if err != nil {
		m.t.Fatal(err)
	}
	if d := mirrortest.Diff(want, got); d != "" {
		m.t.Errorf("%s: %s", srcTable, d)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestDMLAcrossTables(t *testing.T) {
	m := newMirror(t)
	m.exec(`
		CREATE TABLE accounts (id bigint PRIMARY KEY, name text, balance numeric(14,2), meta jsonb);
		CREATE TABLE items (a int, b text, qty int, PRIMARY KEY (a, b));
		CREATE TABLE log (x int, y text);
		ALTER TABLE log REPLICA IDENTITY FULL;
		INSERT INTO accounts SELECT i, 'acct ' || i, i * 1.25, jsonb_build_object('n', i) FROM generate_series(1, 500) i;
		INSERT INTO items SELECT i % 10, 'b' || i, i FROM generate_series(1, 300) i;
		INSERT INTO log VALUES (1, 'dup'), (1, 'dup'), (1, 'dup'), (2, NULL), (2, NULL);`)
	m.catchUp(apply.DefaultLimits())
	m.same("accounts", "accounts", "id, name, balance, meta")

	m.exec(`
		BEGIN;
		INSERT INTO accounts SELECT i, 'new ' || i, -i, NULL FROM generate_series(501, 800) i;
		UPDATE accounts SET balance = balance + 0.01 WHERE id % 3 = 0;
		UPDATE accounts SET id = id + 10000 WHERE id BETWEEN 10 AND 20;
		DELETE FROM accounts WHERE id % 7 = 0;
		COMMIT;
		UPDATE items SET qty = qty * 2 WHERE a = 1;
		UPDATE items SET b = b || 'x' WHERE a = 2;
		DELETE FROM items WHERE a = 3;
		UPDATE log SET y = 'changed' WHERE ctid = (SELECT ctid FROM log WHERE y = 'dup' LIMIT 1);
		DELETE FROM log WHERE ctid = (SELECT ctid FROM log WHERE y = 'dup' LIMIT 1);
		DELETE FROM log WHERE ctid = (SELECT ctid FROM log WHERE y IS NULL LIMIT 1);
		INSERT INTO log VALUES (3, 'three'), (3, 'three');`)
	m.catchUp(apply.DefaultLimits())
	m.same("accounts", "accounts", "id, name, balance, meta")
	m.same("items", "items", "a, b, qty")
	m.same("log", "log", "x, y")

	m.exec(`TRUNCATE items; INSERT INTO items VALUES (1, 'after', 1);
		BEGIN; INSERT INTO log VALUES (9, 'nine'); TRUNCATE log; INSERT INTO log VALUES (10, 'ten'); COMMIT;`)
	m.catchUp(apply.DefaultLimits())
	m.same("items", "items", "a, b, qty")
	m.same("log", "log", "x, y")
}

func randomText(t *testing.T, n int) string {
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b) // incompressible: stored out of line (TOAST)
}

func TestUnchangedToastKeepsValue(t *testing.T) {
	m := newMirror(t)
	big1, big2 := randomText(t, 20000), randomText(t, 30000)
	m.exec(fmt.Sprintf(`CREATE TABLE docs (id int PRIMARY KEY, small int, body text);
		INSERT INTO docs VALUES (1, 0, '%s'), (2, 0, '%s'), (3, 0, '%s');`, big1, big2, big1))
	m.catchUp(apply.DefaultLimits())
	// Each update leaves body unchanged: pgoutput sends it as 'u'.
	m.exec(`UPDATE docs SET small = 1 WHERE id = 1;
		BEGIN; UPDATE docs SET small = 2 WHERE id = 2; UPDATE docs SET small = 3 WHERE id = 2; COMMIT;
		UPDATE docs SET id = 30, small = 4 WHERE id = 3;`)
	m.catchUp(apply.DefaultLimits())
	m.same("docs", "docs", "id, small, body")
	// Inserted and updated within one batch: the unsent value comes from the insert.
	m.exec(fmt.Sprintf(`BEGIN; INSERT INTO docs VALUES (4, 0, '%s'); COMMIT; UPDATE docs SET small = 5 WHERE id = 4;`, big2))
	m.catchUp(apply.DefaultLimits())
	m.same("docs", "docs", "id, small, body")
}

func TestHostileIdentifiers(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE SCHEMA "My ""Odd"" Schema";
		CREATE TABLE "My ""Odd"" Schema"."select" ("from" int PRIMARY KEY, "we""ird; --col" text, "Größe ✓" text, "a.b" int);
		CREATE TABLE public."order" ("group" text, "'; DROP TABLE x; --" text);
		ALTER TABLE public."order" REPLICA IDENTITY FULL;
		INSERT INTO "My ""Odd"" Schema"."select" VALUES (1, 'it''s; DROP TABLE "select"; --', 'ünïcødé ✓', 1), (2, '', NULL, 2);
		INSERT INTO public."order" VALUES ('x', '"); DELETE FROM x; --'), ('x', '"); DELETE FROM x; --');`)
	m.catchUp(apply.DefaultLimits())
	m.exec(`UPDATE "My ""Odd"" Schema"."select" SET "Größe ✓" = 'ß' WHERE "from" = 2;
		DELETE FROM public."order" WHERE ctid = (SELECT ctid FROM public."order" LIMIT 1);`)
	m.catchUp(apply.DefaultLimits())
	copyName := `"` + strings.ReplaceAll(sqlite.TableName(`My "Odd" Schema`, "select"), `"`, `""`) + `"`
	m.same(`"My ""Odd"" Schema"."select"`, copyName, `"from", "we""ird; --col", "Größe ✓", "a.b"`)
	m.same(`public."order"`, `"order"`, `"group", "'; DROP TABLE x; --"`)
}

func TestTypesReadBackEqual(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
		CREATE DOMAIN posint AS int CHECK (VALUE > 0);
		CREATE TABLE types (id int PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8,
			n numeric, n2 numeric(10,3), t text, vc varchar(10), c char(4), by bytea, j json, jb jsonb,
			d date, tm time, ts timestamp, tstz timestamptz, iv interval, u uuid, arr int[], tarr text[],
			e mood, dom posint, pt point, inet inet);
		INSERT INTO types VALUES
		 (1, true, -32768, -2147483648, -9223372036854775808, 1.1, 3.141592653589793, 123456789012345678901234567890.123456789012,
		  -0.001, 'héllo', 'v', 'ab', '\x00ff10', '{"a": [1, 2]}', '{"b": {"c": null}}', '2024-02-29', '23:59:59.999999',
		  '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.5+02', '1 year 2 mons 3 days 04:05:06', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
		  '{1,NULL,3}', '{"a b","c,d"}', 'happy', 7, '(1,2)', '10.0.0.1/8'),
		 (2, false, 32767, 2147483647, 9223372036854775807, 'NaN', 'Infinity', 'NaN', 0, '', '', '', '', 'null', '[]',
		  'infinity', '00:00', '-infinity', 'infinity', '-00:00:01', '00000000-0000-0000-0000-000000000000', '{}', '{}', 'sad', 1, '(0,0)', '::1'),
		 (3, NULL, NULL, NULL, NULL, '-Infinity', -0.0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		  '0044-03-15 BC', NULL, '0044-03-15 12:00 BC', '1999-12-31 23:59:59.000001+00', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);`)
	m.catchUp(apply.DefaultLimits())
	got, err := mirrortest.SQLiteRows(context.Background(), m.path, `SELECT id, b, i2, i4, i8, f4, f8, n, n2, t, vc, c, by, j, jb,
		d, tm, ts, tstz, iv, u, arr, tarr, e, dom, pt, inet, typeof(by), typeof(n), typeof(f8), typeof(i8) FROM types`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`1 | 1 | -32768 | -2147483648 | -9223372036854775808 | 1.1 | 3.141592653589793 | 123456789012345678901234567890.123456789012 | -0.001 | héllo | v | ab   | \x00ff10 | {"a": [1, 2]} | {"b": {"c": null}} | 2024-02-29 | 23:59:59.999999 | 2024-01-02T03:04:05.123456 | 2024-01-02T01:04:05.500000Z | 1 year 2 mons 3 days 04:05:06 | a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 | {1,NULL,3} | {"a b","c,d"} | happy | 7 | (1,2) | 10.0.0.1/8 | blob | text | real | integer`,
		`2 | 0 | 32767 | 2147483647 | 9223372036854775807 | NaN | Infinity | NaN | 0.000 |  |  |      | \x | null | [] | infinity | 00:00:00 | -infinity | infinity | -00:00:01 | 00000000-0000-0000-0000-000000000000 | {} | {} | sad | 1 | (0,0) | ::1 | blob | text | real | integer`,
		// SQLite keeps no negative zero: -0 reads back as 0 (equal as numbers).
		`3 | NULL | NULL | NULL | NULL | -Infinity | 0 | NULL | NULL | NULL | NULL | NULL | NULL | NULL | NULL | 0044-03-15 BC | NULL | 0044-03-15 12:00:00 BC | 1999-12-31T23:59:59.000001Z | NULL | NULL | NULL | NULL | NULL | NULL | NULL | NULL | null | null | real | null`,
	}
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			g := "(missing)"
			if i < len(got) {
				g = got[i]
			}
			t.Errorf("row %d\n got %s\nwant %s", i+1, g, want[i])
		}
	}
}

func TestSchemaChangesMidStream(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE evolving (id int PRIMARY KEY, a text); INSERT INTO evolving VALUES (1, 'one');`)
	m.catchUp(apply.DefaultLimits())
	m.exec(`INSERT INTO evolving VALUES (2, 'two');
		ALTER TABLE evolving ADD COLUMN b int;
		INSERT INTO evolving VALUES (3, 'three', 3);
		UPDATE evolving SET b = 1 WHERE id = 1;
		ALTER TABLE evolving DROP COLUMN a;
		INSERT INTO evolving VALUES (4, 4);`)
	m.catchUp(apply.DefaultLimits())
	m.same("evolving", "evolving", "id, b")
	// The dropped column keeps what it held; rows written after the drop have NULL.
	got, err := mirrortest.SQLiteRows(context.Background(), m.path, "SELECT id, a FROM evolving")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ";") != "1 | one;2 | two;3 | three;4 | NULL" {
		t.Errorf("dropped column: %q", got)
	}
}

// TestBacklogIsGrouped: a backlog of small transactions is applied many to
// a target transaction, not one each. How many depends on how often the
// engine finds its input drained, so the bound is loose; the stream's side
// of it is TestBatchesSpanTransactions in package source. (Once, event
// batches ended at every commit and pgbench catch-up into DuckDB went from
// 3 s to 75 s.)
func TestBacklogIsGrouped(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE small (id int PRIMARY KEY, v text);`)
	m.catchUp(apply.DefaultLimits())
	const txs = 10000
	m.exec(fmt.Sprintf(`DO $$ BEGIN FOR i IN 1..%d LOOP INSERT INTO small VALUES (i, 'v'); COMMIT; END LOOP; END $$`, txs))
	commits := 0
	m.onCommit = func(apply.CommitInfo) { commits++ }
	m.catchUp(apply.DefaultLimits())
	m.same("small", "small", "id, v")
	t.Logf("%d source transactions in %d target commits", txs, commits)
	if commits > txs/4 {
		t.Fatalf("%d source transactions took %d target commits: the backlog was not grouped", txs, commits)
	}
}

func TestHugeTransactionInChunks(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE big (id int PRIMARY KEY, v text);`)
	m.catchUp(apply.DefaultLimits())
	m.exec(`BEGIN;
		INSERT INTO big SELECT i, md5(i::text) FROM generate_series(1, 60000) i;
		UPDATE big SET v = 'u' WHERE id % 10 = 0;
		DELETE FROM big WHERE id % 9 = 0;
		COMMIT;`)
	lim := apply.DefaultLimits()
	lim.ChunkRows = 1000
	m.catchUp(lim)
	m.same("big", "big", "id, v")
}

func TestIdlePublicationDoesNotPinWAL(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE watched (id int PRIMARY KEY); CREATE TABLE busy (id int, pad text);`)
	m.catchUp(apply.DefaultLimits(), "public.watched")
	m.exec(`INSERT INTO busy SELECT i, repeat('x', 200) FROM generate_series(1, 20000) i;`)
	var before string
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, m.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	m.catchUp(apply.DefaultLimits(), "public.watched")
	// walmirror's last status update is read by the walsender after the
	// run returned: once the slot is released, it has been (seen on 16).
	for deadline := time.Now().Add(10 * time.Second); ; {
		var active bool
		if err := conn.QueryRow(ctx, `SELECT active FROM pg_replication_slots WHERE slot_name = $1`, m.slot).Scan(&active); err != nil {
			t.Fatal(err)
		}
		if !active {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot is still active 10 s after walmirror stopped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var advanced bool
	if err := conn.QueryRow(ctx, `SELECT confirmed_flush_lsn >= $1::pg_lsn - 8192 FROM pg_replication_slots WHERE slot_name = $2`,
		before, m.slot).Scan(&advanced); err != nil {
		t.Fatal(err)
	}
	if !advanced {
		t.Error("the slot did not advance past WAL that held nothing for the publication")
	}
}

// TestReconnectsAfterServerRestart crashes the source mid-stream; walmirror
// must reconnect with backoff and carry on without losing or doubling rows.
func TestReconnectsAfterServerRestart(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE ticks (n int)`) // no key: a doubled row would show
	m.exec(`ALTER TABLE ticks REPLICA IDENTITY FULL`)
	m.catchUp(apply.DefaultLimits())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sink, err := sqlite.Open(ctx, m.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	var logs strings.Builder
	lw := &lockedWriter{w: &logs}
	done := make(chan error, 1)
	go func() {
		done <- apply.Run(ctx, sink, apply.Config{
			Source:     source.Config{DSN: m.dsn, Slot: m.slot, Publication: "walmirror"},
			MaxBackoff: time.Second,
			Logger:     slog.New(slog.NewTextHandler(lw, nil)),
		})
	}()
	for i := range 3 {
		m.exec(fmt.Sprintf(`INSERT INTO ticks SELECT %d FROM generate_series(1, 100)`, i))
	}
	// Crash the source only once walmirror is streaming: before that, a
	// failure to connect is an error to report, not to retry.
	for !strings.Contains(lw.String(), "msg=streaming") {
		select {
		case err := <-done:
			t.Fatalf("run ended early: %v\n%s", err, lw.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := server.Restart(ctx, true); err != nil {
		t.Fatal(err)
	}
	for i := 3; i < 6; i++ {
		m.exec(fmt.Sprintf(`INSERT INTO ticks SELECT %d FROM generate_series(1, 100)`, i))
	}
	want, err := mirrortest.SourceRows(ctx, m.dsn, "SELECT n, count(*) FROM ticks GROUP BY n")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := mirrortest.SQLiteRows(ctx, m.path, "SELECT n, count(*) FROM ticks GROUP BY n")
		if err == nil && mirrortest.Diff(want, got) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("copy never caught up: %v %s\nlogs:\n%s", err, mirrortest.Diff(want, got), lw.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	out := lw.String()
	if strings.Count(out, "replication interrupted") != 1 || !strings.Contains(out, "replication resumed") {
		t.Errorf("want one interruption and one resumption logged, got:\n%s", out)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.w)
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestReadySignal: OnReady fires once the copy is complete — after a chunked
// initial copy's last chunk (not at the start of streaming), and when a
// later run starts streaming with nothing left to copy — and CommitInfo
// lists the tables and keys a commit changed.
func TestReadySignal(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE r (id int PRIMARY KEY, v text); INSERT INTO r SELECT g, 'v' FROM generate_series(1, 1000) g;`)
	run := func() (ready []schema.State, changes []apply.TableChange) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		sink, err := sqlite.Open(ctx, m.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close()
		err = apply.Run(ctx, sink, apply.Config{
			Source:        source.Config{DSN: m.dsn, Slot: m.slot, Publication: "walmirror"},
			StopAtNow:     true,
			InitialCopy:   "chunked",
			CopyChunkRows: 300,
			ChangeKeys:    10,
			OnReady:       func(st schema.State) { ready = append(ready, st) },
			OnCommit:      func(c apply.CommitInfo) { changes = append(changes, c.Changes...) },
			Logger:        slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		return ready, changes
	}
	ready, _ := run()
	if len(ready) != 1 || len(ready[0].Copies) != 0 {
		t.Fatalf("first run: ready %+v, want once with no copies", ready)
	}
	m.same("r", "r", "id, v")
	m.exec(`UPDATE r SET v = 'w' WHERE id IN (3, 4)`)
	ready, changes := run()
	if len(ready) != 1 {
		t.Errorf("second run: ready %d times, want once (at the start of streaming)", len(ready))
	}
	want := []apply.TableChange{{RelID: changes[0].RelID, Table: "public.r", Keys: [][]string{{"3"}, {"4"}}}}
	if !reflect.DeepEqual(changes, want) {
		t.Errorf("changes %+v, want %+v", changes, want)
	}
	// A column added with a default changes every row of the copy, not
	// only the one updated after it.
	m.exec(`ALTER TABLE r ADD COLUMN w int DEFAULT 7`)
	m.exec(`UPDATE r SET v = 'z' WHERE id = 9`)
	_, changes = run()
	all := false
	for _, c := range changes {
		all = all || c.Table == "public.r" && c.AllRows
	}
	if !all {
		t.Errorf("changes after ADD COLUMN ... DEFAULT: %+v, want all rows of public.r", changes)
	}
	m.same("r", "r", "id, v, w")
}

// TestHookPanicReleasesSlot: a hook that panics panics Run; a caller that
// recovers finds the replication connection closed (the slot free for the
// next Run in the same process) and OnStop called. Before, the stream's
// goroutine kept the slot until the process ended.
func TestHookPanicReleasesSlot(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE h (id int PRIMARY KEY, v text); INSERT INTO h VALUES (1, 'a');`)
	m.catchUp(apply.Limits{})
	m.exec(`INSERT INTO h VALUES (2, 'b')`)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sink, err := sqlite.Open(ctx, m.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var stopErr error
	recovered := func() (p any) {
		defer func() { p = recover() }()
		_ = apply.Run(ctx, sink, apply.Config{
			Source: source.Config{DSN: m.dsn, Slot: m.slot, Publication: "walmirror"},
			OnCommit: func(c apply.CommitInfo) {
				if c.Stats.Transactions > 0 {
					panic("hook failed")
				}
			},
			OnStop: func(err error) { stopErr = err },
			Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		})
		return nil
	}()
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	if recovered != "hook failed" {
		t.Fatalf("Run did not panic with the hook's value: %v", recovered)
	}
	if !errors.Is(stopErr, apply.ErrPanicked) || !strings.Contains(stopErr.Error(), "hook failed") || strings.Contains(stopErr.Error(), "\n") {
		t.Errorf("OnStop got %q, want ErrPanicked with the hook's value, on one line", stopErr)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		active, err := mirrortest.SourceRows(ctx, m.dsn, "SELECT active::text FROM pg_replication_slots WHERE slot_name = '"+m.slot+"'")
		if err != nil {
			t.Fatal(err)
		}
		if len(active) == 1 && active[0] == "false" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot is still in use 10 s after Run panicked: %q", active)
		}
	}
	m.catchUp(apply.Limits{})
	m.same("h", "h", "id, v")
}

// TestResyncTablesAtStopPosition: Config.ResyncTables on a run whose stop
// position the copy holds already (an idle source) still copies the
// tables again before it stops; the run returned at once, with nothing
// copied or recorded.
func TestResyncTablesAtStopPosition(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE h (id int PRIMARY KEY, v text); INSERT INTO h SELECT g, 'v' || g FROM generate_series(1, 50) g;`)
	m.catchUp(apply.Limits{})
	db, err := sql.Open("sqlite3", m.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE h SET v = 'damaged' WHERE id < 10; DELETE FROM h WHERE id = 20`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	oid, err := mirrortest.SourceRows(context.Background(), m.dsn, "SELECT 'h'::regclass::oid::text")
	if err != nil || len(oid) != 1 {
		t.Fatalf("oid of h: %q %v", oid, err)
	}
	relid, _ := strconv.ParseUint(oid[0], 10, 32)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sink, err := sqlite.Open(ctx, m.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	err = apply.Run(ctx, sink, apply.Config{
		Source:       source.Config{DSN: m.dsn, Slot: m.slot, Publication: "walmirror"},
		StopAtNow:    true,
		ResyncTables: []apply.ResyncTable{{RelID: uint32(relid), Name: "public.h"}},
		Logger:       slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	m.same("h", "h", "id, v")
}

// TestFailedInitialCopyDropsSlot: an initial copy that fails (here on a
// target table walmirror did not create) drops the slot it created, so
// the source keeps no WAL for it; the next start, the table out of the
// way, copies afresh.
func TestFailedInitialCopyDropsSlot(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE f (id int PRIMARY KEY, v text); INSERT INTO f SELECT g, 'v' || g FROM generate_series(1, 20) g;`)
	db, err := sql.Open("sqlite3", m.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE f (id int PRIMARY KEY, v text)`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sink, err := sqlite.Open(ctx, m.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = apply.Run(ctx, sink, apply.Config{
		Source:      source.Config{DSN: m.dsn, Slot: m.slot, Publication: "walmirror"},
		StopAtNow:   true,
		InitialCopy: "single",
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	sink.Close()
	if !errors.Is(err, apply.ErrTargetNotOwned) {
		t.Fatalf("Run onto a table walmirror did not create = %v, want ErrTargetNotOwned", err)
	}
	slots, err := mirrortest.SourceRows(ctx, m.dsn, "SELECT slot_name FROM pg_replication_slots WHERE slot_name = '"+m.slot+"'")
	if err != nil {
		t.Fatal(err)
	}
	if len(slots) != 0 {
		t.Errorf("the failed initial copy left its slot %v", slots)
	}
	if _, err := db.Exec(`DROP TABLE f`); err != nil {
		t.Fatal(err)
	}
	m.catchUp(apply.Limits{})
	m.same("f", "f", "id, v")
}

// TestResyncTablesUnknownRelID: a table to copy again that the source does
// not have is an error naming the field, not a silent no-op.
func TestResyncTablesUnknownRelID(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE u (id int PRIMARY KEY)`)
	m.catchUp(apply.Limits{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sink, err := sqlite.Open(ctx, m.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	err = apply.Run(ctx, sink, apply.Config{
		Source:       source.Config{DSN: m.dsn, Slot: m.slot, Publication: "walmirror"},
		StopAtNow:    true,
		ResyncTables: []apply.ResyncTable{{RelID: 4_000_000_000, Name: "public.nope"}},
		Logger:       slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	var ce *apply.ConfigError
	if !errors.As(err, &ce) || ce.Field != "ResyncTables[0].RelID" {
		t.Fatalf("Run with an unknown table to resync = %v, want a ConfigError for ResyncTables", err)
	}
}

// TestPositionNotCaughtUpWhileApplying: after a keepalive said "caught
// up", a transaction that then arrives (one sent at its commit: it may
// take many seconds to apply) makes OnPosition say "not caught up", with
// the server's WAL at least at its commit, before OnCommit reports it.
// Before, lag metrics, /readyz and progress lines said 0 while a large
// transaction committed during downtime was applied (helper-55).
func TestPositionNotCaughtUpWhileApplying(t *testing.T) {
	m := newMirror(t)
	m.exec(`CREATE TABLE p (id int PRIMARY KEY, v text)`)
	m.catchUp(apply.Limits{})
	type event struct {
		pos    *apply.Position
		commit lsn.LSN
	}
	var mu sync.Mutex
	var events []event
	caughtUp := make(chan struct{}, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sink, err := sqlite.Open(ctx, m.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	done := make(chan error, 1)
	go func() {
		done <- apply.Run(ctx, sink, apply.Config{
			Source: source.Config{DSN: m.dsn, Slot: m.slot, Publication: "walmirror"},
			OnPosition: func(p apply.Position) {
				mu.Lock()
				defer mu.Unlock()
				events = append(events, event{pos: &p})
				if p.CaughtUp {
					select {
					case caughtUp <- struct{}{}:
					default:
					}
				}
			},
			OnCommit: func(c apply.CommitInfo) {
				mu.Lock()
				defer mu.Unlock()
				events = append(events, event{commit: c.State.LSN})
			},
			Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		})
	}()
	select {
	case <-caughtUp:
	case err := <-done:
		t.Fatalf("Run returned %v", err)
	case <-ctx.Done():
		t.Fatal("never caught up")
	}
	start, err := mirrortest.SourceRows(ctx, m.dsn, "SELECT pg_current_wal_insert_lsn()::text")
	if err != nil {
		t.Fatal(err)
	}
	before, err := lsn.Parse(start[0])
	if err != nil {
		t.Fatal(err)
	}
	m.exec(`INSERT INTO p SELECT g, 'v' FROM generate_series(1, 2000) g`)
	var want lsn.LSN // the insert's commit end: the first commit past before
	for {
		mu.Lock()
		for _, e := range events {
			if e.commit > before {
				want = e.commit
				break
			}
		}
		mu.Unlock()
		if want != 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	last := -1 // the last caught-up report before the insert's commit
	commitAt := -1
	for i, e := range events {
		if e.pos != nil && e.pos.CaughtUp && commitAt < 0 {
			last = i
		}
		if e.commit >= want && commitAt < 0 {
			commitAt = i
		}
	}
	ok := false
	for _, e := range events[last+1 : commitAt] {
		// At the transaction's Begin: the server's WAL at its commit's
		// start (a keepalive after the transaction is past its end).
		ok = ok || e.pos != nil && !e.pos.CaughtUp && e.pos.ServerWALEnd > before && e.pos.ServerWALEnd < want
	}
	if !ok {
		t.Errorf("no position said \"not caught up\" between the last caught-up one and the commit: %d events, last caught up at %d, commit at %d", len(events), last, commitAt)
	}
}
