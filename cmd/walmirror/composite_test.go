package main

import (
	"strings"
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

// TestNestedTypesChanged: ALTER TYPE on a type nested deeper in a column's
// type (a composite inside a composite, an enum array inside a composite,
// a range over an enum) changes what stored rows read as with no WAL, as
// at the first level (TestCompositeAttributesChanged). Before, those were
// not followed: the copy kept the old text with exit 0. A table whose
// columns reach no such type is not copied again. Every target.
func TestNestedTypesChanged(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TYPE mood AS ENUM ('up', 'down');
				CREATE TYPE inner_t AS (x int, m mood);
				CREATE TYPE outer_t AS (name text, i inner_t, ms mood[]);
				CREATE TYPE moodrange AS RANGE (subtype = mood);
				CREATE TABLE nest (id int PRIMARY KEY, o outer_t, r moodrange);
				CREATE TABLE plain (id int PRIMARY KEY, v text);
				INSERT INTO nest VALUES (1, ROW('a', ROW(1, 'up'), '{up,down}'), '[up,down]'),
					(2, ROW('b', NULL, '{}'), '[down,down]'), (3, NULL, NULL);
				INSERT INTO plain VALUES (1, 'x');`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			q := "SELECT id, CAST(o AS text), CAST(r AS text) FROM nest"
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, q, "SELECT id, v FROM plain")

			// An attribute added to the inner composite, no row changed.
			mustExec(t, db, "ALTER TYPE inner_t ADD ATTRIBUTE z int")
			log := runNowLog(t, dsn, target, slot)
			compareRows(t, dsn, rows, q)
			copiedForTypeChange(t, log)

			// A label of the enum renamed: inside the inner composite, in
			// the array inside the outer one, and in the range.
			mustExec(t, db, "ALTER TYPE mood RENAME VALUE 'up' TO 'high'")
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, q)

			// Nothing changed since: no copy.
			if log := runNowLog(t, dsn, target, slot); strings.Contains(log, "copying table online") {
				t.Errorf("copied again with nothing changed:\n%s", log)
			}
			compareRows(t, dsn, rows, q, "SELECT id, v FROM plain")
		})
	}
}

// TestTableRowTypeChanged: a column whose type is another table's row type
// (or an array of it) reads otherwise when a column is added to or dropped
// from that table, '(1,Main)' becoming '(1,Main,)', with no WAL for its
// rows. Before, the copy kept the old text with exit 0, and a PostgreSQL
// target gave such a column the target table's row type, which refused the
// new text ("malformed record literal") once the table was copied again.
// The row table is named to be copied first, so its target table exists
// when the other's columns get their types. Every target.
func TestTableRowTypeChanged(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE addr (id int PRIMARY KEY, street text, zip int);
				CREATE TABLE person (id int PRIMARY KEY, a addr, hist addr[]);
				CREATE TABLE plain (id int PRIMARY KEY, v text);
				INSERT INTO addr VALUES (1, 'Main', 123);
				INSERT INTO person VALUES (1, ROW(1, 'Main', 123), ARRAY[ROW(2, 'Old', NULL)::addr]), (2, NULL, '{}');
				INSERT INTO plain VALUES (1, 'x');`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			q := "SELECT id, CAST(a AS text), CAST(hist AS text) FROM person"
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, q, "SELECT id, street, zip FROM addr", "SELECT id, v FROM plain")

			// A column added to the row table, no row of either changed.
			mustExec(t, db, "ALTER TABLE addr ADD COLUMN city text")
			log := runNowLog(t, dsn, target, slot)
			compareRows(t, dsn, rows, q)
			copiedForTypeChange(t, log)

			// Rows of both changed, then a column dropped.
			mustExec(t, db, `INSERT INTO addr VALUES (2, 'Side', 9, 'Town');
				UPDATE person SET a = (SELECT addr FROM addr WHERE id = 2) WHERE id = 2`)
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, q, "SELECT id, street, zip, city FROM addr")
			mustExec(t, db, "ALTER TABLE addr DROP COLUMN zip")
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, q, "SELECT id, street, city FROM addr")

			// Nothing changed since: no copy.
			if log := runNowLog(t, dsn, target, slot); strings.Contains(log, "copying table online") {
				t.Errorf("copied again with nothing changed:\n%s", log)
			}
		})
	}
}

// copiedForTypeChange: a run's log copied a table again naming a type's
// change as the reason, and did not copy public.plain, which uses no such
// type.
func copiedForTypeChange(t *testing.T, log string) {
	t.Helper()
	if !strings.Contains(log, "an enum or composite type its columns use changed") {
		t.Errorf("the copy again should name the type's change as its reason:\n%s", log)
	}
	if strings.Contains(log, "table=public.plain") {
		t.Errorf("a table that uses no such type was copied again:\n%s", log)
	}
}
