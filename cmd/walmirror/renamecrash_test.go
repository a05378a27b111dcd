package main

import (
	"testing"
)

// TestRenameAfterChangesCrash: a source transaction that changes a table's
// rows, renames it and changes them again, killed right after the target
// commit that holds it (before any checkpoint). DuckDB could not replay
// such a WAL (an UPDATE or DELETE of a table, then ALTER TABLE ... RENAME
// of it, in one transaction: "Table with name t2 does not exist"), and the
// file stayed unopenable for good (helper-58). The restart must open the
// copy and find it equal. Every target; also a move to another schema.
func TestRenameAfterChangesCrash(t *testing.T) {
	needServer(t)
	bin := faultBinary(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 1000) g;
				CREATE TABLE t2 (id int PRIMARY KEY, v int); INSERT INTO t2 SELECT g, g FROM generate_series(1, 100) g;
				CREATE SCHEMA other;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"run", "--source", dsn, "--target", target, "--slot", slot}
			if r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...); r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			// t2 moves to another schema (SQLite: the table "other.t2"), t
			// takes its name.
			mustExec(t, db, `BEGIN; UPDATE t2 SET v = 0 WHERE id < 3; ALTER TABLE t2 SET SCHEMA other; DELETE FROM other.t2 WHERE id = 7;
				UPDATE t SET v = v + 1 WHERE id <= 10; DELETE FROM t WHERE id = 20; ALTER TABLE t RENAME TO t2;
				UPDATE t2 SET v = v + 1 WHERE id <= 5; INSERT INTO t2 VALUES (5000, 1); COMMIT`)
			runToFault(t, bin, args, "apply.after-commit:1")
			if r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...); r.code != 0 {
				t.Fatalf("run after the kill exited %d:\n%s", r.code, r.stderr)
			}
			compareRows(t, dsn, rows, "SELECT id, v FROM t2", "SELECT id, v FROM other.t2")
			// Columns renamed, added and dropped after changes, and the
			// table renamed back, in one transaction.
			mustExec(t, db, `BEGIN; UPDATE t2 SET v = v * 2 WHERE id <= 30; DELETE FROM t2 WHERE id = 31; ALTER TABLE t2 RENAME COLUMN v TO w;
				UPDATE t2 SET w = w + 1 WHERE id <= 3; ALTER TABLE t2 ADD COLUMN z int DEFAULT 5; UPDATE t2 SET z = 6 WHERE id = 1;
				ALTER TABLE t2 RENAME TO t3; DELETE FROM t3 WHERE id = 32; UPDATE other.t2 SET v = 9; ALTER TABLE other.t2 RENAME TO t4; UPDATE other.t4 SET v = 10 WHERE id = 1; COMMIT`)
			runToFault(t, bin, args, "apply.after-commit:1")
			if r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...); r.code != 0 {
				t.Fatalf("run after the second kill exited %d:\n%s", r.code, r.stderr)
			}
			compareRows(t, dsn, rows, "SELECT id, w, z FROM t3", "SELECT id, v FROM other.t4")
			// A table changed and dropped, and another renamed to its name:
			// the dropped one's copy moves aside.
			mustExec(t, db, `CREATE TABLE t5 (id int PRIMARY KEY, v int); INSERT INTO t5 VALUES (1, 1), (2, 2)`)
			if r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...); r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			mustExec(t, db, `BEGIN; UPDATE t3 SET w = 0 WHERE id = 1; DELETE FROM t3 WHERE id = 2; DROP TABLE t3; ALTER TABLE t5 RENAME TO t3;
				UPDATE t3 SET v = 7 WHERE id = 1; COMMIT`)
			runToFault(t, bin, args, "apply.after-commit:1")
			if r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...); r.code != 0 {
				t.Fatalf("run after the third kill exited %d:\n%s", r.code, r.stderr)
			}
			compareRows(t, dsn, rows, "SELECT id, v FROM t3")
		})
	}
}
