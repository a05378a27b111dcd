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
