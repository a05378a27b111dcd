package main

import (
	"strings"
	"testing"
)

// TestEnumValueRenamed: ALTER TYPE ... RENAME VALUE changes what every
// stored row of every table using the enum reads as, and writes no WAL for
// those rows. Before, the copy kept the old label without a word (walmirror
// exited 0, only verify saw it). Tables whose columns use the enum (directly,
// under a domain, as array elements) are copied again; ADD VALUE keeps the
// copy exact too. Every target.
func TestEnumValueRenamed(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TYPE colour AS ENUM ('red', 'green');
				CREATE DOMAIN dcolour AS colour;
				CREATE TABLE en (id int PRIMARY KEY, c colour, d dcolour, cs colour[]);
				CREATE TABLE plain (id int PRIMARY KEY, v text);
				INSERT INTO en VALUES (1, 'red', 'red', '{red,green}'), (2, 'green', 'green', '{}'), (3, NULL, 'red', NULL);
				INSERT INTO plain VALUES (1, 'red');`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() { t.Helper(); runNow(t, dsn, target, slot) }
			// cs as text: DuckDB keeps arrays as LISTs.
			queries := []string{"SELECT id, c, d FROM en", "SELECT id, v FROM plain"}
			run()
			compareRows(t, dsn, rows, queries...)

			// Renamed with no change to the table after it.
			mustExec(t, db, "ALTER TYPE colour RENAME VALUE 'red' TO 'rouge'")
			if log := runNowLog(t, dsn, target, slot); !strings.Contains(log, "an enum or composite type its columns use changed") || strings.Contains(log, "rewrote") {
				// It said "the source rewrote it (ALTER TABLE ... USING,
				// VACUUM FULL, ...)", sending one looking for a rewrite
				// (helper-92).
				t.Errorf("the copy again should name the enum's change as its reason:\n%s", log)
			}
			compareRows(t, dsn, rows, queries...)

			// Renamed, then a change to the table; and a value added.
			mustExec(t, db, `ALTER TYPE colour RENAME VALUE 'green' TO 'vert';
				INSERT INTO en VALUES (4, 'vert', 'rouge', '{vert}')`)
			mustExec(t, db, `ALTER TYPE colour ADD VALUE 'bleu'`)
			mustExec(t, db, `INSERT INTO en VALUES (5, 'bleu', 'bleu', '{bleu}'); UPDATE en SET c = 'rouge' WHERE id = 2`)
			run()
			compareRows(t, dsn, rows, queries...)

			// After a TRUNCATE the copy applied, whose new data files need
			// no copy: the rename still does (helper-131: the TRUNCATE, the
			// last change to the table's pg_class row, excused it, exit 0).
			mustExec(t, db, `TRUNCATE en`)
			mustExec(t, db, `INSERT INTO en VALUES (6, 'vert', 'vert', '{vert}')`)
			run()
			mustExec(t, db, "ALTER TYPE colour RENAME VALUE 'vert' TO 'verde'")
			run()
			compareRows(t, dsn, rows, queries...)
		})
	}
}

// TestEnumKeyRenamedThenUpdated: an enum label in a key is renamed, and rows
// holding it are updated before a listing sees the rename. The updates find
// the copy's rows under the old label: a difference the source's own change
// explains. Before, it was blamed on someone writing to the copy (a
// warning), --stop-on-divergence stopped the run (exit 1) and verify's
// catch-up reported the table as having differed (exit 1; helper-109). The
// table is copied again, the copy ends equal, and neither stops. Every
// target.
func TestEnumKeyRenamedThenUpdated(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TYPE colour AS ENUM ('red', 'green');
				CREATE TABLE ekey (c colour, k int, v text, PRIMARY KEY (c, k));
				INSERT INTO ekey SELECT 'red', x, 'v' FROM generate_series(1, 10) x;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() result {
				return walmirror(t, nil, "run", "--stop-at-lsn", "now", "--stop-on-divergence", "--source", dsn, "--target", target, "--slot", slot)
			}
			if r := run(); r.code != 0 {
				t.Fatalf("first run exited %d:\n%s", r.code, r.stderr)
			}
			mustExec(t, db, `ALTER TYPE colour RENAME VALUE 'red' TO 'crimson'; UPDATE ekey SET v = 'after' WHERE k < 4`)
			r := run()
			if r.code != 0 || strings.Contains(r.stderr, "differs from the source (someone else wrote to it?)") || !strings.Contains(r.stderr, "RENAME VALUE") {
				t.Fatalf("run after the rename exited %d, or blamed someone else:\n%s", r.code, r.stderr)
			}
			compareRows(t, dsn, rows, "SELECT c, k, v FROM ekey")
			mustExec(t, db, `ALTER TYPE colour RENAME VALUE 'crimson' TO 'scarlet'; UPDATE ekey SET v = 'again' WHERE k > 7`)
			if r := walmirror(t, nil, "verify", "--source", dsn, "--target", target); r.code != 0 {
				t.Errorf("verify after another rename exited %d:\n%s%s", r.code, r.stdout, r.stderr)
			}
			compareRows(t, dsn, rows, "SELECT c, k, v FROM ekey")
		})
	}
}
