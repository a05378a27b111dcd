package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/testenv"
)

// TestStandbySource: a hot standby as --source is refused before anything
// is made, saying to use the primary. Before, run made its slot on the
// standby and copied the tables, then stopped with "recovery is in
// progress" at its first publication poll, at every start (helper-66:
// PostgreSQL 16-18 decode on standbys).
func TestStandbySource(t *testing.T) {
	needServer(t)
	ctx := t.Context()
	primary := testenv.StartT(t, testenv.Options{})
	db, err := primary.CreateDatabase(ctx, "standby")
	if err != nil {
		t.Fatal(err)
	}
	if err := primary.Exec(ctx, db, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');
		CREATE PUBLICATION walmirror FOR TABLE t`); err != nil {
		t.Fatal(err)
	}
	standby, err := primary.StartStandby(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { standby.Close() })
	dsn := standby.DSN(db)
	target := "sqlite:" + filepath.Join(t.TempDir(), "copy.db")

	noFile := func(after string) {
		t.Helper()
		if _, err := os.Stat(strings.TrimPrefix(target, "sqlite:")); err == nil {
			t.Errorf("%s left a target file behind", after)
		}
	}
	r := walmirror(t, nil, "check", "--source", dsn, "--target", target)
	if r.code == 0 || !strings.Contains(r.stdout, "FAIL") || !strings.Contains(r.stdout, "the source is a standby") {
		t.Errorf("check against a standby exited %d, want a FAIL naming it:\n%s%s", r.code, r.stdout, r.stderr)
	}
	noFile("check")
	r = walmirror(t, nil, "run", "--source", dsn, "--target", target, "--stop-at-lsn", "now")
	if r.code == 0 || !strings.Contains(r.stderr, "the source is a standby") || !strings.Contains(r.stderr, "point it at the primary") {
		t.Errorf("run against a standby exited %d, want a refusal naming it:\n%s", r.code, r.stderr)
	}
	noFile("run")
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var slots int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots`).Scan(&slots); err != nil || slots != 0 {
		t.Errorf("%d slots on the standby (%v), want none", slots, err)
	}
}

// TestPromotedStandbyBehindCopy: a standby promoted before it received
// what the copy had applied (asynchronous replication; here a standby
// stopped meanwhile), whose slot survived (copied with its data directory,
// as a PostgreSQL 17 failover slot would be synced): the next run stops,
// saying the source's history does not hold the copy's position (and so
// do check and status), and --resync copies the new primary afresh. Before, the run went on from the
// copy's position (exit 0): the new primary's transactions before it were
// skipped and the old primary's extra rows stayed (helper-66), on every
// target.
func TestPromotedStandbyBehindCopy(t *testing.T) {
	testSourceReplaced(t, (*testenv.Server).StartStandby, true, "the source is on timeline 2")
}

// TestSourceRestoredBehindCopy: the source restored from a copy of its
// files taken before the copy applied more (a file-system snapshot: the
// same timeline, its slot as it was): the next run stops, saying the copy
// is past the end of the source's WAL, and --resync copies it afresh.
// Before, the run went on from the copy's position (exit 0), skipping the
// restored source's transactions up to there and keeping rows it does not
// have. Every target.
func TestSourceRestoredBehindCopy(t *testing.T) {
	testSourceReplaced(t, (*testenv.Server).StartCopy, false, "past the end of the source's WAL")
}

// testSourceReplaced copies a source, clones it (clone), has the copy
// apply more from the original only, then replaces the original with the
// clone (promoted when promote): the next run must stop saying want, and
// --resync then copy the clone exactly, and runs after it go on.
func testSourceReplaced(t *testing.T, clone func(*testenv.Server, context.Context) (*testenv.Server, error), promote bool, want string) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			ctx := t.Context()
			orig := testenv.StartT(t, testenv.Options{})
			db, err := orig.CreateDatabase(ctx, "replaced")
			if err != nil {
				t.Fatal(err)
			}
			exec := func(s *testenv.Server, sql string) {
				t.Helper()
				if err := s.Exec(ctx, db, sql); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			exec(orig, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g`)
			target, rows := tg.new(t)
			slot := "s_replaced"
			runNow(t, orig.DSN(db), target, slot)
			next, err := clone(orig, ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { next.Close() })
			if err := next.Stop(); err != nil {
				t.Fatal(err)
			}
			// Applied to the copy; the clone never gets it.
			exec(orig, `INSERT INTO t SELECT g, 'only in the original' FROM generate_series(101, 5000) g`)
			runNow(t, orig.DSN(db), target, slot)
			if err := orig.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := next.Restart(ctx, false); err != nil {
				t.Fatal(err)
			}
			if promote {
				exec(next, `SELECT pg_promote()`)
			}
			dsn := next.DSN(db)
			exec(next, `INSERT INTO t VALUES (100000, 'after the switch'); UPDATE t SET v = 'changed' WHERE id <= 10`)
			// check says so before run, without changing anything.
			r := walmirror(t, nil, "check", "--source", dsn, "--target", target, "--slot", slot, "--tables", "t")
			if r.code != 1 || !strings.Contains(r.stdout, "FAIL history: ") || !strings.Contains(r.stdout, want) {
				t.Fatalf("check after the switch exited %d, want 1 with a FAIL history line saying %q:\n%s%s", r.code, want, r.stdout, r.stderr)
			}
			// So does status, which a monitor runs (helper-113: "lag: 0
			// (caught up)", exit 0).
			r = walmirror(t, nil, "status", "--source", dsn, "--target", target)
			if r.code != 1 || !strings.Contains(r.stdout, "problem:") || !strings.Contains(r.stdout, want) || strings.Contains(r.stdout, "caught up") {
				t.Fatalf("status after the switch exited %d, want 1 with a problem saying %q:\n%s%s", r.code, want, r.stdout, r.stderr)
			}
			r = walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
			if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "--resync") {
				t.Fatalf("run after the switch exited %d, want 1 saying %q:\n%s", r.code, want, r.stderr)
			}
			runNow(t, dsn, target, slot, "--resync")
			compareRows(t, dsn, rows, "SELECT id, v FROM t")
			// Stored from the clone now: runs go on.
			exec(next, `INSERT INTO t VALUES (100001, 'later')`)
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, "SELECT id, v FROM t")
		})
	}
}
