package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

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

// TestRenameAwayNotYetVisible: the same swap while walmirror streams, in a
// transaction whose commit the stream delivers while the publication's
// listings do not show it yet (it waits for a synchronous standby that
// never comes; under load the same window is short and was met now and
// then). A listing taken then names the table renamed away by its old
// name: acting on it renamed the copy back to the old name, and under
// load, with a copy of the new table in between, the copy ended without
// the old table, exit 0. The new table's copy, begun meanwhile, looked up
// a table it could not see yet and ended as if it had been dropped. A
// dedicated server. Every target.
func TestRenameAwayNotYetVisible(t *testing.T) {
	needServer(t)
	srv := holdServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			ctx := t.Context()
			db, exec := serverDatabase(t, srv, "away_"+tg.name)
			exec(`CREATE TABLE w (id int PRIMARY KEY, v text); INSERT INTO w SELECT g, 'w' || g FROM generate_series(1, 10) g;
				CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 20) g;
				CREATE TABLE other (id int PRIMARY KEY)`)
			dsn := srv.DSN(db)
			target, rows := tg.new(t)
			slot := "s_away_" + tg.name
			runNow(t, dsn, target, slot)
			stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--slot", slot, "--poll-interval", "1s")

			// w: renamed away, its row changed after; a: swapped for a
			// table built beside it (no row of the old one changed in the
			// transaction: only the new table's copy tells).
			release := holdCommit(ctx, exec, dsn, `BEGIN; ALTER TABLE w RENAME TO w_old; CREATE TABLE w (id int PRIMARY KEY, v text);
				INSERT INTO w VALUES (100, 'new-w'); UPDATE w_old SET v = 'x' WHERE id = 1;
				CREATE TABLE a_new (LIKE a INCLUDING ALL); INSERT INTO a_new SELECT id, v || 'N' FROM a WHERE id % 2 = 0;
				ALTER TABLE a RENAME TO a_old; ALTER TABLE a_new RENAME TO a; COMMIT`)
			// Streamed and applied; listings taken and acted on meanwhile
			// (a row elsewhere moves the stream past them).
			for range 20 {
				time.Sleep(100 * time.Millisecond)
				exec(`INSERT INTO other SELECT coalesce(max(id), 0) + 1 FROM other`)
			}
			if err := release(); err != nil {
				t.Fatal(err)
			}
			exec(`INSERT INTO w VALUES (101, 'new-w2')`)
			waitConfirmed(t, dsn, slot)
			// The new w's and a's online copies end (the slot's position
			// passes idle points while they run); then a_old's rows change,
			// its rename streamed only now, and all is committed.
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if out, _ := os.ReadFile(logPath); bytes.Count(out, []byte("table copied online")) >= 2 {
					break
				}
			}
			exec(`UPDATE a_old SET v = v || '-old' WHERE id < 5; INSERT INTO other SELECT coalesce(max(id), 0) + 1 FROM other`)
			waitConfirmed(t, dsn, slot)
			logs := stop()
			defer func() {
				if t.Failed() {
					t.Logf("the run:\n%s", logs)
				}
			}()
			// As the streaming run left it, and after another run (a run's
			// start looks at every table again).
			queries := []string{`SELECT id, v FROM w`, `SELECT id, v FROM w_old`, `SELECT id, v FROM a`, `SELECT id, v FROM a_old`, `SELECT id FROM other`}
			compareRows(t, dsn, rows, queries...)
			logs += runNowLog(t, dsn, target, slot)
			compareRows(t, dsn, rows, queries...)
			// The stream carried the rename: a rename taken from a listing
			// is the stale one, which moved the copy of w_old back to w
			// until a later listing moved it again (the end was equal
			// here; under load a copy of the new w came in between).
			if strings.Contains(logs, "renaming it in the copy") {
				t.Errorf("a listing that did not show the rename renamed the copy")
			}
			// The new w's copy, begun at its first change, waits until its
			// table shows: before, a look-up that did not see the table
			// ended the copy as if the table had been dropped (a later
			// change or listing began it again).
			if strings.Contains(logs, "left the publication") {
				t.Errorf("the new table looked dropped")
			}
		})
	}
}

// TestSwapQuietOld: tables swapped while walmirror streams, the new table
// made and filled in the swap's transaction, the old one renamed away and
// left untouched until later. The new table's copy is new to the target
// and takes a name the old one's copy still has, and no change of the old
// table tells of its rename: only the source catalog does (makeRoom's
// fresh path). Before, the new table's copy took over the old one's
// target table and the old table's rename, seen later, left an empty copy
// of it: its rows lost, exit 0 (helper-120). Listings are kept out of the
// way (--poll-interval 1h), so the stream alone shows the swap. Every
// target.
func TestSwapQuietOld(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE a (id int PRIMARY KEY, v text); INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 30) g;
				CREATE TABLE b (id int PRIMARY KEY, v text); INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 30) g;
				CREATE TABLE other (id int PRIMARY KEY)`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			runNow(t, dsn, target, slot)
			stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--slot", slot,
				"--poll-interval", "1h", "--metrics-addr", "127.0.0.1:0")
			// a: the new table filled before the swap's renames (its
			// Relation message names it a_new); b: renamed away first, the
			// new table made under its name and filled after.
			mustExec(t, db, `BEGIN; CREATE TABLE a_new (LIKE a INCLUDING ALL); INSERT INTO a_new SELECT id, v || 'N' FROM a WHERE id % 2 = 0;
				ALTER TABLE a RENAME TO a_old; ALTER TABLE a_new RENAME TO a; COMMIT`)
			mustExec(t, db, `BEGIN; ALTER TABLE b RENAME TO b_old; CREATE TABLE b (LIKE b_old INCLUDING ALL);
				INSERT INTO b SELECT id, v || 'N' FROM b_old WHERE id % 3 = 0; COMMIT`)
			mustExec(t, db, `INSERT INTO other VALUES (1)`)
			waitCurrent(t, dsn, logPath, stop)
			// The old tables' copies are aside now; their renames reach
			// the copy with their first changes.
			mustExec(t, db, `UPDATE a_old SET v = v || '-old' WHERE id < 5; DELETE FROM b_old WHERE id > 25; INSERT INTO a VALUES (100, 'new')`)
			waitCurrent(t, dsn, logPath, stop)
			logs := stop()
			if strings.Contains(logs, "level=ERROR") {
				t.Fatalf("run failed:\n%s", logs)
			}
			queries := []string{`SELECT id, v FROM a`, `SELECT id, v FROM a_old`, `SELECT id, v FROM b`, `SELECT id, v FROM b_old`, `SELECT id FROM other`}
			compareRows(t, dsn, rows, queries...)
			for _, name := range []string{"a", "b"} {
				if !strings.Contains(logs, "own rename is seen\" table=public."+name+" moved=") {
					t.Errorf("no copy moved aside for %s: the test did not reach the path it is for:\n%s", name, logs)
				}
			}
			// A restart knows the renames: no table is copied again.
			if log := runNowLog(t, dsn, target, slot); strings.Contains(log, "copying table online") {
				t.Errorf("the next run copied a table again:\n%s", log)
			}
			mustVerify(t, dsn, target)
		})
	}
}
