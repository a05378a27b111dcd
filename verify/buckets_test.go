package verify

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// keysDDL are tables whose key is not one integer column, compared by
// checksums of buckets of the key's hash: composite keys of mixed types,
// text in a collation that sorts otherwise than by bytes (ICU: 'a' < 'B'
// < 'é'; bytes: 'B' < 'a' < 'é'), with trailing spaces, quotes, NUL-free
// control characters and unicode, uuids, numerics (NaN, infinities, 1.50,
// 40 digits), timestamps (infinities, BC) and a table without a key with
// duplicate rows. None has an array column, so that every target uses
// checksums.
const keysDDL = `
CREATE TABLE ck (s text COLLATE "und-x-icu", at timestamptz, n int, v text, PRIMARY KEY (s, at, n));
CREATE TABLE tk (k text COLLATE "und-x-icu" PRIMARY KEY, v text, b bytea, f float8);
CREATE TABLE uk (id uuid PRIMARY KEY, v text);
CREATE TABLE nk (id numeric PRIMARY KEY, v text);
CREATE TABLE mk (u uuid, n numeric(12,3), d date, ok bool, v text, PRIMARY KEY (u, n, d, ok));
CREATE TABLE tsk (at timestamp PRIMARY KEY, v text);
CREATE TABLE "Odd ""k"" table" ("K ""q""" varchar(20), "é" int8, v text, PRIMARY KEY ("K ""q""", "é"));
CREATE TABLE kl (s text, n numeric, f float8, b bytea, big text);
ALTER TABLE kl REPLICA IDENTITY FULL`

// keysFill: a few thousand rows (several buckets, more than one row in
// many), and the hostile values.
const keysFill = `
INSERT INTO ck SELECT (ARRAY['a', 'B', 'é', 'a ', 'b', 'É', '', E'it''s "q"'])[i % 8 + 1],
	'2024-01-01'::timestamptz + (i % 97) * interval '1 day', i, 'v' || i FROM generate_series(1, 3000) i;
INSERT INTO ck VALUES ('a', 'infinity', 0, 'inf'), ('a', '-infinity', 0, '-inf'), ('a', '0044-03-15 12:00:00+00 BC', 0, 'bc');
INSERT INTO tk SELECT 'k' || i || (ARRAY['', ' ', '  ', 'é', 'E', 'e', E'\t', '✓'])[i % 8 + 1], 'v' || i, int8send(i), i / 7.0 FROM generate_series(1, 4000) i;
INSERT INTO tk VALUES ('a', 'x', '\x00ff00', 'NaN'), ('B', NULL, '\x', 'Infinity'), ('é', '', NULL, '-Infinity'), ('a ', 'trailing', '\x00', '-0'),
	('', 'empty', NULL, NULL), (E'it''s "q" \\ ,()', 'q', '\x27', 1e-310), ('NULL', NULL, NULL, NULL), ('‏é✓ 𝄞', 'u', NULL, 0.1),
	('big', repeat('x', 1 << 20), NULL, NULL);
INSERT INTO uk SELECT md5(i::text)::uuid, 'u' || i FROM generate_series(1, 3000) i;
INSERT INTO nk SELECT i / 4.0, 'n' || i FROM generate_series(-2000, 2000) i;
INSERT INTO nk VALUES ('NaN', 'nan'), ('Infinity', 'inf'), ('-Infinity', '-inf'), (1e20, 'e20'), ('0.00000000000000000000000000000000000001', 'tiny'),
	('1234567890123456789012345678901234567890.5', 'long'), (10.125, '10.125');
INSERT INTO mk SELECT md5((i % 100)::text)::uuid, i / 8.0, '2024-01-01'::date + i % 10, i % 3 = 0, 'm' || i FROM generate_series(1, 3000) i;
INSERT INTO mk VALUES (md5('x')::uuid, -0.5, 'infinity', true, 'inf'), (md5('x')::uuid, 999999999.999, '0044-03-15 BC', false, 'bc');
INSERT INTO tsk SELECT '2024-01-01'::timestamp + i * interval '1.000001 s', 't' || i FROM generate_series(1, 3000) i;
INSERT INTO tsk VALUES ('infinity', 'inf'), ('-infinity', '-inf'), ('0044-03-15 12:00:00.5 BC', 'bc');
INSERT INTO "Odd ""k"" table" SELECT (ARRAY['a''b', '"', 'x y', 'ü'])[i % 4 + 1], i, 'o' || i FROM generate_series(1, 1000) i;
INSERT INTO kl SELECT (ARRAY['dup', 'a', 'B', 'é', 'a '])[i % 5 + 1], i % 7 / 2.0, (ARRAY['NaN', 'Infinity', '-0', '0.1'])[i % 4 + 1]::float8,
	(ARRAY['\x00'::bytea, '\x'::bytea, NULL])[i % 3 + 1], NULL FROM generate_series(1, 3000) i;
INSERT INTO kl VALUES ('dup', 1, 1, '\x00', NULL), ('dup', 1, 1, '\x00', NULL), ('dup', 1, 1, '\x00', NULL), (NULL, NULL, NULL, NULL, NULL),
	('big', NULL, NULL, NULL, repeat('é', 1 << 19))`

// TestChecksumKeys: tables keyed otherwise than by one integer column,
// and one without a key, compared by checksums of buckets of the key's
// (the row's) hash in PostgreSQL, SQLite and DuckDB copies: an equal copy
// has no bucket differing (no value hashed otherwise than on the source,
// whatever each database's collation or storage form), and a changed,
// deleted or inserted row, a duplicated or removed row of the keyless
// table are found and named as the row comparison names them.
func TestChecksumKeys(t *testing.T) {
	tables := []string{"ck", "tk", "uk", "nk", "mk", "tsk", `"Odd ""k"" table"`, "kl"}
	e := newChecksumEnv(t, keysDDL, keysFill, tables...)
	e.targets = []string{"postgres", "sqlite", "duckdb"}
	e.exact = true
	got := e.compare()
	e.exact = false
	for name, r := range got {
		if r.Different() || r.Method != MethodChecksum {
			t.Errorf("%s: an equal copy: %s by %s: %+v", name, r.Status(), r.Method, r)
		}
	}
	type change struct {
		table, sql, want string
		examples         []string
	}
	changes := []change{
		{"ck", `UPDATE ck SET v = 'x' WHERE s = 'é' AND n = 2; DELETE FROM ck WHERE s = 'a' AND at = 'infinity'; INSERT INTO ck VALUES ('B', '2024-01-01', -1, 'extra')`,
			"1 missing, 1 extra, 1 changed", []string{"changed (s, at, n)=(é, 2024-01-03 00:00:00+00, 2) differs in v", "missing (s, at, n)=(a, infinity, 0)", "extra (s, at, n)=(B, 2024-01-01 00:00:00+00, -1)"}},
		{"ck", `UPDATE ck SET s = 'A' WHERE s = 'a' AND n = 8`, "1 missing, 1 extra, 0 changed", []string{"missing (s, at, n)=(a, 2024-01-09 00:00:00+00, 8)", "extra (s, at, n)=(A, 2024-01-09 00:00:00+00, 8)"}},
		{"tk", `UPDATE tk SET v = v || ' ' WHERE k = 'a '; DELETE FROM tk WHERE k = 'é'; INSERT INTO tk VALUES ('a  ', 'extra', NULL, NULL)`,
			"1 missing, 1 extra, 1 changed", []string{"changed (k)=(a ) differs in v", "missing (k)=(é)", "extra (k)=(a  )"}},
		{"tk", `UPDATE tk SET v = v || 'y' WHERE k = 'big'; UPDATE tk SET b = '\x0000' WHERE k = 'a'; UPDATE tk SET f = 0 WHERE k = 'a '`,
			"0 missing, 0 extra, 2 changed", []string{"changed (k)=(a) differs in b", "changed (k)=(big) differs in v"}},
		{"uk", `DELETE FROM uk WHERE id = md5('7')::uuid; UPDATE uk SET v = NULL WHERE id = md5('8')::uuid`, "1 missing, 0 extra, 1 changed", nil},
		{"nk", `UPDATE nk SET v = 'x' WHERE id = 'NaN'; DELETE FROM nk WHERE id = 1.5; INSERT INTO nk VALUES (1.51, 'extra'); UPDATE nk SET id = 1e21 WHERE id = 1e20`,
			"2 missing, 2 extra, 1 changed", []string{"changed (id)=(NaN) differs in v", "missing (id)=(1.5)", "extra (id)=(1.51)"}},
		{"mk", `UPDATE mk SET v = 'x' WHERE d = 'infinity'; DELETE FROM mk WHERE d = '0044-03-15 BC'`, "1 missing, 0 extra, 1 changed", nil},
		{"tsk", `UPDATE tsk SET v = 'x' WHERE at = '-infinity'; UPDATE tsk SET at = at + interval '1 microsecond' WHERE v = 't5'`, "1 missing, 1 extra, 1 changed", nil},
		{`"Odd ""k"" table"`, `UPDATE "Odd ""k"" table" SET v = 'x' WHERE "é" = 3`, "0 missing, 0 extra, 1 changed", []string{`changed (K "q", é)=(ü, 3) differs in v`}},
		// One of three duplicate rows removed, one row duplicated, one changed.
		{"kl", `DELETE FROM kl WHERE ctid = (SELECT min(ctid) FROM kl WHERE s = 'dup' AND n = 1 AND f = 1);
			INSERT INTO kl SELECT * FROM kl WHERE s = 'big';
			UPDATE kl SET s = NULL WHERE ctid = (SELECT min(ctid) FROM kl WHERE s = 'é' AND b IS NULL AND n = 0)`,
			"2 missing, 2 extra, 0 changed", []string{"missing (s, n, f, b, big)=(dup, 1, 1, \\x00, NULL)"}},
		{"kl", `INSERT INTO kl VALUES (NULL, NULL, NULL, NULL, NULL)`, "0 missing, 1 extra, 0 changed", []string{"extra (s, n, f, b, big)=(NULL, NULL, NULL, NULL, NULL)"}},
	}
	// Differing buckets split by more bits of the hash (as those of a
	// large table would be) before their rows are read.
	changes = append(changes, change{"uk", `DELETE FROM uk WHERE id = md5('17')::uuid; UPDATE uk SET v = 'x' WHERE id = md5('18')::uuid; INSERT INTO uk VALUES (md5('x')::uuid, 'extra')`,
		"1 missing, 1 extra, 1 changed", nil})
	defer func(n int64) { bucketLeafRows = n }(bucketLeafRows)
	// Each table's changes are made in turns, all tables at once.
	for len(changes) > 0 {
		var turn, later []change
		for _, m := range changes {
			if slices.ContainsFunc(turn, func(o change) bool { return o.table == m.table }) {
				later = append(later, m)
			} else {
				turn = append(turn, m)
			}
		}
		changes = later
		for _, m := range turn {
			e.exec(e.dst, m.sql)
		}
		if len(changes) == 0 { // the last turn: uk's split
			bucketLeafRows = 2
		}
		got := e.compare()
		if len(changes) == 0 && (got["uk"].Note == "" || strings.Contains(got["uk"].Note, "(1 passes)")) {
			t.Errorf("uk: differing buckets not split: %s", got["uk"].Note)
		}
		for _, m := range turn {
			checkChange(t, got, m.table, m.sql, m.want, m.examples)
			e.restore(m.table)
		}
	}
}

func checkChange(t *testing.T, got map[string]*TableReport, table, sql, want string, wantExamples []string) {
	t.Helper()
	{
		m := struct{ table, sql, want string }{table, sql, want}
		r := got[strings.Trim(strings.ReplaceAll(m.table, `""`, `"`), `"`)]
		if r == nil {
			t.Fatalf("%s: no report", m.table)
		}
		if got := fmt.Sprintf("%d missing, %d extra, %d changed", r.Missing, r.Extra, r.Changed); got != m.want || r.Method != MethodChecksum {
			t.Errorf("%s: %s by %s, want %s by checksum (%s)", m.sql, got, r.Method, m.want, r.Note)
		}
		var examples []string
		for _, x := range r.Examples {
			line := x.Kind + " " + x.Values.String()
			if len(x.Columns) > 0 {
				line += " differs in " + strings.Join(x.Columns, ", ")
			}
			examples = append(examples, line)
		}
		for _, want := range wantExamples {
			if !slices.Contains(examples, want) {
				t.Errorf("%s: the report lacks %q: %q", m.sql, want, examples)
			}
		}
		t.Logf("%s: %s (%s)", m.sql, r.Status(), r.Note)
	}
}
