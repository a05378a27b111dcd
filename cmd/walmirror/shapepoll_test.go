package main

import (
	"testing"
)

// TestShapeChangeWithoutRowChange: a column renamed, or changed between
// timestamp and timestamptz in a UTC session (no rewrite: a Rails or Django
// migration on most servers), with no row of the table changed after it.
// pgoutput sends no Relation message until a row changes, and the
// publication poll compares only data files, membership and names: every
// target kept the old column name or type, exit 0, PostgreSQL 14-18 (verify:
// "has no column", or "differs in at"). Now the publication poll compares
// each table's columns with the shape the copy has (checkColumns).
func TestShapeChangeWithoutRowChange(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE ev (id int PRIMARY KEY, v text, at timestamp);
				INSERT INTO ev VALUES (1, 'a', '2024-01-01 10:00:00'), (2, 'b', '1999-12-31 23:59:59.5');`)
			target, _ := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() {
				t.Helper()
				if r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now"); r.code != 0 {
					t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
				}
			}
			run()
			mustExec(t, db, `SET timezone = 'UTC'; ALTER TABLE ev ALTER COLUMN at TYPE timestamptz; ALTER TABLE ev RENAME COLUMN v TO vee`)
			run()
			if r := walmirror(t, nil, "verify", "--source", dsn, "--target", target); r.code != 0 {
				t.Fatalf("verify exited %d:\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}
