package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestRenameCaseOnly: a column and a table renamed to a name that differs
// only in letter case (dm to "DM", t to "T"). SQLite's and DuckDB's names
// ignore case: before, their sinks took the column's new name for a
// dropped column kept under it, renamed the column itself aside, then
// failed to rename it ("no such column"); and took the renamed table for
// another table they cannot tell apart from it. Every later run stopped
// there. Every target.
func TestRenameCaseOnly(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, dm text, other int);
				INSERT INTO t VALUES (1, 'a', 1), (2, 'b', 2);`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() string {
				t.Helper()
				r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
				if r.code != 0 {
					t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
				}
				return r.stderr
			}
			run()
			mustExec(t, db, `ALTER TABLE t RENAME COLUMN dm TO "DM"; INSERT INTO t VALUES (3, 'c', 3); UPDATE t SET "DM" = 'A' WHERE id = 1`)
			if log := run(); strings.Contains(log, "moves aside") {
				t.Errorf("a case-only rename moved a column aside:\n%s", log)
			}
			compareRows(t, dsn, rows, `SELECT id, "DM", other FROM t`)
			mustExec(t, db, `ALTER TABLE t RENAME COLUMN "DM" TO dm; INSERT INTO t VALUES (4, 'd', 4)`)
			run()
			compareRows(t, dsn, rows, `SELECT id, dm, other FROM t`)
			// The table too: SQLite and DuckDB took the renamed table for
			// another one their names cannot tell apart, and stopped.
			mustExec(t, db, `ALTER TABLE t RENAME TO "T"; INSERT INTO "T" VALUES (5, 'e', 5)`)
			run()
			compareRows(t, dsn, rows, `SELECT id, dm, other FROM "T"`)
		})
	}
}

// TestRenameThenAddOldName: RENAME COLUMN v TO v2 and ADD COLUMN v in one
// step (no row change between them): every run stopped ("another column
// took its name"), also when the table was being copied again online
// because of a rewrite (helper-49). The rename is followed, then the new
// column added with its default. A chain of renames (b to c, a to b), or a
// swap through a temporary name, copies the table again. Every target.
func TestRenameThenAddOldName(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text, n int);
				INSERT INTO t SELECT g, 'v' || g, g FROM generate_series(1, 20) g;
				CREATE TABLE r (id int PRIMARY KEY, v text);
				INSERT INTO r SELECT g, 'r' || g FROM generate_series(1, 20) g;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			runNow(t, dsn, target, slot)
			mustExec(t, db, `ALTER TABLE t RENAME COLUMN v TO v2; ALTER TABLE t ADD COLUMN v int DEFAULT 7;
				INSERT INTO t VALUES (21, 'v21', 21, 1); UPDATE t SET v2 = 'x' WHERE id = 3`)
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, `SELECT id, v2, n, v FROM t`)
			// The same while a rewrite has the table copied again.
			mustExec(t, db, `ALTER TABLE r ADD COLUMN w int DEFAULT (random() * 0)::int; INSERT INTO r VALUES (21, 'r21', 0);
				ALTER TABLE r RENAME COLUMN v TO v2; ALTER TABLE r ADD COLUMN v text DEFAULT 'dflt';
				INSERT INTO r VALUES (22, 'r22', 0, 'new'); UPDATE r SET v2 = 'y' WHERE id = 4`)
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, `SELECT id, v2, w, v FROM r`)
			mustExec(t, db, `INSERT INTO r VALUES (23, 'r23', 1, 'n23')`)
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, `SELECT id, v2, w, v FROM r`)
			// A chain, whose order the stream does not tell: the table is
			// copied again online (every run stopped, helper-58), with the
			// run stopped and while it streams.
			mustExec(t, db, `ALTER TABLE t RENAME COLUMN v TO v3; ALTER TABLE t RENAME COLUMN v2 TO v; INSERT INTO t VALUES (22, 'v22', 22, 2)`)
			r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
			if r.code != 0 || !strings.Contains(r.stderr, "cannot follow names swapped or reused") || !strings.Contains(r.stderr, "table copied online") {
				t.Fatalf("a chain of renames: exit %d, want the table copied again online:\n%s", r.code, r.stderr)
			}
			compareRows(t, dsn, rows, `SELECT id, v, n, v3 FROM t`)
			stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--slot", slot, "--metrics-addr", "127.0.0.1:0")
			mustExec(t, db, `UPDATE t SET v = 'w' WHERE id < 5; ALTER TABLE t RENAME COLUMN v TO tmp; ALTER TABLE t RENAME COLUMN n TO v;
				ALTER TABLE t RENAME COLUMN tmp TO n; UPDATE t SET n = 'swapped' WHERE id = 1; DELETE FROM t WHERE id = 2`)
			waitForLog(t, logPath, "msg=\"table copied online\"")
			waitCurrent(t, dsn, logPath, stop)
			if log := stop(); strings.Contains(log, "level=ERROR") {
				t.Fatalf("run failed:\n%s", log)
			}
			compareRows(t, dsn, rows, `SELECT id, n, v, v3 FROM t`)
		})
	}
}

// TestDropAddSameNameBehind: the last column dropped and added again under
// its name while walmirror was stopped, with changes before and after: the
// stream's message does not tell whether it comes before or after the
// re-add. Every run stopped, asking for a fresh copy of everything
// (helper-58); the table is copied again online. Every target.
func TestDropAddSameNameBehind(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, _, target, slot, rows := dropAddBehind(t, tg, "")
			r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
			if r.code != 0 || !strings.Contains(r.stderr, "table copied online") {
				t.Fatalf("run exited %d, want the table copied again online:\n%s", r.code, r.stderr)
			}
			compareRows(t, dsn, rows, `SELECT k, v1, v2 FROM kv`)
		})
	}
}

// TestDropAddSameNameBehindKilled: as TestDropAddSameNameBehind, killed
// once the target stored the table's copy as begun but before its first
// chunk: every later start stopped at that table ("dropped and added again
// ... start a fresh copy"), the copy's own shape not being taken as the
// rows' replacement (found by fuzzing schema changes under kill -9). Every
// target.
func TestDropAddSameNameBehindKilled(t *testing.T) {
	needServer(t)
	bin := faultBinary(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db, target, slot, rows := dropAddBehind(t, tg, "CREATE TABLE o (id int PRIMARY KEY)")
			for i := range 5 {
				mustExec(t, db, fmt.Sprintf("INSERT INTO o VALUES (%d)", i))
			}
			args := []string{"run", "--source", dsn, "--target", target, "--slot", slot, "--commit-rows", "1", "--stop-at-lsn", "now"}
			killed := runToFault(t, bin, args, "backfill.watermark-written:1")
			r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
			if r.code != 0 {
				t.Fatalf("run after the kill exited %d:\n%s\nkilled run:\n%s", r.code, r.stderr, killed)
			}
			compareRows(t, dsn, rows, `SELECT k, v1, v2 FROM kv`)
			compareRows(t, dsn, rows, `SELECT id FROM o`)
		})
	}
}

// dropAddBehind makes table kv (and what extra creates), copies it, then,
// with walmirror stopped, drops its last column and adds it again under its
// name, with changes before and after.
func dropAddBehind(t *testing.T, tg schemaTarget, extra string) (dsn, db, target, slot string, rows func(string) ([]string, error)) {
	t.Helper()
	dsn, db = newDatabase(t, `CREATE TABLE kv (k int PRIMARY KEY, v1 text, v2 text);
		INSERT INTO kv SELECT g, 'a' || g, 'b' || g FROM generate_series(1, 50) g;`+extra)
	target, rows = tg.new(t)
	slot = "s_" + db
	dropSlotAtEnd(t, db, slot)
	runNow(t, dsn, target, slot)
	mustExec(t, db, `UPDATE kv SET v2 = 'before' WHERE k < 20`)
	mustExec(t, db, `ALTER TABLE kv DROP COLUMN v2; ALTER TABLE kv ADD COLUMN v2 int`)
	mustExec(t, db, `UPDATE kv SET v2 = k WHERE k < 10; DELETE FROM kv WHERE k = 30`)
	return dsn, db, target, slot, rows
}
