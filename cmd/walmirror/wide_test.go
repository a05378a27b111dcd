package main

import (
	"testing"
)

// TestWidestTable: a table of 1,600 columns (PostgreSQL's maximum) into a
// PostgreSQL target: its updates and deletes went through a staging table
// of the table's columns plus one, which PostgreSQL refused ("tables can
// have at most 1600 columns"), stopping every run for good. They now go
// row by row. Every target.
func TestWidestTable(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `DO $$ BEGIN
				EXECUTE 'CREATE TABLE wide (id int PRIMARY KEY, ' || (SELECT string_agg(format('c%s int', g), ', ') FROM generate_series(1, 1599) g) || ')';
			END $$;
			INSERT INTO wide (id, c1, c1599) SELECT g, g, g FROM generate_series(1, 10) g;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() {
				t.Helper()
				if r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now"); r.code != 0 {
					t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
				}
			}
			run()
			mustExec(t, db, `UPDATE wide SET c2 = 2, c1599 = -1 WHERE id <= 3; DELETE FROM wide WHERE id IN (4, 5); UPDATE wide SET id = 100 WHERE id = 6;
				INSERT INTO wide (id, c800) VALUES (11, 8)`)
			run()
			compareRows(t, dsn, rows, "SELECT id, c1, c2, c800, c1599 FROM wide ORDER BY id")
		})
	}
}
