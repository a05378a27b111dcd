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
// saying the source's history does not hold the copy's position, and
// --resync copies the new primary afresh. Before, the run went on from the
// copy's position (exit 0): the new primary's transactions before it were
// skipped and the old primary's extra rows stayed (helper-66), on every
// target.
func TestPromotedStandbyBehindCopy(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			ctx := t.Context()
			primary := testenv.StartT(t, testenv.Options{})
			db, err := primary.CreateDatabase(ctx, "promo")
			if err != nil {
				t.Fatal(err)
			}
			if err := primary.Exec(ctx, db, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g`); err != nil {
				t.Fatal(err)
			}
			target, rows := tg.new(t)
			slot := "s_promo"
			runNow(t, primary.DSN(db), target, slot)
			standby, err := primary.StartStandby(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { standby.Close() })
			if err := standby.Stop(); err != nil {
				t.Fatal(err)
			}
			// Applied to the copy on timeline 1; the standby never gets it.
			if err := primary.Exec(ctx, db, `INSERT INTO t SELECT g, 'old primary' FROM generate_series(101, 5000) g`); err != nil {
				t.Fatal(err)
			}
			runNow(t, primary.DSN(db), target, slot)
			if err := primary.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := standby.Restart(ctx, false); err != nil {
				t.Fatal(err)
			}
			if err := standby.Exec(ctx, db, `SELECT pg_promote()`); err != nil {
				t.Fatal(err)
			}
			dsn := standby.DSN(db)
			if err := standby.Exec(ctx, db, `INSERT INTO t VALUES (100000, 'new primary'); UPDATE t SET v = 'changed' WHERE id <= 10`); err != nil {
				t.Fatal(err)
			}
			r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
			if r.code != 1 || !strings.Contains(r.stderr, "the source is on timeline 2") || !strings.Contains(r.stderr, "--resync") {
				t.Fatalf("run after the promotion exited %d, want 1 saying the source's history lacks the copy's position:\n%s", r.code, r.stderr)
			}
			runNow(t, dsn, target, slot, "--resync")
			compareRows(t, dsn, rows, "SELECT id, v FROM t")
			// Stored on timeline 2 now: runs go on.
			if err := standby.Exec(ctx, db, `INSERT INTO t VALUES (100001, 'later')`); err != nil {
				t.Fatal(err)
			}
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, "SELECT id, v FROM t")
		})
	}
}

// TestSourceRestoredBehindCopy: the source restored from a copy of its
// files taken before the copy applied more (a file-system snapshot: the
// same timeline, its slot as it was): the next run stops, saying the copy
// is past the end of the source's WAL, and --resync copies it afresh.
// Before, the run went on from the copy's position (exit 0), skipping the
// restored source's transactions up to there and keeping rows it does not
// have. Every target.
func TestSourceRestoredBehindCopy(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			ctx := t.Context()
			src := testenv.StartT(t, testenv.Options{})
			db, err := src.CreateDatabase(ctx, "restore")
			if err != nil {
				t.Fatal(err)
			}
			if err := src.Exec(ctx, db, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g`); err != nil {
				t.Fatal(err)
			}
			target, rows := tg.new(t)
			slot := "s_restore"
			runNow(t, src.DSN(db), target, slot)
			snapshot, err := src.StartCopy(ctx) // the backup, taken now
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { snapshot.Close() })
			if err := snapshot.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := src.Exec(ctx, db, `INSERT INTO t SELECT g, 'lost with the old source' FROM generate_series(101, 5000) g`); err != nil {
				t.Fatal(err)
			}
			runNow(t, src.DSN(db), target, slot)
			// The source is restored from the backup.
			if err := src.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := snapshot.Restart(ctx, false); err != nil {
				t.Fatal(err)
			}
			dsn := snapshot.DSN(db)
			if err := snapshot.Exec(ctx, db, `INSERT INTO t VALUES (100000, 'after the restore'); UPDATE t SET v = 'changed' WHERE id <= 10`); err != nil {
				t.Fatal(err)
			}
			r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
			if r.code != 1 || !strings.Contains(r.stderr, "past the end of the source's WAL") || !strings.Contains(r.stderr, "--resync") {
				t.Fatalf("run after the restore exited %d, want 1 saying the copy is ahead of the source:\n%s", r.code, r.stderr)
			}
			runNow(t, dsn, target, slot, "--resync")
			compareRows(t, dsn, rows, "SELECT id, v FROM t")
		})
	}
}
