package main

import (
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
// column added with its default. A chain of renames (b to c, a to b) still
// stops, saying why. Every target.
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
			// A chain: the order of the renames would matter.
			mustExec(t, db, `ALTER TABLE t RENAME COLUMN v TO v3; ALTER TABLE t RENAME COLUMN v2 TO v; INSERT INTO t VALUES (22, 'v22', 22, 2)`)
			r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
			if r.code == 0 || !strings.Contains(r.stderr, "cannot follow names swapped or reused") {
				t.Errorf("a chain of renames: exit %d, want an error saying why:\n%s", r.code, lastLine(r.stderr))
			}
		})
	}
}
