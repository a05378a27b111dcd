package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/testenv"
)

// TestPreparedTransactions: two-phase commit on the source while walmirror
// follows (README, Large transactions): a prepared transaction reaches the
// copy at COMMIT PREPARED, in commit order with the transactions that
// committed while it waited, and never after ROLLBACK PREPARED; so do
// prepared transactions large enough to stream (with savepoints rolled back
// to), and one left prepared across a kill -9 of walmirror and committed
// after the restart. Every target ends equal to the source.
func TestPreparedTransactions(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	srv := testenv.StartT(t, testenv.Options{Settings: map[string]string{"max_prepared_transactions": "8", "logical_decoding_work_mem": "64kB"}})
	for _, target := range schemaTargets {
		t.Run(target.name, func(t *testing.T) {
			db, err := srv.CreateDatabase(ctx, "prepared")
			if err != nil {
				t.Fatal(err)
			}
			dsn := srv.DSN(db)
			if err := srv.Exec(ctx, db, `CREATE TABLE t (id int PRIMARY KEY, v text, n int);
				CREATE TABLE k (v text, n int); ALTER TABLE k REPLICA IDENTITY FULL;
				INSERT INTO t SELECT g, 'initial ' || g, g FROM generate_series(1, 100) g;
				INSERT INTO k SELECT 'k' || (g % 5), g FROM generate_series(1, 20) g`); err != nil {
				t.Fatal(err)
			}
			tgt, rows := target.new(t)
			slot := "prepared_" + target.name
			args := []string{"--source", dsn, "--target", tgt, "--slot", slot}
			if r := walmirror(t, nil, append([]string{"run", "--stop-at-lsn", "now"}, args...)...); r.code != 0 {
				t.Fatalf("initial run exited %d:\n%s", r.code, r.stderr)
			}
			t.Cleanup(func() {
				_ = srv.Exec(context.Background(), db, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '`+slot+`'`)
				for _, gid := range []string{"small", "undone", "big", "big_undone", "across_kill"} {
					_ = srv.Exec(context.Background(), db, `ROLLBACK PREPARED '`+gid+`'`)
				}
			})
			connect := func() *pgx.Conn {
				c, err := pgx.Connect(ctx, dsn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close(context.Background()) })
				return c
			}
			preparer, other := connect(), connect()
			do := func(c *pgx.Conn, sqls ...string) {
				t.Helper()
				for _, sql := range sqls {
					if _, err := c.Exec(ctx, sql); err != nil {
						t.Fatalf("%s: %v", sql, err)
					}
				}
			}
			stop := startRun(t, args...)

			// A small one, with others committing while it is prepared
			// (some touch rows it does not hold, one updates its row after
			// it commits).
			do(preparer, `BEGIN`, `INSERT INTO t VALUES (1001, 'prepared', 1)`, `UPDATE t SET v = 'by prepared' WHERE id <= 10`,
				`DELETE FROM k WHERE n = 3`, `PREPARE TRANSACTION 'small'`)
			do(other, `INSERT INTO t VALUES (1002, 'meanwhile', 2)`, `UPDATE t SET n = -n WHERE id BETWEEN 11 AND 20`)
			do(other, `COMMIT PREPARED 'small'`, `UPDATE t SET v = v || ' then updated' WHERE id = 1001`)
			// Rolled back: never in the copy.
			do(preparer, `BEGIN`, `INSERT INTO t VALUES (1003, 'never', 3)`, `DELETE FROM t WHERE id BETWEEN 21 AND 30`,
				`INSERT INTO k VALUES ('never', 0)`, `PREPARE TRANSACTION 'undone'`)
			do(other, `INSERT INTO t VALUES (1004, 'meanwhile', 4)`, `ROLLBACK PREPARED 'undone'`)
			// Large enough to stream, with a savepoint rolled back to.
			do(preparer, `BEGIN`, `INSERT INTO t SELECT g, 'big ' || g, g FROM generate_series(2001, 6000) g`,
				`SAVEPOINT s`, `UPDATE t SET v = 'rolled back' WHERE id <= 3000`, `INSERT INTO k SELECT 'rolled back', g FROM generate_series(1, 2000) g`,
				`ROLLBACK TO SAVEPOINT s`, `UPDATE t SET n = n * 10 WHERE id % 3 = 0`, `INSERT INTO k SELECT 'big', g FROM generate_series(1, 2000) g`,
				`PREPARE TRANSACTION 'big'`)
			do(other, `INSERT INTO t SELECT g, 'small meanwhile', 0 FROM generate_series(7001, 7010) g`, `DELETE FROM k WHERE n = 4`)
			do(other, `COMMIT PREPARED 'big'`)
			do(preparer, `BEGIN`, `INSERT INTO t SELECT g, 'big undone', g FROM generate_series(8001, 12000) g`,
				`DELETE FROM t WHERE id <= 50`, `PREPARE TRANSACTION 'big_undone'`)
			do(other, `ROLLBACK PREPARED 'big_undone'`)
			waitConfirmed(t, dsn, slot)
			if logs := stop(); strings.Contains(logs, "level=ERROR") {
				t.Errorf("walmirror logged errors:\n%s", logs)
			}
			compareRows(t, dsn, rows, "SELECT id, v, CAST(n AS VARCHAR) FROM t", "SELECT v, CAST(n AS VARCHAR) FROM k")
			checkStreamedNotSpilled(t, dsn, slot)

			// Prepared (and streamed) while walmirror runs; walmirror is
			// killed, others commit, walmirror starts again, and only then
			// is it committed.
			run := exec.Command(binary, append([]string{"run"}, args...)...)
			logPath := filepath.Join(t.TempDir(), "killed.log")
			logFile, err := os.Create(logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer logFile.Close()
			run.Stdout, run.Stderr = logFile, logFile
			if err := run.Start(); err != nil {
				t.Fatal(err)
			}
			waitForLog(t, logPath, "msg=streaming")
			do(preparer, `BEGIN`, `INSERT INTO t SELECT g, 'across a kill ' || g, g FROM generate_series(13001, 17000) g`,
				`UPDATE t SET v = 'across a kill' WHERE id BETWEEN 60 AND 70`, `PREPARE TRANSACTION 'across_kill'`)
			do(other, `UPDATE t SET v = 'before the kill' WHERE id = 80`)
			time.Sleep(time.Second) // let it stream and apply what committed
			if err := run.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = run.Wait()
			do(other, `UPDATE t SET v = 'while stopped' WHERE id = 81`)
			stop = startRun(t, args...)
			do(other, `COMMIT PREPARED 'across_kill'`, `UPDATE t SET n = 0 WHERE id BETWEEN 13001 AND 13010`)
			waitConfirmed(t, dsn, slot)
			if logs := stop(); strings.Contains(logs, "level=ERROR") {
				t.Errorf("walmirror logged errors:\n%s", logs)
			}
			compareRows(t, dsn, rows, "SELECT id, v, CAST(n AS VARCHAR) FROM t", "SELECT v, CAST(n AS VARCHAR) FROM k")
			if r := walmirror(t, nil, "verify", "--source", dsn, "--target", tgt); r.code != 0 {
				t.Errorf("verify exited %d:\n%s\n%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}
