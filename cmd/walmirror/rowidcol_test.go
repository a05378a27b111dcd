package main

import (
	"strings"
	"testing"
)

// TestKeylessRowidColumn: a keyless table (REPLICA IDENTITY FULL) with a
// column named rowid, holding equal rows. SQLite's keyless updates and
// deletes pick one row by rowid, which the column hid: an update of one of
// two equal rows changed every row with that rowid value and a later
// delete missed, exit 0. SQLite now uses an alias no column hides
// (_rowid_, oid); DuckDB refuses such a table by name; PostgreSQL copies it.
func TestKeylessRowidColumn(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE r (rowid int, v text);
				ALTER TABLE r REPLICA IDENTITY FULL;
				INSERT INTO r VALUES (1, 'a'), (1, 'a'), (1, 'b'), (7, 'c');`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() result {
				t.Helper()
				return walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
			}
			r := run()
			if tg.name == "duckdb" {
				if r.code == 0 || !strings.Contains(r.stderr, "rowid") {
					t.Fatalf("run exited %d, want a stop naming the rowid column:\n%s", r.code, r.stderr)
				}
				return
			}
			if r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			mustExec(t, db, `UPDATE r SET v = 'z' WHERE ctid = (SELECT min(ctid) FROM r WHERE v = 'a');
				DELETE FROM r WHERE ctid = (SELECT max(ctid) FROM r WHERE v = 'a');
				UPDATE r SET rowid = 9 WHERE v = 'b'`)
			if r := run(); r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			compareRows(t, dsn, rows, "SELECT rowid, v FROM r ORDER BY rowid, v")
		})
	}
}
