package verify

import (
	"fmt"
	"testing"
)

// TestChecksumCompositeNullFields: a composite value with NULL fields
// ('(,)', '(1,)') is not a NULL, though "value IS NOT NULL" is false for it.
// Checksums hashed such values as a NULL, so a copy holding NULL instead
// verified equal (every target), also as an element of an array.
func TestChecksumCompositeNullFields(t *testing.T) {
	e := newChecksumEnv(t, `
		CREATE TYPE pair AS (a int, b text);
		CREATE TABLE c (id int8 PRIMARY KEY, p pair, ps pair[]);
		CREATE TABLE nk (p pair, v int);
		ALTER TABLE nk REPLICA IDENTITY FULL`, `
		INSERT INTO c SELECT i, CASE i % 3 WHEN 0 THEN '(,)' WHEN 1 THEN '(1,)' ELSE '(2,x)' END::pair,
			ARRAY[CASE WHEN i % 2 = 0 THEN '(,)'::pair ELSE '(3,y)'::pair END] FROM generate_series(1, 300) i;
		INSERT INTO nk SELECT '(,)', i FROM generate_series(1, 10) i`, "c", "nk")
	e.targets = []string{"postgres", "sqlite", "duckdb"}
	for tb, r := range e.compare() {
		if r.Different() {
			t.Fatalf("%s: an equal copy: %+v", tb, r)
		}
	}
	for _, m := range []struct{ table, sql, want string }{
		{"c", "UPDATE c SET p = NULL WHERE id IN (3, 4)", "0 missing, 0 extra, 2 changed"},
		{"c", "UPDATE c SET ps = '{NULL}' WHERE id = 6", "0 missing, 0 extra, 1 changed"},
		{"nk", "UPDATE nk SET p = NULL WHERE v = 5", "1 missing, 1 extra, 0 changed"},
	} {
		e.exec(e.dst, m.sql)
		for tb, r := range e.compare() {
			want := "0 missing, 0 extra, 0 changed"
			if tb == m.table {
				want = m.want
			}
			if got := fmt.Sprintf("%d missing, %d extra, %d changed", r.Missing, r.Extra, r.Changed); got != want {
				t.Errorf("%s: %s: %s, want %s (%s)", m.sql, tb, got, want, r.Note)
			}
		}
		e.restore(m.table)
	}
}
