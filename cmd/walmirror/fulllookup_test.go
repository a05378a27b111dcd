package main

import (
	"slices"
	"testing"
)

// TestFullIdentityLookup: a table with a primary key and REPLICA IDENTITY
// FULL (as CDC tools that want whole old rows have it set) is copied keyless,
// its rows matched on every column; its SQLite and PostgreSQL copies get an
// index on the key's columns to find them (Table.Lookup), or each set of
// updates read the whole table (a 1M-row table's updates caught up 6.6 times
// slower into SQLite). The index is only an access path: the key dropped,
// repeated and its column dropped (--drop-columns, which SQLite refuses for
// an indexed column) leave every copy equal; a key that identifies rows
// again (REPLICA IDENTITY DEFAULT) makes the index go.
func TestFullIdentityLookup(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE f (id int PRIMARY KEY, v int, note text);
				ALTER TABLE f REPLICA IDENTITY FULL;
				INSERT INTO f SELECT g, g % 7, 'n' || g FROM generate_series(1, 3000) g;
				CREATE TABLE g (a int, b text, v int, PRIMARY KEY (b, a));
				ALTER TABLE g REPLICA IDENTITY FULL;
				INSERT INTO g SELECT x, 'b' || x % 3, x FROM generate_series(1, 500) x;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() {
				t.Helper()
				r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now", "--drop-columns")
				if r.code != 0 {
					t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
				}
			}
			check := func(fcols string) {
				t.Helper()
				compareRows(t, dsn, rows, "SELECT "+fcols+" FROM f ORDER BY "+fcols, "SELECT a, b, v FROM g ORDER BY a, b, v")
			}
			// indexed are the columns of table's lookup index (none on DuckDB).
			indexed := func(table string, want ...string) {
				t.Helper()
				var q string
				switch tg.name {
				case "sqlite":
					q = `SELECT ii.name FROM sqlite_schema s, pragma_index_info(s.name) ii WHERE s.type = 'index' AND s.tbl_name = '` + table +
						`' AND s.name LIKE '\_walmirror\_lookup\_%' ESCAPE '\' ORDER BY ii.name`
				case "postgres":
					q = `SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
						JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
						WHERE i.indrelid = 'public.` + table + `'::regclass AND c.relname LIKE '\_walmirror\_lookup\_%' ORDER BY a.attname`
				default:
					return
				}
				got, err := rows(q)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("lookup index of %s on %q, want %q", table, got, want)
				}
			}
			run()
			check("id, v, note")
			indexed("f", "id")
			indexed("g", "a", "b")

			// Updates and deletes one by one and in sets, the key's values
			// changed too.
			mustExec(t, db, `UPDATE f SET v = v + 1 WHERE id % 3 = 0; DELETE FROM f WHERE id % 10 = 0;
				UPDATE f SET note = NULL WHERE id = 5; UPDATE f SET id = id + 10000 WHERE id % 11 = 0;
				UPDATE g SET v = v * 2 WHERE a % 2 = 0; DELETE FROM g WHERE a > 490`)
			mustExec(t, db, `UPDATE f SET v = 42 WHERE id = 7`)
			run()
			check("id, v, note")

			// The key dropped: ids repeat, and one of equal rows changes.
			mustExec(t, db, `ALTER TABLE f DROP CONSTRAINT f_pkey;
				INSERT INTO f SELECT id, v, note FROM f WHERE id < 100;
				UPDATE f SET v = -1 WHERE ctid IN (SELECT min(ctid) FROM f WHERE id < 50 GROUP BY id);
				DELETE FROM f WHERE ctid IN (SELECT max(ctid) FROM f WHERE id BETWEEN 50 AND 60 GROUP BY id)`)
			run()
			check("id, v, note")

			// The key's column dropped; g identified by its key again.
			mustExec(t, db, `ALTER TABLE f DROP COLUMN id; UPDATE f SET v = v + 100 WHERE v < 3;
				ALTER TABLE g REPLICA IDENTITY DEFAULT; UPDATE g SET v = 0 WHERE a < 10`)
			run()
			check("v, note")
			indexed("f")
			indexed("g")
		})
	}
}
