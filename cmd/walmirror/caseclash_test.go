package main

import (
	"strings"
	"testing"
)

// TestColumnCaseClash: source columns whose names differ only in letter
// case ("a" and "A"; or "Val" renamed to "VAL2" beside "val2"), which
// SQLite's and DuckDB's names cannot tell apart. Both stop and say so,
// naming the columns, before changing the copy. Before, SQLite stopped with
// "duplicate column name" after moving the live column "val2" aside as if it
// were a dropped one kept. PostgreSQL copies them.
func TestColumnCaseClash(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE m (id int PRIMARY KEY, "Val" text, val2 text);
				INSERT INTO m VALUES (1, 'v', 'w');`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() result {
				t.Helper()
				return walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
			}
			if r := run(); r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			mustExec(t, db, `ALTER TABLE m RENAME COLUMN "Val" TO "VAL2"; UPDATE m SET "VAL2" = 'v2'`)
			r := run()
			if tg.name == "postgres" {
				if r.code != 0 {
					t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
				}
				compareRows(t, dsn, rows, `SELECT id, "VAL2", val2 FROM m`)
				return
			}
			if r.code == 0 || !strings.Contains(r.stderr, `columns "VAL2" and "val2"`) || !strings.Contains(r.stderr, "does not tell apart") {
				t.Fatalf("run exited %d, want a stop naming the columns SQLite/DuckDB cannot tell apart:\n%s", r.code, r.stderr)
			}
			if strings.Contains(r.stderr, "moves aside") {
				t.Errorf("a column was moved aside before the stop:\n%s", r.stderr)
			}
			// The copy is as it was: nothing renamed or moved.
			got, err := rows(`SELECT id, "Val", val2 FROM m`)
			if err != nil || strings.Join(got, ";") != "1 | v | w" {
				t.Errorf("copy after the stop = %q, %v; want 1 | v | w", got, err)
			}
			// A table that has such columns from the start.
			dsn2, db2 := newDatabase(t, `CREATE TABLE n (id int PRIMARY KEY, a int, "A" int); INSERT INTO n VALUES (1, 2, 3);`)
			dropSlotAtEnd(t, db2, "s_"+db2)
			target2, _ := tg.new(t)
			r = walmirror(t, nil, "run", "--source", dsn2, "--target", target2, "--slot", "s_"+db2, "--stop-at-lsn", "now")
			if r.code == 0 || !strings.Contains(r.stderr, `columns "a" and "A"`) {
				t.Fatalf("run exited %d, want a stop naming columns a and A:\n%s", r.code, r.stderr)
			}
		})
	}
}

// TestRenameCaseThenAddOldName: a column renamed in letter case only and a
// new column under its old name (RENAME v TO "V"; ADD v) is a clash SQLite
// and DuckDB cannot hold either, and is said so.
func TestRenameCaseThenAddOldName(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE m (id int PRIMARY KEY, v text); INSERT INTO m VALUES (1, 'a');`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() result {
				t.Helper()
				return walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
			}
			if r := run(); r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			mustExec(t, db, `ALTER TABLE m RENAME COLUMN v TO "V"; ALTER TABLE m ADD COLUMN v int; INSERT INTO m VALUES (2, 'b', 3)`)
			r := run()
			if tg.name == "postgres" {
				if r.code != 0 {
					t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
				}
				compareRows(t, dsn, rows, `SELECT id, "V", v FROM m`)
				return
			}
			if r.code == 0 || !strings.Contains(r.stderr, `columns "V" and "v"`) || !strings.Contains(r.stderr, "does not tell apart") {
				t.Fatalf("run exited %d, want a stop naming the columns SQLite/DuckDB cannot tell apart:\n%s", r.code, r.stderr)
			}
		})
	}
}
