package main

import (
	"context"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/internal/mirrortest"
)

// TestRenameAwayNewSameName: a table renamed away and a new table made
// under its old name, with rows, while walmirror was stopped (helper-112,
// a cron refresh): the DuckDB copy lost the new table, exit 0 (its copy
// went into the old table's target table, which the rename then moved).
// Also in another schema, and while walmirror streams. Every target.
func TestRenameAwayNewSameName(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE SCHEMA s;
				CREATE TABLE tt (id int PRIMARY KEY, v text); INSERT INTO tt SELECT g, 't' || g FROM generate_series(1, 10) g;
				CREATE TABLE s.u (id int PRIMARY KEY, v text); INSERT INTO s.u SELECT g, 'u' || g FROM generate_series(1, 10) g;
				CREATE TABLE w (id int PRIMARY KEY, v text); INSERT INTO w SELECT g, 'w' || g FROM generate_series(1, 10) g;`)
			target, rows := tg.new(t)
			switch plain := rows; tg.name {
			case "sqlite": // SQLite has no schemas: s.u is the table "s.u"
				rows = func(q string) ([]string, error) {
					return plain(strings.NewReplacer(" s.u", ` "s.u"`, " s2.u", ` "s2.u"`).Replace(q))
				}
			case "duckdb": // its rows name public for a table of no schema
				rows = func(q string) ([]string, error) {
					if strings.Contains(q, " s.u") || strings.Contains(q, " s2.u") {
						return mirrortest.DuckDBRows(context.Background(), strings.TrimPrefix(target, "duckdb:"), q)
					}
					return plain(q)
				}
			}
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			runNow(t, dsn, target, slot)
			mustExec(t, db, `ALTER TABLE tt RENAME TO t_old; CREATE TABLE tt (id int PRIMARY KEY, v text); INSERT INTO tt VALUES (100, 'new-t');
				CREATE SCHEMA s2; ALTER TABLE s.u SET SCHEMA s2; CREATE TABLE s.u (id int PRIMARY KEY, v text, n int); INSERT INTO s.u VALUES (100, 'new-u', 1);`)
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, `SELECT id, v FROM tt`, `SELECT id, v FROM t_old`, `SELECT id, v, n FROM s.u`, `SELECT id, v FROM s2.u`)
			stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--slot", slot, "--metrics-addr", "127.0.0.1:0")
			mustExec(t, db, `ALTER TABLE w RENAME TO w_old; CREATE TABLE w (id int PRIMARY KEY, v text); INSERT INTO w VALUES (100, 'new-w');
				UPDATE w_old SET v = 'x' WHERE id = 1`)
			mustExec(t, db, `INSERT INTO w VALUES (101, 'new-w2')`)
			waitCurrent(t, dsn, logPath, stop)
			if log := stop(); strings.Contains(log, "level=ERROR") {
				t.Fatalf("run failed:\n%s", log)
			}
			compareRows(t, dsn, rows, `SELECT id, v FROM w`, `SELECT id, v FROM w_old`, `SELECT id, v FROM tt`)
		})
	}
}
