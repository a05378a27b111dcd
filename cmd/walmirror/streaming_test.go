package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/internal/mirrortest"
)

// Streamed transactions: with protocol 2+ (the default) the server sends a
// transaction larger than logical_decoding_work_mem while it runs; walmirror
// spills it to a file of its own and applies it at its commit. The tests set
// logical_decoding_work_mem to its minimum (64kB) on the database, so a few
// thousand rows stream.

const streamingSetup = `CREATE TABLE t (id int PRIMARY KEY, v text, n int);
	CREATE TABLE u (id int PRIMARY KEY, v text);
	CREATE TABLE w (id int PRIMARY KEY, v text);
	INSERT INTO t SELECT g, 'initial ' || g, g FROM generate_series(1, 100) g;`

var streamingQueries = []string{
	"SELECT id, v, CAST(n AS VARCHAR) FROM t",
	"SELECT id, v, CAST(w AS VARCHAR) FROM u",
	"SELECT id, v FROM w",
}

// newStreamingDatabase makes a database whose transactions stream beyond
// 64kB of changes.
func newStreamingDatabase(t *testing.T) (dsn, db string) {
	t.Helper()
	dsn, db = newDatabase(t, streamingSetup)
	mustExec(t, db, `ALTER DATABASE `+pgx.Identifier{db}.Sanitize()+` SET logical_decoding_work_mem = '64kB'`)
	return dsn, db
}

// bigWithSavepoints is one large transaction with savepoints released and
// rolled back to, a subtransaction aborted with its committed child, a
// PL/pgSQL exception block (an aborted subtransaction), a table first seen
// in an aborted subtransaction, and a column added midway.
const bigWithSavepoints = `BEGIN;
	INSERT INTO t SELECT g, 'a' || g, g FROM generate_series(1001, 4000) g;
	SAVEPOINT s1;
	INSERT INTO t SELECT g, 'rolled back ' || g, g FROM generate_series(4001, 6000) g;
	UPDATE t SET v = 'rolled back too' WHERE id <= 1500;
	ROLLBACK TO SAVEPOINT s1;
	SAVEPOINT s2;
	INSERT INTO t SELECT g, 'b' || g, g FROM generate_series(6001, 8000) g;
	SAVEPOINT s3;
	DELETE FROM t WHERE id % 10 = 0;
	RELEASE SAVEPOINT s3;
	RELEASE SAVEPOINT s2;
	SAVEPOINT s4;
	INSERT INTO w SELECT g, 'never' FROM generate_series(1, 1500) g;
	SAVEPOINT s5;
	UPDATE t SET n = -n WHERE id % 3 = 0;
	RELEASE SAVEPOINT s5;
	ROLLBACK TO SAVEPOINT s4;
	DO $$ BEGIN
		BEGIN
			INSERT INTO u SELECT g, 'exception' FROM generate_series(1, 2000) g;
			RAISE EXCEPTION 'undo';
		EXCEPTION WHEN OTHERS THEN NULL;
		END;
	END $$;
	INSERT INTO w SELECT g, 'kept ' || g FROM generate_series(1, 1500) g;
	ALTER TABLE u ADD COLUMN w int;
	INSERT INTO u SELECT g, 'after ddl', g FROM generate_series(1, 2000) g;
	UPDATE t SET v = v || '!' WHERE id % 7 = 0;
	COMMIT;`

// TestStreamedTransactions: while walmirror follows, large transactions
// stream: one with savepoints and aborted subtransactions, one that aborts,
// and one during which another connection commits small transactions. Every
// target ends equal to the source, the source spilled nothing for
// walmirror's slot, the transactions were streamed, and walmirror's spill
// directory is gone after it stops.
func TestStreamedTransactions(t *testing.T) {
	needServer(t)
	for _, target := range schemaTargets {
		t.Run(target.name, func(t *testing.T) {
			dsn, db := newStreamingDatabase(t)
			tgt, rows := target.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"--source", dsn, "--target", tgt, "--slot", slot}
			if r := walmirror(t, nil, append(append([]string{"run"}, args...), "--stop-at-lsn", "now")...); r.code != 0 {
				t.Fatalf("initial run exited %d:\n%s", r.code, r.stderr)
			}
			stop, _ := startRunUntil(t, "msg=streaming", args...)

			mustExec(t, db, bigWithSavepoints)
			mustExec(t, db, `BEGIN; INSERT INTO t SELECT g, 'aborted', g FROM generate_series(100001, 110000) g;
				UPDATE t SET v = 'aborted' WHERE id < 100; ROLLBACK;`)
			interleave(t, dsn, 20001)
			waitConfirmed(t, dsn, slot)
			logs := stop()
			if strings.Contains(logs, "level=ERROR") {
				t.Errorf("walmirror logged errors:\n%s", logs)
			}
			compareRows(t, dsn, rows, streamingQueries...)
			checkStreamedNotSpilled(t, dsn, slot)
			checkSpillDirGone(t, slot)
		})
	}
}

// interleave runs one large transaction on one connection while another
// commits small ones between its statements; ids from base on.
func interleave(t *testing.T, dsn string, base int) {
	t.Helper()
	ctx := context.Background()
	big, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close(ctx)
	small, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close(ctx)
	exec := func(c *pgx.Conn, sql string, args ...any) {
		t.Helper()
		if _, err := c.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(big, `BEGIN`)
	for i := range 4 {
		lo := base + i*2000
		exec(big, `INSERT INTO t SELECT g, 'big ' || g, g FROM generate_series($1::int, $2::int) g`, lo, lo+1499)
		exec(small, `INSERT INTO t VALUES ($1, 'small', 0)`, lo+1999)
		exec(small, `UPDATE u SET v = v || ' small' WHERE id % 4 = $1`, i)
		exec(big, `UPDATE t SET n = n + 1 WHERE id BETWEEN $1 AND $2`, lo, lo+700)
		exec(small, `DELETE FROM t WHERE id = $1`, 1001+i)
		time.Sleep(300 * time.Millisecond) // let the walsender stream what it has
	}
	exec(big, `COMMIT`)
}

// waitConfirmed waits until slot has confirmed everything the source wrote
// so far: the target committed it.
func waitConfirmed(t *testing.T, dsn, slot string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var want string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	for {
		var done bool
		err := conn.QueryRow(ctx, `SELECT coalesce(confirmed_flush_lsn >= $1::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = $2`, want, slot).Scan(&done)
		if err != nil {
			t.Fatalf("waiting for the slot to confirm %s: %v", want, err)
		}
		if done {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// slotStats reads the slot's spill and stream counters.
func slotStats(t *testing.T, dsn, slot string) (spillBytes, streamTxns int64) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT spill_bytes, stream_txns FROM pg_stat_replication_slots WHERE slot_name = $1`, slot).Scan(&spillBytes, &streamTxns); err != nil && err != pgx.ErrNoRows {
		t.Fatal(err)
	}
	return spillBytes, streamTxns
}

// checkStreamedNotSpilled: the source streamed transactions to walmirror's
// slot and spilled none (statistics may lag a little behind the walsender).
func checkStreamedNotSpilled(t *testing.T, dsn, slot string) {
	t.Helper()
	var spill, streamed int64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if spill, streamed = slotStats(t, dsn, slot); streamed > 0 {
			break
		}
	}
	t.Logf("slot %s: stream_txns %d, spill_bytes %d", slot, streamed, spill)
	if streamed == 0 {
		t.Errorf("no transaction was streamed to slot %s", slot)
	}
	if spill != 0 {
		t.Errorf("the source spilled %d bytes for slot %s, want 0", spill, slot)
	}
}

func spillDirs(t *testing.T, slot string) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), "walmirror-spill-"+slot+"-*"))
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

func checkSpillDirGone(t *testing.T, slot string) {
	t.Helper()
	if dirs := spillDirs(t, slot); len(dirs) != 0 {
		t.Errorf("spill directory left behind after a clean stop: %v", dirs)
	}
}

// TestStreamedTransactionCrash kills walmirror (a -tags faultinject build)
// while a transaction streams (after its second and third stream blocks,
// each time streamed again from the start), just after its commit was
// handed to the engine, and just after the target committed it; the spill
// files a kill leaves are removed at the next start, and every target ends
// equal to the source.
func TestStreamedTransactionCrash(t *testing.T) {
	needServer(t)
	bin := faultBinary(t)
	for _, target := range schemaTargets {
		t.Run(target.name, func(t *testing.T) {
			dsn, db := newStreamingDatabase(t)
			tgt, rows := target.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"run", "--source", dsn, "--target", tgt, "--slot", slot}
			if r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...); r.code != 0 {
				t.Fatalf("initial run exited %d:\n%s", r.code, r.stderr)
			}
			kill := func(point string) {
				t.Helper()
				run := exec.Command(bin, args...)
				run.Env = append(os.Environ(), "WALMIRROR_FAULT="+point)
				var stderr bytes.Buffer
				run.Stderr = &stderr
				if err := run.Start(); err != nil {
					t.Fatal(err)
				}
				timer := time.AfterFunc(60*time.Second, func() { _ = run.Process.Signal(syscall.SIGTERM) })
				err := run.Wait()
				timer.Stop()
				ws, _ := run.ProcessState.Sys().(syscall.WaitStatus)
				if !ws.Signaled() || ws.Signal() != syscall.SIGKILL || !strings.Contains(stderr.String(), "faultpoint: ") {
					t.Fatalf("%s was never reached (%v):\n%s", point, err, stderr.String())
				}
			}
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			for _, q := range []string{`BEGIN`, `INSERT INTO t SELECT g, 'crash ' || g, g FROM generate_series(1001, 6000) g`,
				`SAVEPOINT a`, `UPDATE t SET v = 'undone' WHERE id <= 3000`} {
				if _, err := conn.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			kill("source.stream-stop:2")
			if dirs := spillDirs(t, slot); len(dirs) != 1 {
				t.Errorf("after a kill while streaming, spill directories %v, want one", dirs)
			}
			// WAL written elsewhere while the transaction stays open: the
			// server's keepalives pass its start, and walmirror, idle,
			// confirms them, but not past the start of the transaction
			// (else the next start would make the source spill it).
			stop := startRun(t, args[1:]...)
			other, err := server.CreateDatabase(ctx, "elsewhere")
			if err != nil {
				t.Fatal(err)
			}
			mustExec(t, other, `CREATE TABLE x AS SELECT g FROM generate_series(1, 1000) g`)
			time.Sleep(1500 * time.Millisecond)
			stop()
			for _, q := range []string{`ROLLBACK TO SAVEPOINT a`, `UPDATE t SET n = -n WHERE id % 2 = 0`,
				`INSERT INTO u SELECT g, 'crash' FROM generate_series(1, 3000) g`} {
				if _, err := conn.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			kill("source.stream-stop:3")
			if _, err := conn.Exec(ctx, `COMMIT`); err != nil {
				t.Fatal(err)
			}
			kill("source.stream-replayed:1")
			// Kills while the transaction streamed and after it was handed
			// over: the source streamed it again each time, never spilled.
			if spill, streamed := slotStats(t, dsn, slot); spill != 0 || streamed < 3 {
				t.Errorf("before its target commit: spill_bytes %d, stream_txns %d; want 0 and at least 3", spill, streamed)
			}
			kill("apply.after-commit:1")
			mustExec(t, db, `UPDATE t SET v = 'later' WHERE id % 5 = 0`)
			if r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...); r.code != 0 {
				t.Fatalf("final run exited %d:\n%s", r.code, r.stderr)
			}
			compareRows(t, dsn, rows, streamingQueries[0], "SELECT id, v FROM u")
			// The target holds the transaction, the slot has not confirmed
			// it: the server decodes it again from before the position
			// walmirror asks for, where PostgreSQL spills rather than
			// streams, and skips it at its commit.
			spill, streamed := slotStats(t, dsn, slot)
			t.Logf("after a kill between target commit and confirmation: spill_bytes %d, stream_txns %d", spill, streamed)
			checkSpillDirGone(t, slot)
		})
	}
}

// TestStreamingProtocolFlag: --protocol 1 still replicates a large
// transaction (which the source then spills until its commit), and
// --protocol values the source does not speak are refused with the reason.
func TestStreamingProtocolFlag(t *testing.T) {
	needServer(t)
	dsn, db := newStreamingDatabase(t)
	path := filepath.Join(t.TempDir(), "copy.db")
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	args := []string{"run", "--source", dsn, "--target", "sqlite:" + path, "--slot", slot, "--stop-at-lsn", "now"}
	for _, c := range []struct {
		proto string
		want  string
	}{
		{"5", "--protocol 5: want 1 to 4"},
		{"-1", "--protocol -1: want 1 to 4"},
		{"4", "--protocol 4 needs PostgreSQL 16 or later"},
	} {
		if c.proto == "4" && server.Major() >= 16 {
			continue
		}
		r := walmirror(t, nil, append(args, "--protocol", c.proto)...)
		if r.code == 0 || !strings.Contains(lastLine(r.stderr), c.want) {
			t.Errorf("--protocol %s: exit %d, want an error saying %q:\n%s", c.proto, r.code, c.want, r.stderr)
		}
	}
	if r := walmirror(t, nil, append(args, "--protocol", "1")...); r.code != 0 {
		t.Fatalf("initial run exited %d:\n%s", r.code, r.stderr)
	}
	mustExec(t, db, bigWithSavepoints)
	if r := walmirror(t, nil, append(args, "--protocol", "1")...); r.code != 0 {
		t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
	}
	compareRows(t, dsn, func(q string) ([]string, error) { return mirrortest.SQLiteRows(context.Background(), path, q) }, streamingQueries...)
	spill, streamed := slotStats(t, dsn, slot)
	t.Logf("--protocol 1: stream_txns %d, spill_bytes %d", streamed, spill)
	if streamed != 0 {
		t.Errorf("--protocol 1 streamed %d transactions", streamed)
	}
}

// TestStreamingLatency measures, per target, the time from the source's
// COMMIT of one INSERT ... SELECT of WALMIRROR_STREAM_ROWS rows (3 columns)
// to that commit being visible in the copy (GET /wait), with the default
// protocol (streamed) and with --protocol 1, and the slot's spill_bytes.
// The source keeps the default logical_decoding_work_mem (64MB).
func TestStreamingLatency(t *testing.T) {
	needServer(t)
	rows, _ := strconv.Atoi(os.Getenv("WALMIRROR_STREAM_ROWS"))
	if rows == 0 {
		t.Skip("set WALMIRROR_STREAM_ROWS (e.g. 1000000) to measure")
	}
	for _, target := range schemaTargets {
		for _, proto := range []string{"", "1"} {
			name := target.name + "/streamed"
			if proto != "" {
				name = target.name + "/protocol-1"
			}
			t.Run(name, func(t *testing.T) {
				dsn, db := newDatabase(t, `CREATE TABLE big (id bigint PRIMARY KEY, n int, v text)`)
				tgt, copyRows := target.new(t)
				slot := "s_" + db
				dropSlotAtEnd(t, db, slot)
				args := []string{"--source", dsn, "--target", tgt, "--slot", slot}
				if proto != "" {
					args = append(args, "--protocol", proto)
				}
				if r := walmirror(t, nil, append(append([]string{"run"}, args...), "--stop-at-lsn", "now")...); r.code != 0 {
					t.Fatalf("initial run exited %d:\n%s", r.code, r.stderr)
				}
				stop, logPath := startRunUntil(t, "msg=streaming", append(args, "--metrics-addr", "127.0.0.1:0")...)
				logs, _ := os.ReadFile(logPath)
				match := servingMetrics.FindSubmatch(logs)
				if match == nil {
					t.Fatalf("no 'serving metrics' line:\n%s", logs)
				}
				ctx := context.Background()
				conn, err := pgx.Connect(ctx, dsn)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				began := time.Now()
				var before string
				for _, q := range []string{`BEGIN`,
					fmt.Sprintf(`INSERT INTO big SELECT i, i %% 1000, md5(i::text) FROM generate_series(1, %d) i`, rows)} {
					if _, err := conn.Exec(ctx, q); err != nil {
						t.Fatal(err)
					}
				}
				// The commit record starts at or after this position: once
				// the copy holds it, it holds the transaction.
				if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&before); err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Exec(ctx, `COMMIT`); err != nil {
					t.Fatal(err)
				}
				committed := time.Now()
				resp, err := http.Get("http://" + string(match[1]) + "/wait?lsn=" + before + "&timeout=10m")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				visible := time.Now()
				if resp.StatusCode != 200 {
					t.Fatalf("/wait = %d %s", resp.StatusCode, body)
				}
				stop()
				spill, streamed := slotStats(t, dsn, slot)
				mode := "streamed (default protocol)"
				if proto != "" {
					mode = "--protocol " + proto
				}
				t.Logf("RESULT target=%s mode=%q rows=%d source_txn=%v commit_to_visible=%v spill_bytes=%d stream_txns=%d",
					target.name, mode, rows, committed.Sub(began).Round(time.Millisecond), visible.Sub(committed).Round(time.Millisecond), spill, streamed)
				got, err := copyRows("SELECT count(*), sum(id) FROM big")
				if err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprintf("%d | %d", rows, int64(rows)*int64(rows+1)/2); len(got) != 1 || got[0] != want {
					t.Errorf("copy has %q, want %q", got, want)
				}
			})
		}
	}
}

// TestStreamedTruncateUnderSavepoint: a TRUNCATE under a released savepoint
// of a streamed transaction writes its table's pg_class row as the
// subtransaction, which the stream names; the poll after it takes the new
// data files as that TRUNCATE's. Before, the table was copied again ("the
// source rewrote it") after every such transaction (helper-62). A
// TRUNCATE under a savepoint rolled back leaves the table as it was. Every
// target.
func TestStreamedTruncateUnderSavepoint(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newStreamingDatabase(t)
			mustExec(t, db, `INSERT INTO w SELECT g, 'w ' || g FROM generate_series(1, 50) g;
				INSERT INTO u SELECT g, 'u ' || g FROM generate_series(1, 50) g`)
			target, rows := tg.new(t)
			queries := []string{streamingQueries[0], "SELECT id, v FROM u", streamingQueries[2]}
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() string { t.Helper(); return runNowLog(t, dsn, target, slot, "--log-level", "debug") }
			run()
			mustExec(t, db, `BEGIN;
				INSERT INTO t SELECT g, 'a' || g, g FROM generate_series(1001, 4000) g;
				SAVEPOINT s1;
				TRUNCATE w;
				RELEASE SAVEPOINT s1;
				SAVEPOINT s2;
				TRUNCATE u;
				ROLLBACK TO SAVEPOINT s2;
				INSERT INTO t SELECT g, 'b' || g, g FROM generate_series(4001, 7000) g;
				COMMIT`)
			log := run()
			if !strings.Contains(log, "streamed transaction committed") {
				t.Fatalf("the transaction was not streamed:\n%s", log)
			}
			if strings.Contains(log, "copying table online") {
				t.Errorf("a TRUNCATE under a savepoint the stream carried copied the table again:\n%s", log)
			}
			compareRows(t, dsn, rows, queries...)
			if log := run(); strings.Contains(log, "copying table online") {
				t.Errorf("the next run copied a table again:\n%s", log)
			}
			compareRows(t, dsn, rows, queries...)
		})
	}
}
