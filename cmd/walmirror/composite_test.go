package main

import (
	"testing"
)

// TestCompositeAttributesChanged: ALTER TYPE ... ADD ATTRIBUTE / DROP
// ATTRIBUTE of a composite type a column uses (directly, under a domain, as
// array elements), and RENAME VALUE of an enum the composite holds, change
// what every stored row reads as, '(Main,123)' becoming '(Main,123,)' or
// '(Main,)', and write no WAL for those rows. Before, every copy kept the old text with exit 0 (only verify
// saw it). The publication poll now finds it and copies the table again.
// Every target.
func TestCompositeAttributesChanged(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TYPE kind AS ENUM ('home', 'work');
				CREATE TYPE addr AS (street text, zip int, k kind);
				CREATE DOMAIN daddr AS addr;
				CREATE TABLE comp (id int PRIMARY KEY, a addr, d daddr, aa addr[]);
				INSERT INTO comp VALUES (1, ROW('Main', 123, 'home'), ROW('Side', 9, 'work'), ARRAY[ROW('x', 1, 'home')::addr]),
					(2, NULL, ROW('Dom', 7, NULL), '{}');`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() { t.Helper(); runNow(t, dsn, target, slot) }
			// Composites as text in every target.
			q := "SELECT id, CAST(a AS text), CAST(d AS text), CAST(aa AS text) FROM comp"
			run()
			compareRows(t, dsn, rows, q)

			// An attribute added, with no change to the table after it.
			mustExec(t, db, "ALTER TYPE addr ADD ATTRIBUTE city text")
			run()
			compareRows(t, dsn, rows, q)

			// A label of an enum the composite holds renamed.
			mustExec(t, db, "ALTER TYPE kind RENAME VALUE 'home' TO 'house'")
			run()
			compareRows(t, dsn, rows, q)

			// One dropped, then a row changed.
			mustExec(t, db, `ALTER TYPE addr DROP ATTRIBUTE zip; INSERT INTO comp VALUES (3, ROW('New', 'work', 'Town'), NULL, NULL)`)
			run()
			compareRows(t, dsn, rows, q)
		})
	}
}
