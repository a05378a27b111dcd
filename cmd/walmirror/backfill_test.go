package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/internal/mirrortest"
	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/testenv"
)

// TestTablesJoinPublication: tables added to the publication while pgbench
// runs (one of them without a key) arrive complete, copied online in
// chunks, with no restart and the other tables streaming on. Every target.
func TestTablesJoinPublication(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, "")
			pgbench := testenv.Tool("pgbench")
			if out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", dsn).CombinedOutput(); err != nil {
				t.Fatalf("pgbench -i: %v\n%s", err, out)
			}
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"--source", dsn, "--target", target, "--slot", slot, "--tables", "public.pgbench_branches",
				"--copy-chunk-rows", "7000", "--poll-interval", "300ms"}
			stop, logPath := startRunUntil(t, "msg=streaming", args...)

			load := exec.Command(pgbench, "-c", "2", "-T", "6", "-n", dsn)
			var loadOut bytes.Buffer
			load.Stdout, load.Stderr = &loadOut, &loadOut
			if err := load.Start(); err != nil {
				t.Fatal(err)
			}
			// pgbench_accounts first (100,000 rows: 15 chunks), the others
			// a little later, pgbench_history without a key.
			mustExec(t, db, "ALTER PUBLICATION walmirror ADD TABLE pgbench_accounts")
			mustExec(t, db, "ALTER PUBLICATION walmirror ADD TABLE pgbench_tellers, pgbench_history")
			if err := load.Wait(); err != nil {
				t.Fatalf("pgbench: %v\n%s", err, loadOut.String())
			}
			waitForLog(t, logPath, `msg="table copied online" table=public.pgbench_history`)
			waitForLog(t, logPath, `msg="table copied online" table=public.pgbench_accounts`)
			log := stop()
			for _, l := range strings.Split(log, "\n") {
				if strings.Contains(l, "online") {
					t.Log(l)
				}
			}
			if n := strings.Count(log, "msg=streaming"); n != 1 {
				t.Errorf("walmirror streamed %d times, want once (no restart):\n%s", n, log)
			}
			// What came after the last chunk is applied by a bounded run.
			if r := walmirror(t, nil, append([]string{"run", "--stop-at-lsn", "now"}, args...)...); r.code != 0 {
				t.Fatalf("catch-up run exited %d:\n%s", r.code, r.stderr)
			}
			comparePgbench(t, dsn, rows)
		})
	}
}

func mustExec(t *testing.T, db, sql string) {
	t.Helper()
	if err := server.Exec(t.Context(), db, sql); err != nil {
		t.Fatal(err)
	}
}

// writeLoop runs step(conn, 0), step(conn, 1), ... on a connection of its
// own, n times (0: until ctx ends), pause apart, and sends nil on the
// channel it returns when done, or the first error (none once ctx ended).
func writeLoop(ctx context.Context, dsn string, n int, pause time.Duration, step func(ctx context.Context, conn *pgx.Conn, i int) error) <-chan error {
	done := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			done <- err
			return
		}
		defer conn.Close(context.Background())
		for i := 0; ctx.Err() == nil && (n == 0 || i < n); i++ {
			if err := step(ctx, conn, i); err != nil && ctx.Err() == nil {
				done <- err
				return
			}
			time.Sleep(pause)
		}
		done <- nil
	}()
	return done
}

// TestResyncTable: `walmirror resync --table` copies one damaged table
// again while pgbench runs and walmirror streams; the other tables are left
// alone and everything ends equal to the source. Every target.
func TestResyncTable(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, "")
			pgbench := testenv.Tool("pgbench")
			if out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", dsn).CombinedOutput(); err != nil {
				t.Fatalf("pgbench -i: %v\n%s", err, out)
			}
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"--source", dsn, "--target", target, "--slot", slot, "--copy-chunk-rows", "9000"}
			if r := walmirror(t, nil, append([]string{"run", "--stop-at-lsn", "now"}, args...)...); r.code != 0 {
				t.Fatalf("first run exited %d:\n%s", r.code, r.stderr)
			}
			// Someone damages the copy of pgbench_accounts.
			appExec(t, tg.name, target, "DELETE FROM pgbench_accounts WHERE aid % 7 = 0; UPDATE pgbench_accounts SET abalance = -1 WHERE aid % 11 = 0")

			// The request goes first: changes to the damaged rows that the
			// stream met before it would stop walmirror (rightly).
			stop, logPath := startRunUntil(t, "msg=streaming", args...)
			r := walmirror(t, nil, "resync", "--source", dsn, "--slot", slot, "--table", "pgbench_accounts")
			if r.code != 0 {
				t.Fatalf("resync exited %d:\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "public.pgbench_accounts") {
				t.Errorf("resync said: %s", r.stdout)
			}
			load := exec.Command(pgbench, "-c", "2", "-T", "5", "-n", dsn)
			var loadOut bytes.Buffer
			load.Stdout, load.Stderr = &loadOut, &loadOut
			if err := load.Start(); err != nil {
				t.Fatal(err)
			}
			if err := load.Wait(); err != nil {
				t.Fatalf("pgbench: %v\n%s", err, loadOut.String())
			}
			// In chunks of 9,000 rows and more (they grow as they go fast).
			waitForLog(t, logPath, `msg="table copied online" table=public.pgbench_accounts rows=100000 chunks=`)
			log := stop()
			if strings.Count(log, `msg="copying table online"`) != 1 {
				t.Errorf("want exactly one table copied again:\n%s", log)
			}
			if r := walmirror(t, nil, append([]string{"run", "--stop-at-lsn", "now"}, args...)...); r.code != 0 {
				t.Fatalf("catch-up run exited %d:\n%s", r.code, r.stderr)
			}
			comparePgbench(t, dsn, rows)
			// A table the publication does not list is refused.
			r = walmirror(t, nil, "resync", "--source", dsn, "--slot", slot, "--table", "public.nope")
			if r.code != 1 || !strings.Contains(r.stderr, "does not publish") {
				t.Errorf("resync of an unpublished table: exit %d, %s", r.code, r.stderr)
			}
			// A publication that is not there is named as the problem,
			// not the table (helper-55).
			r = walmirror(t, nil, "resync", "--source", dsn, "--slot", slot, "--publication", "other", "--table", "public.pgbench_branches")
			if r.code != 1 || !strings.Contains(r.stderr, `publication "other" does not exist on the source`) || !strings.Contains(r.stderr, "--publication") {
				t.Errorf("resync naming a missing publication: exit %d, %s", r.code, r.stderr)
			}
		})
	}
}

// TestOnlineCopyFaults: a chunked initial copy under pgbench is killed at
// the online copy's fault points (after a chunk is read, after its
// watermark is written, in the commit that holds it) and at random
// moments; every restart resumes after the last committed chunk and the
// copy ends equal to the source. Every target.
func TestOnlineCopyFaults(t *testing.T) {
	needServer(t)
	bin := faultBinary(t)
	points := []string{"backfill.chunk-read:2", "backfill.watermark-written:3", "apply.before-commit:2",
		"backfill.watermark-written:1", "apply.after-commit:2", "backfill.chunk-read:3"}
	targets := append(schemaTargets, schemaTarget{"postgres-pipelined", schemaTargets[2].new})
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, "")
			pgbench := testenv.Tool("pgbench")
			if out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", dsn).CombinedOutput(); err != nil {
				t.Fatalf("pgbench -i: %v\n%s", err, out)
			}
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"run", "--source", dsn, "--target", target, "--slot", slot, "--initial-copy", "chunked",
				"--copy-chunk-rows", "2000", "--commit-rows", "300"}
			if tg.name == "postgres-pipelined" {
				args = append(args, "--pipeline")
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			load := exec.CommandContext(ctx, pgbench, "-c", "2", "-T", "600", "-n", "-R", "300", dsn)
			if err := load.Start(); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			for _, p := range points {
				logs.WriteString(runToFault(t, bin, args, p))
				if p == points[0] {
					// One chunk is committed: status shows the copy's progress.
					r := walmirror(t, nil, "status", "--target", target, "--json")
					var st struct {
						Copies   []copyStatus `json:"copies"`
						Snapshot bool         `json:"snapshot_complete"`
						Initial  *bool        `json:"initial_copy_complete"`
					}
					if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Copies) != 4 ||
						st.Copies[0].State != "copying" || st.Copies[0].Chunks != 1 || st.Copies[1].State != "waiting" ||
						!st.Snapshot || st.Initial == nil || *st.Initial {
						t.Errorf("status after one chunk: %v\n%s%s", err, r.stdout, r.stderr)
					}
					// The text says the initial copy is not complete (it
					// said "snapshot: complete", helper-92).
					if r := walmirror(t, nil, "status", "--target", target); !strings.Contains(r.stdout, "the initial copy is made online, in chunks, and is not complete: 4 of its tables still to copy") {
						t.Errorf("status after one chunk does not say the initial copy is incomplete:\n%s%s", r.stdout, r.stderr)
					}
				}
			}
			// Random kills.
			for i := range 4 {
				logs.WriteString(runKilledAfter(t, bin, args, time.Duration(150+i*170)*time.Millisecond))
			}
			cancel()
			_ = load.Wait()
			r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...)
			if r.code != 0 {
				t.Fatalf("final run exited %d:\n%s", r.code, r.stderr)
			}
			logs.WriteString(r.stderr)
			if !strings.Contains(logs.String(), "resuming online copy after its last committed chunk") {
				t.Errorf("no run resumed the copy:\n%s", logs.String())
			}
			comparePgbench(t, dsn, rows)
		})
	}
}

// TestNoNeedlessCopies: tables whose columns have volatile defaults (a
// sequence, an identity, now()) are copied by the initial copy and then
// streamed, never copied again; a table created later is copied online
// once, at its first change (also when that is a TRUNCATE).
func TestNoNeedlessCopies(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE a (id bigserial PRIMARY KEY, at timestamptz DEFAULT now(), v text);
		CREATE TABLE b (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);
		INSERT INTO a (v) SELECT 'x' || g FROM generate_series(1, 50) g; INSERT INTO b (v) VALUES ('one');`)
	target, rows := schemaTargets[0].new(t)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	args := []string{"--source", dsn, "--target", target, "--slot", slot, "--poll-interval", "200ms"}
	stop, logPath := startRunUntil(t, "msg=streaming", args...)
	mustExec(t, db, "INSERT INTO a (v) VALUES ('new'); UPDATE a SET v = 'u' WHERE id % 3 = 0; INSERT INTO b (v) VALUES ('two')")
	mustExec(t, db, "CREATE TABLE c (id serial PRIMARY KEY, v text); INSERT INTO c (v) VALUES ('c1'), ('c2')")
	waitForLog(t, logPath, `msg="table copied online" table=public.c rows=2`)
	// A table whose first change is a TRUNCATE (pgbench -i loads after
	// one) is copied once too: its copy was started, and logged, twice.
	mustExec(t, db, "CREATE TABLE d (id int PRIMARY KEY, v text)")
	mustExec(t, db, "BEGIN; TRUNCATE d; INSERT INTO d VALUES (1, 'd1'); COMMIT")
	waitForLog(t, logPath, `msg="table copied online" table=public.d rows=1`)
	// A rename the stream shows (a row changed after it) is followed, not
	// copied again; so is a TRUNCATE (in a transaction of its own: rows
	// written after it in its transaction make the poll copy the table
	// again, see TestTruncateNotCopiedAgain); polls pass meanwhile.
	mustExec(t, db, "ALTER TABLE b RENAME TO b2; INSERT INTO b2 (v) VALUES ('three')")
	mustExec(t, db, "TRUNCATE a")
	mustExec(t, db, "INSERT INTO a (v) VALUES ('again')")
	time.Sleep(time.Second)
	log := stop()
	if n := strings.Count(log, `msg="copying table online"`); n != 2 {
		t.Errorf("%d online copies, want 2 (tables c and d):\n%s", n, log)
	}
	compareRows(t, dsn, rows, "SELECT id, v FROM a", "SELECT id, v FROM b2", "SELECT id, v FROM c", "SELECT id, v FROM d")
}

// TestRewriteCopiedAgain: ALTER COLUMN ... TYPE ... USING rewrites rows
// without WAL (even to the same type); the table is copied again online,
// whether a change follows the rewrite or none does. Every target.
func TestRewriteCopiedAgain(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE rw (id int PRIMARY KEY, y int); INSERT INTO rw SELECT g, g FROM generate_series(1, 20) g;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() string { t.Helper(); return runNowLog(t, dsn, target, slot, "--log-level", "debug") }
			run()
			mustExec(t, db, "ALTER TABLE rw ALTER COLUMN y TYPE bigint USING y * 7; INSERT INTO rw VALUES (21, 3)")
			if log := run(); !strings.Contains(log, "copying table online") {
				t.Errorf("no online copy after a rewrite and a change:\n%s", log)
			}
			compareRows(t, dsn, rows, "SELECT id, y FROM rw")
			mustExec(t, db, "ALTER TABLE rw ALTER COLUMN y TYPE bigint USING y + 1000")
			if log := run(); !strings.Contains(log, "copying table online") {
				t.Errorf("no online copy after a rewrite alone:\n%s", log)
			}
			compareRows(t, dsn, rows, "SELECT id, y FROM rw")
			// A column added with a volatile default (what older rows hold
			// is not in the stream), then a rewrite to a type SQLite cannot
			// convert its stored values to exactly: copied again, the rows
			// replaced rather than converted (helper-105: every SQLite run
			// stopped at the conversion, resync --table did not help).
			mustExec(t, db, "ALTER TABLE rw ADD COLUMN k text; UPDATE rw SET k = 'k' || id WHERE id < 5")
			run()
			mustExec(t, db, `ALTER TABLE rw ADD COLUMN tok uuid DEFAULT gen_random_uuid();
				ALTER TABLE rw ALTER COLUMN k TYPE jsonb USING to_jsonb(k);
				UPDATE rw SET k = '{"x": 1}' WHERE id = 10`)
			if log := run(); !strings.Contains(log, "copying table online") {
				t.Errorf("no online copy after a volatile default and a rewrite:\n%s", log)
			}
			compareRows(t, dsn, rows, "SELECT id, y, CAST(k AS VARCHAR), CAST(tok AS VARCHAR) FROM rw")
		})
	}
}

// TestRewriteCopiedUnderLoad: a rewrite alone (no change follows it in the
// rewritten table) while the source commits other transactions as a bounded
// run starts. The run must not end at the first transaction past its stop
// position before its publication poll saw the rewrite: the copy of the
// rewritten table ends equal to the source value by value. Every target.
// (On PostgreSQL 14 any write in the database, even autovacuum's ANALYZE,
// reaches the stream as an empty transaction; later versions skip those.)
func TestRewriteCopiedUnderLoad(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE rw (id int PRIMARY KEY, y int); INSERT INTO rw SELECT g, g FROM generate_series(1, 20) g;
				CREATE TABLE busy (id bigserial PRIMARY KEY, v int); INSERT INTO busy (v) VALUES (0);`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now"}
			if r := walmirror(t, nil, args...); r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			mustExec(t, db, "ALTER TABLE rw ALTER COLUMN y TYPE bigint USING y + 1000")

			// One session commits a row into busy after another until the
			// bounded run has ended (and at least one commit came first),
			// a millisecond apart: unpaced, on a loaded machine, it wrote
			// faster than a PostgreSQL target applied single-row
			// transactions, so the copy's chunk never saw its watermark
			// before the test's timeout.
			ctx, cancel := context.WithCancel(context.Background())
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			first := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				for i := 1; ; i++ {
					if _, err := conn.Exec(ctx, "INSERT INTO busy (v) VALUES ($1)", i); err != nil {
						if ctx.Err() != nil {
							err = nil
						}
						done <- err
						return
					}
					if i == 1 {
						close(first)
					}
					time.Sleep(time.Millisecond)
				}
			}()
			select {
			case <-first:
			case err := <-done:
				cancel()
				t.Fatalf("workload: %v", err)
			}
			r := walmirror(t, nil, append(args, "--log-level", "debug")...)
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("workload: %v", err)
			}
			if r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, "copying table online") {
				t.Errorf("no online copy after a rewrite alone under load:\n%s", r.stderr)
			}
			compareRows(t, dsn, rows, "SELECT id, y FROM rw")
		})
	}
}

// TestAttachPartition: a table that holds rows attached as a partition of
// a published partitioned table (no WAL carries its rows as the root's),
// and one detached: the root is copied again online and ends equal.
func TestAttachPartition(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
				CREATE TABLE m0 PARTITION OF m FOR VALUES FROM (0) TO (100);
				CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (100) TO (200);
				INSERT INTO m SELECT g, 'v' || g FROM generate_series(0, 199) g;
				CREATE TABLE loose (id int PRIMARY KEY, v text); INSERT INTO loose SELECT g, 'l' || g FROM generate_series(200, 249) g;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() {
				t.Helper()
				r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now", "--tables", "public.m")
				if r.code != 0 {
					t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
				}
			}
			run()
			compareRows(t, dsn, rows, "SELECT id, v FROM m")
			mustExec(t, db, "ALTER TABLE m ATTACH PARTITION loose FOR VALUES FROM (200) TO (300)")
			run()
			compareRows(t, dsn, rows, "SELECT id, v FROM m")
			// Rows of a partition attached just before are changed at once:
			// the copy holds none of its rows yet.
			mustExec(t, db, `CREATE TABLE loose2 (id int PRIMARY KEY, v text); INSERT INTO loose2 SELECT g, 'm' || g FROM generate_series(300, 349) g;
				ALTER TABLE m ATTACH PARTITION loose2 FOR VALUES FROM (300) TO (400)`)
			mustExec(t, db, "UPDATE m SET v = 'changed' WHERE id IN (210, 310); DELETE FROM m WHERE id = 320")
			run()
			compareRows(t, dsn, rows, "SELECT id, v FROM m")
			mustExec(t, db, "ALTER TABLE m DETACH PARTITION m0; UPDATE m SET v = 'after' WHERE id = 150")
			run()
			compareRows(t, dsn, rows, "SELECT id, v FROM m")
		})
	}
}

// TestResumeLargeCopy (opt-in: WALMIRROR_RESUME_ROWS=5000000, make
// test-resume): a chunked initial copy of a large table killed at about
// half resumes after its last committed chunk and ends equal.
func TestResumeLargeCopy(t *testing.T) {
	needServer(t)
	n, _ := strconv.Atoi(os.Getenv("WALMIRROR_RESUME_ROWS"))
	if n == 0 {
		t.Skip("set WALMIRROR_RESUME_ROWS (make test-resume)")
	}
	dsn, db := newDatabase(t, fmt.Sprintf(`CREATE TABLE big (id bigint PRIMARY KEY, a int, t text, at timestamptz, n numeric, j jsonb);
		INSERT INTO big SELECT g, g %% 1000, md5(g::text), '2026-01-01'::timestamptz + g * interval '1 second', g / 7.0, jsonb_build_object('g', g)
		FROM generate_series(1, %d) g; ANALYZE big;`, n))
	path := filepath.Join(t.TempDir(), "copy.db")
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	args := []string{"run", "--source", dsn, "--target", "sqlite:" + path, "--slot", slot, "--initial-copy", "chunked", "--log-level", "debug"}
	killAfterRows(t, args, "public.big", int64(n)/2)
	r := walmirror(t, nil, append(args[:len(args)-2:len(args)-2], "--stop-at-lsn", "now")...)
	if r.code != 0 {
		t.Fatalf("resumed run exited %d:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "resuming online copy after its last committed chunk") {
		t.Errorf("the second run did not resume:\n%s", r.stderr)
	}
	t.Logf("resumed: %s", lastMatching(r.stderr, "resuming online copy"))
	compareRows(t, dsn, func(q string) ([]string, error) { return mirrortest.SQLiteRows(context.Background(), path, q) },
		"SELECT id, a, t, CAST(n AS TEXT), CAST(j AS TEXT) FROM big")
}

// killAfterRows runs walmirror with args until its log shows at least
// rows rows of table copied in chunks, kills it (SIGKILL) and returns its
// log.
func killAfterRows(t *testing.T, args []string, table string, rows int64) string {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "run.log")
	logs, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	for {
		out, _ := os.ReadFile(logPath)
		if chunkRowsLogged(string(out), table) >= rows {
			break
		}
		select {
		case <-exited:
			t.Fatalf("walmirror ended early:\n%s", out)
		case <-time.After(10 * time.Millisecond):
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	out, _ := os.ReadFile(logPath)
	return string(out)
}

// chunkRowsLogged adds up the rows of table's "copied chunk" log lines.
func chunkRowsLogged(log, table string) int64 {
	var total int64
	for _, m := range chunkRowsRe.FindAllStringSubmatch(log, -1) {
		if m[1] == table {
			n, _ := strconv.ParseInt(m[2], 10, 64)
			total += n
		}
	}
	return total
}

var chunkRowsRe = regexp.MustCompile(`msg="copied chunk" table=(\S+) rows=(\d+)`)

func lastMatching(s, sub string) string {
	out := ""
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = l
		}
	}
	return out
}

// TestTableLeavesAndRejoins: a table dropped from the publication, changed
// while out of it, and added back, whether walmirror saw it leave or not,
// ends equal to the source (copied afresh). Every target.
func TestTableLeavesAndRejoins(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
				INSERT INTO a SELECT g, 'a' FROM generate_series(1, 30) g; INSERT INTO b SELECT g, 'b' FROM generate_series(1, 30) g;
				CREATE PUBLICATION walmirror FOR TABLE a, b;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() string {
				t.Helper()
				r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
				if r.code != 0 {
					t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
				}
				return r.stderr
			}
			run()
			// Seen leaving by a run, then back.
			mustExec(t, db, "ALTER PUBLICATION walmirror DROP TABLE b; UPDATE b SET v = 'out' WHERE id < 10; DELETE FROM b WHERE id > 25")
			if log := run(); !strings.Contains(log, "table left the publication") {
				t.Errorf("the run did not notice b leave:\n%s", log)
			}
			mustExec(t, db, "UPDATE b SET v = 'still out' WHERE id = 12; ALTER PUBLICATION walmirror ADD TABLE b")
			run()
			compareRows(t, dsn, rows, "SELECT id, v FROM a", "SELECT id, v FROM b")
			// Out and back while walmirror was stopped.
			mustExec(t, db, "ALTER PUBLICATION walmirror DROP TABLE b; UPDATE b SET v = 'away' WHERE id > 20; ALTER PUBLICATION walmirror ADD TABLE b; UPDATE a SET v = 'x' WHERE id = 1")
			run()
			compareRows(t, dsn, rows, "SELECT id, v FROM a", "SELECT id, v FROM b")
		})
	}
}

// TestLeftTableWarned: a table whose copy stops following a source table
// that goes on changing is a warning naming the cause, not an info line
// (helper-97): a table made UNLOGGED under a FOR ALL TABLES publication, a
// table an administrator's publication names swapped for a new one by
// renames (pg-osc, pg_repack), a table dropped from the publication; a
// table dropped on the source stays an info line.
func TestLeftTableWarned(t *testing.T) {
	needServer(t)
	for _, c := range []struct {
		name, setup, change, want string
		warn                      bool
	}{
		{"unlogged", ``, `ALTER TABLE t SET UNLOGGED; UPDATE t SET v = 'changed'`, "it is UNLOGGED now", true},
		{"swapped", `CREATE PUBLICATION walmirror FOR TABLE t, k`,
			`CREATE TABLE t_new (LIKE t INCLUDING ALL); INSERT INTO t_new SELECT * FROM t;
			BEGIN; ALTER TABLE t RENAME TO t_old; ALTER TABLE t_new RENAME TO t; DROP TABLE t_old; COMMIT; UPDATE t SET v = 'changed'`,
			"a table that took its name on the source is not published", true},
		{"dropped from publication", `CREATE PUBLICATION walmirror FOR TABLE t, k`, `ALTER PUBLICATION walmirror DROP TABLE t; UPDATE t SET v = 'changed'`, "is still on the source", true},
		{"dropped", `CREATE PUBLICATION walmirror FOR TABLE t, k`, `DROP TABLE t`, "its copy stays as it is", false},
		// A partition published on its own (publish_via_partition_root off)
		// whose root leaves the publication: no copy follows it any more
		// (helper-108: the log said its rows were in the root's copy).
		{"partition of a root that left", `CREATE TABLE pr (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
			CREATE TABLE pr1 PARTITION OF pr FOR VALUES FROM (0) TO (100); INSERT INTO pr VALUES (1, 'a');
			CREATE PUBLICATION walmirror FOR TABLE t, k, pr`, `ALTER PUBLICATION walmirror DROP TABLE pr; UPDATE pr SET v = 'changed'`,
			"is still on the source", true},
		// One attached under a root published through itself: its rows are
		// in the root's copy.
		{"partition of a published root", `CREATE TABLE pr (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
			CREATE TABLE pr1 PARTITION OF pr FOR VALUES FROM (0) TO (100);
			CREATE TABLE pr2 (id int PRIMARY KEY, v text); INSERT INTO pr2 VALUES (150, 'b');
			CREATE PUBLICATION walmirror FOR TABLE t, k, pr, pr2 WITH (publish_via_partition_root = true)`,
			`ALTER PUBLICATION walmirror DROP TABLE pr2; ALTER TABLE pr ATTACH PARTITION pr2 FOR VALUES FROM (100) TO (200); UPDATE pr SET v = 'changed'`,
			"it is a partition now", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 10) g;
				CREATE TABLE k (id int PRIMARY KEY); INSERT INTO k VALUES (1);`+c.setup)
			target, _ := schemaTargets[0].new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			runNow(t, dsn, target, slot)
			mustExec(t, db, c.change)
			r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
			if r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			var line string
			for _, l := range strings.Split(r.stderr, "\n") {
				if strings.Contains(l, "table left the publication") {
					line = l
				}
			}
			if !strings.Contains(line, c.want) || strings.Contains(line, "level=WARN") != c.warn {
				t.Fatalf("want a line saying %q (warning: %v), got %q:\n%s", c.want, c.warn, line, r.stderr)
			}
			t.Log(line)
		})
	}
}

// TestVerifyNamesKeptTables: verify lists the copy's tables that no
// published table maps to any more, kept as they were (helper-97: it said
// "0 tables equal, 0 different" of a copy holding a stale table under a
// name the source still has), not the tables it compared, and not when
// told which tables to compare. Every target, and --json.
func TestVerifyNamesKeptTables(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');
				CREATE TABLE k (id int PRIMARY KEY); INSERT INTO k VALUES (1); CREATE PUBLICATION walmirror FOR TABLE t, k;`)
			target, _ := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			runNow(t, dsn, target, slot)
			mustExec(t, db, `ALTER PUBLICATION walmirror DROP TABLE t; UPDATE t SET v = 'b'`)
			runNow(t, dsn, target, slot)
			r := walmirror(t, nil, "verify", "--source", dsn, "--target", target)
			_, kept, _ := strings.Cut(r.stdout, "kept as they were when their tables left the publication or were dropped: ")
			if kept, _, _ = strings.Cut(kept, "\n"); r.code != 0 || kept != "t" && kept != "public.t" {
				t.Fatalf("verify exited %d; want equal, naming t as kept (not k):\n%s%s", r.code, r.stdout, r.stderr)
			}
			r = walmirror(t, nil, "verify", "--source", dsn, "--target", target, "--json")
			var rep struct {
				Equal bool     `json:"equal"`
				Kept  []string `json:"kept"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || !rep.Equal || len(rep.Kept) != 1 || rep.Kept[0] != kept {
				t.Fatalf("verify --json: %+v, %v:\n%s", rep, err, r.stdout)
			}
			if r := walmirror(t, nil, "verify", "--source", dsn, "--target", target, "--table", "public.k"); r.code != 0 || strings.Contains(r.stdout, "kept as") {
				t.Fatalf("verify --table public.k exited %d or lists kept tables:\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestRenameWithoutChanges: a table (and a partitioned one) renamed with
// no row changed since, which no Relation message tells, gets its new name
// in the copy.
func TestRenameWithoutChanges(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE p (id int PRIMARY KEY, v text); INSERT INTO p VALUES (1, 'a'), (2, 'b');
		CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id); CREATE TABLE m0 PARTITION OF m FOR VALUES FROM (0) TO (100);
		INSERT INTO m VALUES (1, 'm');`)
	target, rows := schemaTargets[0].new(t)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	run := func() { t.Helper(); runNow(t, dsn, target, slot) }
	run()
	mustExec(t, db, "UPDATE p SET v = 'c' WHERE id = 1; UPDATE m SET v = 'n'")
	run() // the stream has described both tables
	mustExec(t, db, "ALTER TABLE p RENAME TO p2; ALTER TABLE m RENAME TO m2")
	run()
	compareRows(t, dsn, rows, "SELECT id, v FROM p2", "SELECT id, v FROM m2")
}

// TestRenameWhileStreaming: tables renamed while walmirror streams, one with
// no change since, and a partitioned one whose rows keep changing through a
// partition (pgoutput keeps naming it as it did before the rename: its
// partitions' cached entries are not invalidated by it). The publication
// poll finds both renames; the copy is compared after a plain stop, with no
// later run (whose new walsender would describe the tables afresh).
func TestRenameWhileStreaming(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE p (id int PRIMARY KEY, v text); INSERT INTO p VALUES (1, 'a'), (2, 'b');
				CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id); CREATE TABLE m0 PARTITION OF m FOR VALUES FROM (0) TO (100);
				INSERT INTO m VALUES (1, 'm');`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--slot", slot, "--poll-interval", "200ms",
				"--metrics-addr", "127.0.0.1:0")
			mustExec(t, db, "UPDATE p SET v = 'c' WHERE id = 1; UPDATE m SET v = 'n'")
			mustExec(t, db, "ALTER TABLE p RENAME TO p2; ALTER TABLE m RENAME TO m2")
			mustExec(t, db, "UPDATE m2 SET v = 'o'; INSERT INTO m2 VALUES (2, 'q')")
			renamed := func() bool {
				out, _ := os.ReadFile(logPath)
				return strings.Count(string(out), "renaming it in the copy") >= 2
			}
			for deadline := time.Now().Add(30 * time.Second); !renamed(); time.Sleep(100 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the renames were not logged:\n%s", stop())
				}
			}
			// A change after the rename, in a transaction of its own; the
			// run is stopped once it has applied it.
			mustExec(t, db, "UPDATE m2 SET v = 'r' WHERE id = 2")
			waitCurrent(t, dsn, logPath, stop)
			if log := stop(); strings.Contains(log, "level=ERROR") {
				t.Fatalf("run failed:\n%s", log)
			}
			compareRows(t, dsn, rows, "SELECT id, v FROM p2", "SELECT id, v FROM m2")
		})
	}
}

// TestColumnsChangeAfterFirstPoll: a table no row change has described in
// this run gets a column added and another renamed after the run's first
// publication polls; a later poll notices (each poll compares, not only the
// first) and copies it again. Compared after a plain stop, with no later
// run, which would notice on its own.
func TestColumnsChangeAfterFirstPoll(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE z (id int PRIMARY KEY, a int); INSERT INTO z SELECT g, g FROM generate_series(1, 5) g;
				CREATE TABLE other (id int PRIMARY KEY);`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			runNow(t, dsn, target, slot)
			stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--slot", slot, "--poll-interval", "200ms",
				"--metrics-addr", "127.0.0.1:0")
			time.Sleep(time.Second) // several polls
			mustExec(t, db, "ALTER TABLE z ADD COLUMN c int DEFAULT 5; ALTER TABLE z RENAME COLUMN a TO b")
			// The copy is logged before the commit that records it, so
			// /wait may not know of it yet: wait for its end, then for
			// the commit after it.
			waitForLog(t, logPath, "msg=\"table copied online\"")
			waitCurrent(t, dsn, logPath, stop) // /wait waits for copies too
			if log := stop(); strings.Contains(log, "level=ERROR") {
				t.Fatalf("run failed or copied nothing:\n%s", log)
			}
			compareRows(t, dsn, rows, "SELECT id, b, c FROM z")
		})
	}
}

// TestSurrogateKeyAdded: a table keyed by two columns gets a surrogate key
// (an identity column, made the primary key), then rows change; also a
// bigserial key replacing a REPLICA IDENTITY USING INDEX. The added
// column's values for older rows are in no WAL, so the table is copied
// again; a PostgreSQL target refused the new primary key over the older
// rows (NULL there) at every restart.
func TestSurrogateKeyAdded(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE m (user_id int, group_id int, role text, PRIMARY KEY (user_id, group_id));
				INSERT INTO m SELECT g, g % 7, 'member' FROM generate_series(1, 100) g;
				CREATE TABLE u (a int NOT NULL, v text); CREATE UNIQUE INDEX u_a ON u (a); ALTER TABLE u REPLICA IDENTITY USING INDEX u_a;
				INSERT INTO u SELECT g, 'v' || g FROM generate_series(1, 50) g;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() { t.Helper(); runNow(t, dsn, target, slot) }
			run()
			mustExec(t, db, `ALTER TABLE m ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;
				ALTER TABLE m DROP CONSTRAINT m_pkey; ALTER TABLE m ADD PRIMARY KEY (id);
				UPDATE m SET role = 'admin' WHERE user_id % 10 = 0;
				ALTER TABLE u ADD COLUMN id bigserial; ALTER TABLE u ADD PRIMARY KEY (id); ALTER TABLE u REPLICA IDENTITY DEFAULT;
				UPDATE u SET v = 'changed' WHERE a % 5 = 0; INSERT INTO u (a, v) VALUES (1000, 'new')`)
			run()
			compareRows(t, dsn, rows, "SELECT id, user_id, group_id, role FROM m", "SELECT id, a, v FROM u")
			mustExec(t, db, "UPDATE m SET role = 'later' WHERE id % 3 = 0; DELETE FROM u WHERE id % 4 = 0")
			run()
			compareRows(t, dsn, rows, "SELECT id, user_id, group_id, role FROM m", "SELECT id, a, v FROM u")
		})
	}
}

// TestGeneratedExpressionDropped: a stored generated column the
// publication does not publish becomes a plain column (DROP EXPRESSION),
// and the stream sends it from then on; older rows' values are in no WAL.
// The copy got NULL there with exit 0; the table is now copied again.
// Also with the ALTER and the next change in one transaction, and a later
// plain ADD COLUMN, which older rows hold NULL in.
func TestGeneratedExpressionDropped(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE g (id int PRIMARY KEY, x int, y int GENERATED ALWAYS AS (x * 2) STORED);
				INSERT INTO g (id, x) SELECT i, i FROM generate_series(1, 5) i;
				CREATE TABLE h (id int PRIMARY KEY, x int, y int GENERATED ALWAYS AS (x * 3) STORED, z text);
				INSERT INTO h (id, x, z) SELECT i, i, 'z' FROM generate_series(1, 5) i;
				CREATE PUBLICATION walmirror FOR TABLE g, h;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() { t.Helper(); runNow(t, dsn, target, slot) }
			run()
			mustExec(t, db, `ALTER TABLE g ALTER COLUMN y DROP EXPRESSION`)
			mustExec(t, db, `BEGIN; ALTER TABLE h ALTER COLUMN y DROP EXPRESSION; UPDATE h SET x = 100 WHERE id = 1; COMMIT`)
			mustExec(t, db, `UPDATE g SET x = 100 WHERE id = 1`)
			run()
			compareRows(t, dsn, rows, "SELECT id, x, y FROM g", "SELECT id, x, y, z FROM h")
			mustExec(t, db, `ALTER TABLE g ADD COLUMN w int; UPDATE g SET x = 7 WHERE id = 2`)
			run()
			compareRows(t, dsn, rows, "SELECT id, x, y, w FROM g")
			// A generated column added after the copy, then made plain.
			mustExec(t, db, `ALTER TABLE g ADD COLUMN q int GENERATED ALWAYS AS (x + 1) STORED; UPDATE g SET x = 8 WHERE id = 3`)
			run()
			mustExec(t, db, `ALTER TABLE g ALTER COLUMN q DROP EXPRESSION; UPDATE g SET x = 9 WHERE id = 4`)
			run()
			compareRows(t, dsn, rows, "SELECT id, x, y, w, q FROM g")
		})
	}
}

// TestGeneratedColumnPublishedLater: on PostgreSQL 18 a publication that
// starts publishing an existing stored generated column
// (publish_generated_columns = stored, or a column list that now names
// it) sends a column whose older rows the stream cannot fill. walmirror
// started an online copy of the table, then stopped at every run ("has a
// default and PostgreSQL stored no value": helper-54); the copy now
// replaces the rows, the column included. Every target.
func TestGeneratedColumnPublishedLater(t *testing.T) {
	needServer(t)
	testenv.SkipBelow(t, server, 18, "publish_generated_columns and generated columns in column lists")
	eachTargetAndMode(t, func(t *testing.T, tg schemaTarget, streaming bool) {
		dsn, db := newDatabase(t, `CREATE TABLE g (id int PRIMARY KEY, a int, d int GENERATED ALWAYS AS (a * 2) STORED);
			INSERT INTO g (id, a) SELECT x, x FROM generate_series(1, 100) x;
			CREATE TABLE k (id int PRIMARY KEY, a int, d int GENERATED ALWAYS AS (a * 3) STORED);
			INSERT INTO k (id, a) SELECT x, x FROM generate_series(1, 50) x;
			CREATE PUBLICATION walmirror FOR TABLE g, k (id, a) WITH (publish_generated_columns = none);`)
		target, rows := tg.new(t)
		f := &follower{t: t, dsn: dsn, db: db, slot: "s_" + db, target: target, streaming: streaming}
		dropSlotAtEnd(t, db, f.slot)
		f.catchUp()
		f.exec(`ALTER PUBLICATION walmirror SET (publish_generated_columns = stored); UPDATE g SET a = a + 1 WHERE id <= 5`)
		f.exec(`ALTER PUBLICATION walmirror SET TABLE g, k (id, a, d); UPDATE k SET a = a + 1 WHERE id <= 5`)
		f.catchUp()
		compareRows(t, dsn, rows, "SELECT id, a, d FROM g", "SELECT id, a, d FROM k")
		f.exec(`UPDATE g SET a = 0 WHERE id = 7; INSERT INTO k (id, a) VALUES (51, 51)`)
		f.catchUp()
		compareRows(t, dsn, rows, "SELECT id, a, d FROM g", "SELECT id, a, d FROM k")
	})
}

// waitCurrent waits, through GET /wait on the run's --metrics-addr (read
// from its log at logPath), until the copy holds the source's current WAL
// position; it fails the test with the run's log (stop) otherwise.
func waitCurrent(t *testing.T, dsn, logPath string, stop func() string) {
	t.Helper()
	out, _ := os.ReadFile(logPath)
	addr := servingMetrics.FindSubmatch(out)
	if addr == nil {
		t.Fatalf("no metrics address in the log:\n%s", out)
	}
	at, err := mirrortest.SourceRows(context.Background(), dsn, "SELECT pg_current_wal_lsn()::text")
	if err != nil || len(at) != 1 {
		t.Fatalf("current WAL position: %q %v", at, err)
	}
	if code, body := get(t, "http://"+string(addr[1])+"/wait?lsn="+at[0]+"&timeout=30s"); code != 200 {
		t.Fatalf("/wait = %d %s\n%s", code, body, stop())
	}
}

// targetExec runs statements on a copy behind walmirror's back (walmirror
// stopped: DuckDB's file is then free). In DuckDB the tables are in schema
// public.
func targetExec(t *testing.T, target, q string) {
	t.Helper()
	switch {
	case strings.HasPrefix(target, "sqlite:"):
		sqlExec(t, "sqlite3", strings.TrimPrefix(target, "sqlite:"), q)
	case strings.HasPrefix(target, "duckdb:"):
		sqlExec(t, "duckdb", strings.TrimPrefix(target, "duckdb:"), q)
	default:
		conn, err := pgx.Connect(context.Background(), target)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestResyncRows: walmirror resync --table t --key copies exactly the rows
// named again online (deleted in the copy, read again from the source),
// and no other: a row damaged in the copy but not named stays damaged.
// Source changes to the named rows before and after the request, and a
// composite key. Every target.
func TestResyncRows(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text);
				INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 500) g;
				CREATE TABLE u (a int, b bigint, v text, PRIMARY KEY (a, b));
				INSERT INTO u SELECT g % 10, g, 'u' || g FROM generate_series(1, 100) g;
				CREATE TABLE s (k text, n int, v text, PRIMARY KEY (k, n));
				INSERT INTO s SELECT 'k' || g, g % 3, 's' || g FROM generate_series(1, 100) g;
				INSERT INTO s VALUES ('it''s "a, b" ', 1, 'q'), ('', 2, 'empty'), ('é', 0, 'e'), ('back\slash', 1, 'b');`)
			// A case-insensitive key ('abc' = 'ABC'), where ICU is built in.
			ci := server.Exec(t.Context(), db, `CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
				CREATE TABLE c (k text COLLATE ci PRIMARY KEY, v text); INSERT INTO c VALUES ('ABC', 'upper'), ('def', 'lower')`) == nil
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() string {
				t.Helper()
				r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
				if r.code != 0 {
					t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
				}
				return r.stderr
			}
			run()
			tbl := func(name string) string {
				if tg.name == "sqlite" {
					return name
				}
				return "public." + name
			}
			targetExec(t, target, fmt.Sprintf(`UPDATE %[1]s SET v = 'tampered' WHERE id IN (2, 50); DELETE FROM %[1]s WHERE id = 3;
				INSERT INTO %[1]s (id, v) VALUES (1000, 'extra'); UPDATE %[2]s SET v = 'tampered' WHERE a = 1 AND b = 1;
				UPDATE %[3]s SET v = 'tampered' WHERE n = 1 AND k LIKE 'it%%' OR k = '' OR k = 'k4' OR k = 'k5' OR k = 'back\slash'`, tbl("t"), tbl("u"), tbl("s")))
			if ci {
				// A stale extra row whose key differs from a source row's
				// only in case.
				targetExec(t, target, fmt.Sprintf(`INSERT INTO %s (k, v) VALUES ('abc', 'stale')`, tbl("c")))
			}
			mustExec(t, db, "UPDATE t SET v = 'before' WHERE id = 2")
			resync := func(args ...string) {
				t.Helper()
				r := walmirror(t, nil, append([]string{"resync", "--source", dsn, "--slot", slot}, args...)...)
				if r.code != 0 || !strings.Contains(r.stdout, "rows of") {
					t.Fatalf("resync exited %d:\n%s%s", r.code, r.stdout, r.stderr)
				}
			}
			resync("--table", "public.t", "--key", "2", "--key", "3", "--key", "1000", "--key", "4")
			resync("--table", "u", "--key", "1,1")
			// Text keys as they are: a comma and quotes (CSV-quoted), empty.
			resync("--table", "s", "--key", `"it's ""a, b"" ",1`, "--key", ",2", "--key", "k4,1", "--key", `back\slash,1`)
			copies := 3
			if ci {
				resync("--table", "c", "--key", "abc")
				copies++
			}
			mustExec(t, db, "UPDATE t SET v = 'after' WHERE id IN (3, 4); INSERT INTO t VALUES (1001, 'new'); UPDATE u SET v = 'after' WHERE a = 1 AND b = 11")
			// Literals walmirror writes (the keys) mean the same with the
			// database's standard_conforming_strings off.
			mustExec(t, "postgres", "ALTER DATABASE "+db+" SET standard_conforming_strings = off")
			log := run()
			mustExec(t, "postgres", "ALTER DATABASE "+db+" RESET standard_conforming_strings")
			if n := strings.Count(log, `msg="rows copied again online"`); n != copies || strings.Contains(log, `msg="copying table online"`) {
				t.Errorf("want %d row copies and no table copy:\n%s", copies, log)
			}
			compareRows(t, dsn, rows, "SELECT id, v FROM t WHERE id <> 50", "SELECT a, b, v FROM u", "SELECT k, n, v FROM s WHERE k <> 'k5'")
			if ci {
				compareRows(t, dsn, rows, "SELECT k, v FROM c")
			}
			if got, err := rows("SELECT v FROM s WHERE k = 'k5'"); err != nil || len(got) != 1 || !strings.Contains(got[0], "tampered") {
				t.Errorf("row k5 of s, not named, was copied again too: %q %v", got, err)
			}
			if got, err := rows("SELECT v FROM t WHERE id = 50"); err != nil || len(got) != 1 || !strings.Contains(got[0], "tampered") {
				t.Errorf("row 50, not named, was copied again too: %q %v", got, err)
			}
		})
	}
}

// runToFault runs the fault-injecting binary until fault point p kills it
// (failing the test if it never does within 30 s) and returns its log.
func runToFault(t *testing.T, bin string, args []string, p string) string {
	t.Helper()
	run := exec.Command(bin, args...)
	run.Env = append(os.Environ(), "WALMIRROR_FAULT="+p)
	var stderr bytes.Buffer
	run.Stderr = &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(faultWait, func() { _ = run.Process.Signal(syscall.SIGTERM) })
	err := run.Wait()
	timer.Stop()
	ws, _ := run.ProcessState.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL || !strings.Contains(stderr.String(), "faultpoint: ") {
		t.Fatalf("%s was never reached (%v):\n%s", p, err, stderr.String())
	}
	return stderr.String()
}

// runKilledAfter runs bin with args and kills it (SIGKILL) after d,
// wherever it is; it returns what it logged.
func runKilledAfter(t *testing.T, bin string, args []string, d time.Duration) string {
	t.Helper()
	run := exec.Command(bin, args...)
	var stderr bytes.Buffer
	run.Stderr = &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	_ = run.Process.Signal(syscall.SIGKILL)
	_ = run.Wait()
	return stderr.String()
}

// TestResyncRowsFaults: a copy of chosen rows killed at each fault point
// inside it (chunk read, watermark written, before and after the commit
// that completes it) while the source keeps changing those rows and
// others; the copy ends equal to the source, the rows copied by key.
func TestResyncRowsFaults(t *testing.T) {
	needServer(t)
	bin := faultBinary(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE t (id bigint PRIMARY KEY, v text, n int);
				INSERT INTO t SELECT g, 'v' || g, 0 FROM generate_series(1, 2000) g;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"run", "--source", dsn, "--target", target, "--slot", slot, "--commit-rows", "50"}
			if r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...); r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			// A writer: updates all over the table, deletes and inserts
			// among the rows to copy again.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := writeLoop(ctx, dsn, 0, 2*time.Millisecond, func(ctx context.Context, conn *pgx.Conn, i int) error {
				_, err := conn.Exec(ctx, fmt.Sprintf(`UPDATE t SET n = n + 1, v = 'w%[1]d' WHERE id = 1 + (%[1]d * 37) %% 2000;
					DELETE FROM t WHERE id = 1 + (%[1]d * 11) %% 400;
					INSERT INTO t VALUES (1 + (%[1]d * 13) %% 400, 'back', %[1]d) ON CONFLICT DO NOTHING`, i))
				return err
			})
			resync := []string{"resync", "--source", dsn, "--slot", slot, "--table", "t"}
			for k := 1; k <= 400; k += 3 {
				resync = append(resync, "--key", strconv.Itoa(k))
			}
			var logs strings.Builder
			for _, p := range []string{"backfill.chunk-read:1", "backfill.watermark-written:1", "apply.before-commit:3", "apply.after-commit:3"} {
				if r := walmirror(t, nil, resync...); r.code != 0 {
					t.Fatalf("resync exited %d:\n%s", r.code, r.stderr)
				}
				logs.WriteString(runToFault(t, bin, args, p))
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...)
			if r.code != 0 {
				t.Fatalf("final run exited %d:\n%s", r.code, r.stderr)
			}
			logs.WriteString(r.stderr)
			if !strings.Contains(logs.String(), `msg="rows copied again online"`) || strings.Contains(logs.String(), `msg="copying table online"`) {
				t.Errorf("want the rows copied again by key, never the whole table:\n%s", logs.String())
			}
			compareRows(t, dsn, rows, "SELECT id, v, n FROM t")
		})
	}
}

// TestResyncRequestSurvivesStop: a resync request taken up by a run that
// stops before the copy could start (the table locked by DDL) is recorded
// in the target with its position, so the next run does the copy; the
// source is never told the request's position was applied before that.
func TestResyncRequestSurvivesStop(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;`)
	target, rows := schemaTargets[0].new(t)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	args := []string{"--source", dsn, "--target", target, "--slot", slot}
	if r := walmirror(t, nil, append(append([]string{"run"}, args...), "--stop-at-lsn", "now")...); r.code != 0 {
		t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
	}
	targetExec(t, target, "UPDATE t SET v = 'damaged' WHERE id = 7")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var relid uint32
	if err := conn.QueryRow(ctx, `SELECT 'public.t'::regclass::oid`).Scan(&relid); err != nil {
		t.Fatal(err)
	}
	locker, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	if _, err := locker.Exec(ctx, "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	stop, logPath := startRunUntil(t, "msg=streaming", args...)
	// The request walmirror resync would write (which cannot look the
	// table up while it is locked on PostgreSQL 18).
	req := apply.EncodeResyncKeys(slot, []uint32{relid}, []string{"public.t"}, [][][]string{{{"7"}}})
	if _, err := conn.Exec(ctx, `SELECT pg_logical_emit_message(true, $1, $2)`, source.ResyncPrefix, req); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, logPath, "copying rows again online")
	// Past the copy's 5 s lock timeout: the run waits on (its chunk and the
	// publication poll read the table later) and confirms what it applied.
	time.Sleep(6500 * time.Millisecond)
	if log := stop(); strings.Contains(log, "level=ERROR") || strings.Contains(log, "walmirror: ") {
		t.Fatalf("the run failed while the table was locked:\n%s", log)
	}
	if _, err := locker.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	r := walmirror(t, nil, append(append([]string{"run"}, args...), "--stop-at-lsn", "now")...)
	if r.code != 0 || !strings.Contains(r.stderr, "rows copied again online") {
		t.Fatalf("the next run exited %d without copying the row:\n%s", r.code, r.stderr)
	}
	compareRows(t, dsn, rows, "SELECT id, v FROM t")
}

// TestChunkedCopyKeyRanges: a chunked initial copy of tables keyed by an
// integer and a uuid together, published with a row filter (PostgreSQL
// 15+), keyed by text (in chunks by bytes: the test database is C.UTF-8),
// and with an enum column, in small chunks that grow and shrink
// (--copy-chunk-time), while a session changes rows ahead of the copy and
// behind it; every value ends equal. Into PostgreSQL the rows go as the
// source's binary COPY by key range (all but the enum table), into SQLite
// and DuckDB decoded in key order. Every target.
func TestChunkedCopyKeyRanges(t *testing.T) {
	needServer(t)
	filter := ""
	if server.Major() >= 15 {
		filter = " WHERE (id % 3 <> 0)"
	}
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
				CREATE TABLE ck (a int, b uuid, n numeric, j jsonb, s text, arr int[], at timestamptz, PRIMARY KEY (a, b));
				INSERT INTO ck SELECT g / 5, md5(g::text)::uuid, g / 7.0, jsonb_build_object('g', g, 's', 'x"y'), E'tab\there ' || g,
					ARRAY[g, g + 1], '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 3000) g;
				CREATE TABLE f (id bigint PRIMARY KEY, v text);
				INSERT INTO f SELECT g, 'v' || g FROM generate_series(1, 2000) g;
				CREATE TABLE tk (k text PRIMARY KEY, v int);
				INSERT INTO tk SELECT 'k' || g, g FROM generate_series(1, 500) g;
				CREATE TABLE e (id int PRIMARY KEY, m mood, note text);
				INSERT INTO e SELECT g, (ARRAY['sad', 'ok', 'happy']::mood[])[1 + g % 3], NULL FROM generate_series(1, 1500) g;
				ANALYZE;
				CREATE PUBLICATION walmirror FOR TABLE ck, f`+filter+`, tk, e;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"run", "--source", dsn, "--target", target, "--slot", slot, "--initial-copy", "chunked",
				"--copy-chunk-rows", "40", "--copy-chunk-time", "50ms", "--log-level", "debug"}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Rows ahead of the copy and behind it change while it runs.
			changes := writeLoop(ctx, dsn, 400, 0, func(ctx context.Context, conn *pgx.Conn, i int) error {
				b := &pgx.Batch{}
				b.Queue(`UPDATE ck SET n = n + 1, j = j || '{"u": 1}' WHERE a = $1`, (i*37)%600)
				b.Queue(`UPDATE f SET v = v || '+' WHERE id IN ($1, $2)`, (i*53)%2000+1, 2000-i)
				b.Queue(`DELETE FROM f WHERE id = $1`, (i*11)%2000+1)
				b.Queue(`INSERT INTO f VALUES ($1, 'new') ON CONFLICT DO NOTHING`, (i*11)%2000+100001)
				b.Queue(`UPDATE e SET m = 'happy', note = 'n' || $1::int WHERE id = $2`, i, (i*29)%1500+1)
				return conn.SendBatch(ctx, b).Close()
			})
			r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...)
			if r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			if err := <-changes; err != nil {
				t.Fatal(err)
			}
			cancel()
			// What the session changed after the first run's stop position.
			if r2 := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...); r2.code != 0 {
				t.Fatalf("second run exited %d:\n%s", r2.code, r2.stderr)
			}
			var sizes []string
			for _, m := range chunkRowsRe.FindAllStringSubmatch(r.stderr, -1) {
				if m[1] == "public.ck" {
					sizes = append(sizes, m[2])
				}
			}
			if len(sizes) < 5 {
				t.Errorf("ck was copied in %d chunks, want several:\n%s", len(sizes), r.stderr)
			}
			t.Logf("chunks of ck: %s rows", strings.Join(sizes, ", "))
			compareRows(t, dsn, rows, "SELECT a, CAST(b AS TEXT), s FROM ck",
				"SELECT id, v FROM f"+filter, "SELECT k, v FROM tk", "SELECT id, CAST(m AS TEXT), note FROM e")
			// Every value of every column, as verify compares them.
			if v := walmirror(t, nil, "verify", "--source", dsn, "--target", target); v.code != 0 {
				t.Errorf("verify exited %d:\n%s%s", v.code, v.stdout, v.stderr)
			}
		})
	}
}

// TestChunkedCopyTimeKey: tables keyed by times are copied in chunks by
// their keys (before, each was read in one chunk, again from the start
// after a restart): a table partitioned by time, keyed by (id, at) and
// published through its root, and one keyed by (date, timestamptz,
// timestamp) holding ±infinity and BC values, while rows change and keys
// move across the copy's progress both ways. Every value ends equal.
// Every target.
func TestChunkedCopyTimeKey(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE ev (id bigint, at timestamptz, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
				CREATE TABLE ev_1 PARTITION OF ev FOR VALUES FROM (MINVALUE) TO ('2026-01-05');
				CREATE TABLE ev_2 PARTITION OF ev FOR VALUES FROM ('2026-01-05') TO ('2026-01-10');
				CREATE TABLE ev_3 PARTITION OF ev FOR VALUES FROM ('2026-01-10') TO (MAXVALUE);
				INSERT INTO ev SELECT g % 50, '2026-01-01'::timestamptz + g * interval '7 minutes 0.5 seconds', 'v' || g FROM generate_series(1, 3000) g;
				CREATE TABLE tt (d date, at timestamptz, ts timestamp, v text, PRIMARY KEY (d, at, ts));
				INSERT INTO tt SELECT DATE '2026-01-01' + g / 100, '2026-01-01'::timestamptz + g * interval '17 minutes 0.5 seconds',
					'2026-01-01'::timestamp - g * interval '1 hour', 'v' || g FROM generate_series(1, 2000) g;
				INSERT INTO tt VALUES ('-infinity', 'infinity', '2000-01-01', 'neg'), ('infinity', '-infinity', '0044-03-15 BC', 'pos'),
					('0001-01-01 BC', '2026-01-01', 'infinity', 'bc');
				ANALYZE;
				CREATE PUBLICATION walmirror FOR TABLE ev, tt WITH (publish_via_partition_root = true);`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"run", "--source", dsn, "--target", target, "--slot", slot, "--initial-copy", "chunked",
				"--copy-chunk-rows", "100", "--copy-chunk-time", "-1s", "--log-level", "debug", "--stop-at-lsn", "now"}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			changes := writeLoop(ctx, dsn, 300, 5*time.Millisecond, func(ctx context.Context, conn *pgx.Conn, i int) error {
				b := &pgx.Batch{}
				id := (i * 7) % 50
				b.Queue(`UPDATE ev SET v = v || '+' WHERE id = $1 AND at < '2026-01-08'`, id)
				b.Queue(`UPDATE ev SET at = at + interval '3 days' WHERE id = $1 AND at < '2026-01-03'`, (i*3)%50)
				b.Queue(`UPDATE ev SET id = id + 100 WHERE id = $1 AND at > '2026-01-12'`, (i*11)%50)
				b.Queue(`UPDATE ev SET id = id - 100 WHERE id = $1`, (i*13)%50+100)
				b.Queue(`DELETE FROM ev WHERE id = $1 AND at BETWEEN '2026-01-06' AND '2026-01-06 06:00'`, (i*17)%50)
				b.Queue(`INSERT INTO ev VALUES ($1::int % 60, '2026-01-01'::timestamptz + $1::int * interval '1 second 1 microsecond', 'n')`, i)
				b.Queue(`UPDATE tt SET v = v || '+' WHERE d = DATE '2026-01-01' + $1::int`, (i*7)%21)
				b.Queue(`UPDATE tt SET at = at + interval '1 day 0.25 seconds' WHERE d = DATE '2026-01-01' + $1::int AND ts > '2025-12-20'`, (i*3)%21)
				b.Queue(`UPDATE tt SET d = d + CASE WHEN $1::int % 2 = 0 THEN 9 ELSE -9 END WHERE ts = '2026-01-01'::timestamp - $1::int * interval '1 hour'`, (i*13)%2000+1)
				b.Queue(`DELETE FROM tt WHERE ts = '2026-01-01'::timestamp - $1::int * interval '1 hour'`, (i*17)%2000+1)
				b.Queue(`INSERT INTO tt VALUES (DATE '2026-01-01' + $1::int % 30, now(), 'epoch'::timestamp + $1::int * interval '1 second', 'n' || $1::int)`, i)
				return conn.SendBatch(ctx, b).Close()
			})
			r := walmirror(t, nil, args...)
			if err := <-changes; err != nil {
				t.Fatal(err)
			}
			if r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			// What the writes changed after the first run's stop position.
			if r2 := walmirror(t, nil, args...); r2.code != 0 {
				t.Fatalf("second run exited %d:\n%s", r2.code, r2.stderr)
			}
			for _, table := range []string{"public.ev", "public.tt"} {
				var sizes []string
				for _, m := range chunkRowsRe.FindAllStringSubmatch(r.stderr, -1) {
					if m[1] == table {
						sizes = append(sizes, m[2])
					}
				}
				if len(sizes) < 10 {
					t.Errorf("%s was copied in %d chunks, want several:\n%s", table, len(sizes), r.stderr)
				}
			}
			compareRows(t, dsn, rows, "SELECT id, v FROM ev", "SELECT v FROM tt")
			// Every value of every column, as verify compares them.
			if v := walmirror(t, nil, "verify", "--source", dsn, "--target", target); v.code != 0 {
				t.Errorf("verify exited %d:\n%s%s", v.code, v.stdout, v.stderr)
			}
		})
	}
}

// TestTruncateNotCopiedAgain: a TRUNCATE gives the table new data files,
// which the publication poll sees; the stream carried the TRUNCATE, so the
// copy needs no online copy of the table, also when the run that applied it
// ended before its poll saw the new files (bounded runs, a restart) and the
// next run is the first to look. Before, that next run copied the whole
// table again. A TRUNCATE followed by rows and a rewrite in one transaction,
// and a rewrite after the TRUNCATE, are copied again. Every target.
func TestTruncateNotCopiedAgain(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE tr (id int PRIMARY KEY, y int); INSERT INTO tr SELECT g, g FROM generate_series(1, 20) g;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() string { t.Helper(); return runNowLog(t, dsn, target, slot, "--log-level", "debug") }
			run()
			mustExec(t, db, "TRUNCATE tr")
			mustExec(t, db, "INSERT INTO tr SELECT g, -g FROM generate_series(1, 30) g")
			for i := range 2 {
				if log := run(); strings.Contains(log, "copying table online") {
					t.Errorf("run %d after a TRUNCATE the stream carried copied the table again:\n%s", i+1, log)
				}
				compareRows(t, dsn, rows, "SELECT id, y FROM tr")
			}
			// Rows inserted after a TRUNCATE in its transaction, then
			// rewritten in it (a USING to the same type: no Relation
			// message follows): the new data files are the rewrite's too.
			// Before, the copy kept the inserted values and exited 0.
			mustExec(t, db, "BEGIN; TRUNCATE tr; INSERT INTO tr SELECT g, g FROM generate_series(1, 25) g; ALTER TABLE tr ALTER COLUMN y TYPE int USING y * 7; COMMIT")
			run()
			compareRows(t, dsn, rows, "SELECT id, y FROM tr")
			mustExec(t, db, "ALTER TABLE tr ALTER COLUMN y TYPE bigint USING y * 7")
			if log := run(); !strings.Contains(log, "copying table online") {
				t.Errorf("no online copy after a rewrite that followed the TRUNCATE:\n%s", log)
			}
			compareRows(t, dsn, rows, "SELECT id, y FROM tr")
		})
	}
}

// TestPublicationFilterChanges: a publication's row filter or column list
// altered (PostgreSQL 15) makes the copy hold the rows and columns it
// selects from then on: rows a widened filter newly selects, even one
// updated straight after the change (before, the update found no row and
// PostgreSQL and DuckDB copies stopped on every run), rows a narrowed
// filter no longer selects, and a column the list newly includes.
func TestPublicationFilterChanges(t *testing.T) {
	needServer(t)
	testenv.SkipBelow(t, server, 15, "a publication row filter and column list")
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE a (id int PRIMARY KEY, k int NOT NULL, v text);
				CREATE UNIQUE INDEX a_idk ON a (id, k); ALTER TABLE a REPLICA IDENTITY USING INDEX a_idk;
				INSERT INTO a SELECT g, g % 10, 'v' || g FROM generate_series(1, 100) g;
				CREATE TABLE b (id int PRIMARY KEY, x text, y text); INSERT INTO b SELECT g, 'x' || g, 'y' || g FROM generate_series(1, 20) g;
				CREATE PUBLICATION walmirror FOR TABLE a WHERE (k < 5), b (id, x);`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() { t.Helper(); runNow(t, dsn, target, slot) }
			same := func(srcQuery, copyQuery string) {
				t.Helper()
				want, err := mirrortest.SourceRows(context.Background(), dsn, srcQuery)
				if err != nil {
					t.Fatal(err)
				}
				got, err := rows(copyQuery)
				if err != nil {
					t.Fatal(err)
				}
				if d := mirrortest.Diff(want, got); d != "" {
					t.Errorf("%s: %s", copyQuery, d)
				}
			}
			run()
			same("SELECT id, k, v FROM a WHERE k < 5", "SELECT id, k, v FROM a")
			// Widened, and a newly selected row updated at once.
			mustExec(t, db, "ALTER PUBLICATION walmirror SET TABLE a WHERE (k < 8), b (id, x)")
			mustExec(t, db, "UPDATE a SET v = 'after' WHERE id = 7; DELETE FROM a WHERE id = 16; UPDATE a SET v = 'also' WHERE id = 2")
			run()
			same("SELECT id, k, v FROM a WHERE k < 8", "SELECT id, k, v FROM a")
			// Narrowed: rows it no longer selects leave the copy.
			mustExec(t, db, "ALTER PUBLICATION walmirror SET TABLE a WHERE (k < 3), b (id, x)")
			mustExec(t, db, "UPDATE a SET v = 'late' WHERE id IN (1, 4)")
			run()
			same("SELECT id, k, v FROM a WHERE k < 3", "SELECT id, k, v FROM a")
			// A column the list newly includes, changed at once in one row.
			mustExec(t, db, "ALTER PUBLICATION walmirror SET TABLE a WHERE (k < 3), b")
			mustExec(t, db, "UPDATE b SET y = 'new' WHERE id = 3")
			run()
			same("SELECT id, x, y FROM b", "SELECT id, x, y FROM b")
			same("SELECT id, k, v FROM a WHERE k < 3", "SELECT id, k, v FROM a")
		})
	}
}

// TestRowMovedIntoFilterUnsentToast: an UPDATE that moves a row into a
// publication's row filter reaches walmirror as an INSERT, and pgoutput
// leaves its unchanged TOASTed values out (it has no old row to take them
// from). The run stopped at it with an internal error, at every restart;
// the row is now copied again online from the source. Also when the key
// itself moved, and with other rows changing around it.
func TestRowMovedIntoFilterUnsentToast(t *testing.T) {
	needServer(t)
	testenv.SkipBelow(t, server, 15, "a publication row filter")
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE z (id int PRIMARY KEY, big text, s text);
				ALTER TABLE z ALTER COLUMN big SET STORAGE EXTERNAL;
				INSERT INTO z SELECT g, repeat(md5(g::text), 500), 'x' FROM generate_series(1, 10) g;
				INSERT INTO z SELECT g, 'small' || g, 'y' FROM generate_series(101, 105) g;
				CREATE PUBLICATION walmirror FOR TABLE z WHERE (id > 100);`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() { t.Helper(); runNow(t, dsn, target, slot) }
			same := func() {
				t.Helper()
				want, err := mirrortest.SourceRows(context.Background(), dsn, "SELECT id, big, s FROM z WHERE id > 100")
				if err != nil {
					t.Fatal(err)
				}
				got, err := rows("SELECT id, big, s FROM z")
				if err != nil {
					t.Fatal(err)
				}
				if d := mirrortest.Diff(want, got); d != "" {
					t.Error(d)
				}
			}
			run()
			same()
			mustExec(t, db, `UPDATE z SET id = id + 1000 WHERE id = 3;
				UPDATE z SET s = 'in' WHERE id = 104;
				BEGIN; UPDATE z SET id = 50 WHERE id = 105; UPDATE z SET id = 150 WHERE id = 50; COMMIT;
				BEGIN; UPDATE z SET id = 60 WHERE id = 1; UPDATE z SET id = 160 WHERE id = 60; COMMIT;
				BEGIN; UPDATE z SET id = id + 1000 WHERE id = 4; UPDATE z SET s = 'later' WHERE id = 1004; COMMIT;
				UPDATE z SET id = id + 2000 WHERE id = 5; DELETE FROM z WHERE id = 2005;
				UPDATE z SET id = id + 1000 WHERE id = 6; UPDATE z SET big = 'changed' WHERE id = 1006`)
			run()
			same()
		})
	}
}

// TestManyRowsMovedIntoFilter: UPDATEs moving 1,500 rows with TOASTed
// values into a row filter (pgoutput sends each as an INSERT without
// them). Each row used to restart a keyed copy of every key so far
// (quadratic, a log line per row); past maxUnsentKeys the whole table is
// copied instead, and rows a whole-table copy has not reached wait for it.
func TestManyRowsMovedIntoFilter(t *testing.T) {
	needServer(t)
	testenv.SkipBelow(t, server, 15, "a publication row filter")
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE z (id int PRIMARY KEY, big text, s text);
				ALTER TABLE z ALTER COLUMN big SET STORAGE EXTERNAL;
				INSERT INTO z SELECT g, repeat(md5(g::text), 70), 's' FROM generate_series(1, 1500) g;
				INSERT INTO z SELECT g, 'small', 's' FROM generate_series(100001, 100010) g;
				CREATE PUBLICATION walmirror FOR TABLE z WHERE (id > 100000);`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			runNow(t, dsn, target, slot)
			mustExec(t, db, `UPDATE z SET id = id + 200000 WHERE id < 1400`)
			mustExec(t, db, `UPDATE z SET id = id + 200000 WHERE id < 100000; UPDATE z SET s = 't' WHERE id % 7 = 0`)
			r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
			if r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			if n := strings.Count(r.stderr, "copying rows again online"); n > 1 {
				t.Errorf("%d log lines for one keyed copy", n)
			}
			want, err := mirrortest.SourceRows(context.Background(), dsn, "SELECT id, big, s FROM z WHERE id > 100000")
			if err != nil {
				t.Fatal(err)
			}
			got, err := rows("SELECT id, big, s FROM z")
			if err != nil {
				t.Fatal(err)
			}
			if d := mirrortest.Diff(want, got); d != "" {
				t.Error(d)
			}
		})
	}
}

// TestResyncBadKeys: resync --key checks the keys against the table's key
// before it writes the request: a key of the wrong width or type exits 1
// naming it and the key's columns, and nothing is requested; keys are sent
// in the stream's form (007 is 7); a table whose key cannot be matched
// exactly (numeric) is said to be copied whole, and is.
func TestResyncBadKeys(t *testing.T) {
	needServer(t)
	tg := schemaTargets[0]
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text);
		INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 50) g;
		CREATE TABLE u (k numeric PRIMARY KEY, v text);
		INSERT INTO u SELECT g / 2.0, 'u' || g FROM generate_series(1, 20) g;
		CREATE TABLE w (a int, b uuid, v text, PRIMARY KEY (a, b));
		INSERT INTO w VALUES (1, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'w');`)
	target, rows := tg.new(t)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	run := func() string {
		t.Helper()
		r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
		if r.code != 0 {
			t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
		}
		return r.stderr
	}
	run()
	resync := func(args ...string) result {
		t.Helper()
		return walmirror(t, nil, append([]string{"resync", "--source", dsn, "--slot", slot}, args...)...)
	}
	for _, c := range []struct{ table, key, want string }{
		{"t", "abc", "(id integer)"},
		{"t", "1,2", "has 2 values"},
		{"t", "2147483648", "(id integer)"},
		{"w", "1", "(a integer, b uuid)"},
		{"w", "1,not-a-uuid", "(a integer, b uuid)"},
	} {
		r := resync("--table", c.table, "--key", c.key)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, c.key) {
			t.Errorf("resync --table %s --key %s exited %d, want 1 naming the key and %q:\n%s%s", c.table, c.key, r.code, c.want, r.stdout, r.stderr)
		}
	}
	targetExec(t, target, `UPDATE t SET v = 'tampered' WHERE id IN (7, 8); UPDATE u SET v = 'tampered' WHERE k = 0.5`)
	if r := resync("--table", "t", "--key", "007"); r.code != 0 || !strings.Contains(r.stdout, "resync of 1 rows") {
		t.Errorf("resync --key 007 exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := resync("--table", "u", "--key", "0.5"); r.code != 0 || !strings.Contains(r.stderr, "whole table") || !strings.Contains(r.stdout, "resync of public.u requested") {
		t.Errorf("resync of a numeric key exited %d, want 0 saying the whole table is copied:\n%s%s", r.code, r.stdout, r.stderr)
	}
	log := run()
	if n := strings.Count(log, `msg="rows copied again online"`); n != 1 || strings.Count(log, `msg="copying table online"`) != 1 ||
		!strings.Contains(log, "table=public.u") {
		t.Errorf("want one row copy (t) and one table copy (u), nothing for the refused keys:\n%s", log)
	}
	compareRows(t, dsn, rows, "SELECT id, v FROM t WHERE id <> 8", "SELECT k, v FROM u", "SELECT a, b, v FROM w")
	if got, err := rows("SELECT v FROM t WHERE id = 8"); err != nil || len(got) != 1 || !strings.Contains(got[0], "tampered") {
		t.Errorf("row 8, not named, was copied again too: %q %v", got, err)
	}
}

// TestTableLeavesDuringItsCopy: a table that leaves the publication, or is
// dropped, after some chunks of its online copy were committed leaves a
// partial copy behind: the log warns, naming the table and what was copied,
// and the run goes on (the other table streams).
func TestTableLeavesDuringItsCopy(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE small (id int PRIMARY KEY);
		CREATE TABLE big1 (id int PRIMARY KEY, v text); CREATE TABLE big2 (id int PRIMARY KEY, v text);
		INSERT INTO big1 SELECT g, repeat('x', 50) FROM generate_series(1, 200000) g;
		INSERT INTO big2 SELECT g, repeat('x', 50) FROM generate_series(1, 200000) g;`)
	const leftMsg = `msg="table left the publication (or was dropped) part-way through its copy: the copy of it holds only the rows copied so far, and is made afresh if the table joins again" table=public.`
	path := filepath.Join(t.TempDir(), "copy.db")
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", "sqlite:"+path, "--slot", slot,
		"--tables", "public.small", "--copy-chunk-rows", "100", "--copy-chunk-time", "-1s", "--poll-interval", "200ms", "--log-level", "debug")
	for _, c := range []struct{ table, leave string }{
		{"big1", "ALTER PUBLICATION walmirror DROP TABLE big1"},
		{"big2", "DROP TABLE big2"},
	} {
		mustExec(t, db, "ALTER PUBLICATION walmirror ADD TABLE "+c.table)
		waitForLog(t, logPath, `msg="copied chunk" table=public.`+c.table)
		mustExec(t, db, c.leave)
		waitForLog(t, logPath, leftMsg+c.table+" chunks_done=")
	}
	mustExec(t, db, "INSERT INTO small VALUES (1)")
	eventually(t, "small's row in the copy (the stream goes on)", func() bool {
		got, err := mirrortest.SQLiteRows(context.Background(), path, "SELECT count(*) FROM small")
		return err == nil && len(got) == 1 && got[0] == "1"
	})
	log := stop()
	for _, table := range []string{"big1", "big2"} {
		if !strings.Contains(log, "level=WARN "+leftMsg+table+" chunks_done=") {
			t.Errorf("no warning for %s:\n%s", table, log)
		}
	}
	if strings.Contains(log, "level=ERROR") {
		t.Errorf("the run met an error:\n%s", log)
	}
}

// TestResyncPartitioned: resync --table names a partitioned table as the
// user knows it. Published through its leaves, the name of the root copies
// every leaf again; published through its root, a leaf's name is refused
// with the root's name to use instead (both were "does not publish",
// helper-54).
func TestResyncPartitioned(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
		CREATE TABLE m0 PARTITION OF m FOR VALUES FROM (0) TO (100);
		CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (100) TO (200);
		INSERT INTO m SELECT g, 'v' || g FROM generate_series(0, 199) g;
		CREATE PUBLICATION leaves FOR TABLE m`)
	target, rows := schemaTargets[0].new(t)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	args := []string{"run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now", "--publication", "leaves"}
	if r := walmirror(t, nil, args...); r.code != 0 {
		t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
	}
	r := walmirror(t, nil, "resync", "--source", dsn, "--target", target, "--publication", "leaves", "--table", "public.m")
	if r.code != 0 || !strings.Contains(r.stdout, "m0") || !strings.Contains(r.stdout, "m1") {
		t.Fatalf("resync of a partitioned table published through its leaves: exit %d, want both leaves named:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = walmirror(t, nil, args...)
	if r.code != 0 || strings.Count(r.stderr, `msg="table copied online"`) != 2 {
		t.Errorf("run after the resync: exit %d, want two leaves copied again:\n%s", r.code, r.stderr)
	}
	compareRows(t, dsn, rows, "SELECT id, v FROM m0", "SELECT id, v FROM m1")
	// walmirror's own publication publishes partitions through their root.
	dropSlotAtEnd(t, db, slot+"_r")
	if r := walmirror(t, nil, "run", "--source", dsn, "--target", "sqlite:"+filepath.Join(t.TempDir(), "r.db"), "--slot", slot+"_r", "--stop-at-lsn", "now", "--tables", "public.m", "--publication", "viaroot"); r.code != 0 {
		t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
	}
	r = walmirror(t, nil, "resync", "--source", dsn, "--slot", slot+"_r", "--publication", "viaroot", "--table", "public.m1")
	if r.code != 1 || !strings.Contains(r.stderr, "through its partition root public.m") || !strings.Contains(r.stderr, "name public.m") {
		t.Errorf("resync of a leaf published through its root: exit %d, want 1 naming the root:\n%s", r.code, r.stderr)
	}
}

// TestOnlineCopyWhileTablesDropped: an application creates and drops tables
// while walmirror copies new tables online (their first change). Listing
// one table's publication membership opens every table of the database
// (pg_publication_tables, PostgreSQL 16+), so a table dropped meanwhile
// failed the chunk: exit 1 with "could not open relation with OID"
// (helper-64). Every target.
func TestOnlineCopyWhileTablesDropped(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY)`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			runNow(t, dsn, target, slot)
			stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--slot", slot, "--poll-interval", "200ms")

			ctx, cancel := context.WithCancel(t.Context())
			var dropper sync.WaitGroup
			dropper.Go(func() {
				conn, err := pgx.Connect(ctx, dsn)
				if err != nil {
					return
				}
				defer conn.Close(context.WithoutCancel(ctx))
				for i := 0; ctx.Err() == nil; i++ {
					// Two transactions: the table is seen, then dropped.
					_, _ = conn.Exec(ctx, fmt.Sprintf("CREATE TABLE b%d (id int PRIMARY KEY)", i))
					_, _ = conn.Exec(ctx, fmt.Sprintf("DROP TABLE b%d", i))
				}
			})
			const tables = 25
			queries := make([]string, 0, tables)
			for i := range tables {
				mustExec(t, db, fmt.Sprintf("CREATE TABLE a%d (id int PRIMARY KEY, v text); INSERT INTO a%d SELECT g, 'v' || g FROM generate_series(1, 50) g", i, i))
				mustExec(t, db, fmt.Sprintf("UPDATE a%d SET v = 'changed' WHERE id = 1", i))
				queries = append(queries, fmt.Sprintf("SELECT id, v FROM a%d", i))
				time.Sleep(100 * time.Millisecond)
				if out, _ := os.ReadFile(logPath); bytes.Contains(out, []byte("could not open relation")) {
					cancel()
					dropper.Wait()
					t.Fatalf("a table dropped meanwhile stopped the run:\n%s", stop())
				}
			}
			cancel()
			dropper.Wait()
			waitConfirmed(t, dsn, slot)
			logs := stop()
			if strings.Contains(logs, "level=ERROR") || strings.Contains(logs, "could not open relation") {
				t.Errorf("walmirror logged errors:\n%s", logs)
			}
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, queries...)
		})
	}
}

// TestCommitNotYetVisible: the stream delivers a transaction once its commit
// is in the WAL, before other sessions' snapshots show it (for the whole
// wait for a synchronous standby). An online copy whose snapshot was taken
// then is older than the copy: a resync of the table replaced it without
// that transaction's row, and a partitioned table's tracked keys looked
// missing and were deleted from the copy; exit 0 (helper-65; without a
// standby the same happened now and then under an insert load). Such a
// snapshot is now taken again until it shows what the stream delivered.
// A dedicated server: its synchronous standby never comes. Every target.
func TestCommitNotYetVisible(t *testing.T) {
	needServer(t)
	srv := holdServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			ctx := t.Context()
			db, exec := serverDatabase(t, srv, "vis_"+tg.name)
			exec(`CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 10) g;
				CREATE TABLE pt (id bigint PRIMARY KEY, v int) PARTITION BY HASH (id);
				CREATE TABLE pt0 PARTITION OF pt FOR VALUES WITH (modulus 2, remainder 0);
				CREATE TABLE pt1 PARTITION OF pt FOR VALUES WITH (modulus 2, remainder 1);
				INSERT INTO pt SELECT g, g FROM generate_series(1, 10) g`)
			dsn := srv.DSN(db)
			target, rows := tg.new(t)
			slot := "s_vis_" + tg.name
			runNow(t, dsn, target, slot)
			stop, _ := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--slot", slot, "--poll-interval", "100ms")

			release := holdCommit(ctx, exec, dsn, `BEGIN; INSERT INTO t VALUES (100, 1); INSERT INTO pt VALUES (100, 1); COMMIT`)
			time.Sleep(2 * time.Second) // streamed, applied, polled (pt's tracked key checked)
			if r := walmirror(t, nil, "resync", "--source", dsn, "--target", target, "--slot", slot, "--table", "public.t"); r.code != 0 {
				t.Fatalf("resync exited %d:\n%s%s", r.code, r.stdout, r.stderr)
			}
			time.Sleep(2 * time.Second) // the copy of t tries to read it
			if err := release(); err != nil {
				t.Fatal(err)
			}
			waitConfirmed(t, dsn, slot)
			logs := stop()
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, "SELECT id, v FROM t", "SELECT id, v FROM pt")
			if t.Failed() {
				t.Logf("the run:\n%s", logs)
			}
		})
	}
}

// TestCommitNotYetVisibleAfterRestart: a transaction the stream delivered
// while its commit still waited for a synchronous standby changed a row an
// online copy had not reached (the change is dropped: the copy's later
// chunk reads the row), the position passed it, and walmirror restarted.
// The next run must not read that row before the transaction shows: the
// stream, past it, never sends it again. Before, the run's memory of such
// transactions went with it, the resumed copy read the row without the
// change, and the copy kept the old row, exit 0 (helper-124). A dedicated
// server: its synchronous standby never comes. Every target.
func TestCommitNotYetVisibleAfterRestart(t *testing.T) {
	needServer(t)
	bin := faultBinary(t)
	srv := holdServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			ctx := t.Context()
			db, exec := serverDatabase(t, srv, "visr_"+tg.name)
			exec(`CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, g FROM generate_series(1, 3000) g;
				CREATE TABLE o (id int PRIMARY KEY)`)
			dsn := srv.DSN(db)
			target, rows := tg.new(t)
			slot := "s_visr_" + tg.name
			args := []string{"--source", dsn, "--target", target, "--slot", slot, "--copy-chunk-rows", "100", "--copy-chunk-time", "-1s"}
			runNow(t, dsn, target, slot)
			if r := walmirror(t, nil, "resync", "--source", dsn, "--target", target, "--slot", slot, "--table", "public.t"); r.code != 0 {
				t.Fatalf("resync exited %d:\n%s%s", r.code, r.stdout, r.stderr)
			}
			// The copy of t commits its first chunk (rows 1-100).
			runToFault(t, bin, append([]string{"run"}, args...), "backfill.chunk-read:2")
			// u, held, keeps the copy's chunks waiting (the stream delivers
			// it); o is described before it in the next session, so the
			// stream does not wait for u at a Relation message.
			exec(`INSERT INTO o VALUES (1)`)
			releaseU := holdCommit(ctx, exec, dsn, `INSERT INTO o VALUES (2)`)
			stop, _ := startRunUntil(t, "msg=streaming", args...)
			// t described in this session; then the held change to a row
			// past the copy's progress, dropped from the stream.
			exec(`UPDATE t SET v = -50 WHERE id = 50`)
			releaseT := holdCommit(ctx, exec, dsn, `UPDATE t SET v = -1 WHERE id = 3000`)
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
				// Both commits in the WAL, waiting for the standby.
				n, err := mirrortest.SourceRows(ctx, dsn, `SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`)
				if err != nil {
					t.Fatal(err)
				}
				if n[0] == "2" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s commits wait for the standby, want 2", n[0])
				}
			}
			waitConfirmed(t, dsn, slot)
			logs := stop()
			// The next run waits for both to show.
			done := make(chan result, 1)
			go func() { done <- walmirror(t, nil, append([]string{"run", "--stop-at-lsn", "now"}, args...)...) }()
			time.Sleep(3 * time.Second)
			if err := releaseU(); err != nil {
				t.Fatal(err)
			}
			if err := releaseT(); err != nil {
				t.Fatal(err)
			}
			r := <-done
			logs += r.stderr
			if r.code != 0 {
				t.Fatalf("the run after the restart exited %d:\n%s", r.code, logs)
			}
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, "SELECT id, v FROM t", "SELECT id FROM o")
			if t.Failed() {
				t.Logf("the runs:\n%s", logs)
			}
		})
	}
}

// serverDatabase creates database name on srv (a server of the test's
// own) and returns it with a function that runs SQL in it.
func serverDatabase(t *testing.T, srv *testenv.Server, name string) (db string, exec func(sql string)) {
	t.Helper()
	db, err := srv.CreateDatabase(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return db, func(sql string) {
		t.Helper()
		if err := srv.Exec(t.Context(), db, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// holdServer starts a server of the test's own for holdCommit: its
// default synchronous_commit is local, so only holdCommit's session waits
// for the standby it names.
func holdServer(t *testing.T) *testenv.Server {
	t.Helper()
	return testenv.StartT(t, testenv.Options{Settings: map[string]string{"synchronous_commit": "local"}})
}

// holdCommit runs sql (a transaction) on dsn in a session whose commit
// waits for a synchronous standby that never comes ('ghost', set with exec
// on a holdServer): the commit is in
// the WAL, so the stream delivers it, but other sessions do not see it
// until release lets it end (release returns its error).
func holdCommit(ctx context.Context, exec func(string), dsn, sql string) (release func() error) {
	exec(`ALTER SYSTEM SET synchronous_standby_names = 'ghost'`)
	exec(`SELECT pg_reload_conf()`)
	held := make(chan error, 1)
	go func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			held <- err
			return
		}
		defer conn.Close(context.WithoutCancel(ctx))
		_, err = conn.Exec(ctx, "SET synchronous_commit = on; "+sql)
		held <- err
	}()
	return func() error {
		exec(`ALTER SYSTEM RESET synchronous_standby_names`)
		exec(`SELECT pg_reload_conf()`)
		return <-held
	}
}

// TestOnlineCopyKeysMove: an online copy (a chunked initial copy) while a
// session moves keys across its progress, both ways, finishes without
// starting over and ends equal: a moved row's old key goes where the copy
// has it, its new row comes where the copy is past it. Before, every such
// update started the table's copy again (helper-68: a copy that never
// finished under an application changing keys twice a second). A row
// whose large value went unsent still starts it again, and ends equal.
// Every target.
func TestOnlineCopyKeysMove(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE km (id bigint PRIMARY KEY, v text, n int);
				INSERT INTO km SELECT g, 'v' || g, 0 FROM generate_series(1, 3000) g;
				CREATE TABLE kb (id bigint PRIMARY KEY, big text);
				INSERT INTO kb SELECT g, CASE WHEN g = 50 THEN (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 4000) i) END
					FROM generate_series(1, 400) g;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"run", "--source", dsn, "--target", target, "--slot", slot, "--initial-copy", "chunked",
				"--copy-chunk-rows", "40", "--copy-chunk-time", "-1s", "--stop-at-lsn", "now"}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			changes := writeLoop(ctx, dsn, 301, 5*time.Millisecond, func(ctx context.Context, conn *pgx.Conn, i int) error {
				if i == 300 {
					// The large value moves unsent (unchanged TOAST).
					_, err := conn.Exec(ctx, `UPDATE kb SET id = 1000 WHERE id = 50`)
					return err
				}
				b := &pgx.Batch{}
				// Forward, past everything; back, before everything.
				b.Queue(`UPDATE km SET id = id + 10000, n = n + 1 WHERE id = $1`, (i*7)%3000+1)
				if i >= 10 {
					b.Queue(`UPDATE km SET id = -id, v = v || '-' WHERE id = $1`, ((i-10)*7)%3000+1+10000)
				}
				b.Queue(`UPDATE km SET n = n + 1 WHERE id = $1`, (i*13)%3000+1)
				return conn.SendBatch(ctx, b).Close()
			})
			r := walmirror(t, nil, args...)
			if r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			if err := <-changes; err != nil {
				t.Fatal(err)
			}
			log := runNowLog(t, dsn, target, slot) + r.stderr
			if n := strings.Count(log, `reason="a key moved across the copy's progress"`); n > 0 {
				t.Errorf("the copy started over %d times for keys that moved:\n%s", n, log)
			}
			if !strings.Contains(r.stderr, `msg="table copied online" table=public.km`) {
				t.Errorf("km's copy did not finish in the first run:\n%s", r.stderr)
			}
			compareRows(t, dsn, rows, "SELECT id, v, n FROM km", "SELECT id, length(big), substr(big, 1, 40), substr(big, 127900, 100) FROM kb")

			// Again as a resync, killed at fault points and at random
			// while keys keep moving: exactly once all the same.
			if r := walmirror(t, nil, "resync", "--source", dsn, "--target", target, "--table", "public.km"); r.code != 0 {
				t.Fatalf("resync exited %d:\n%s", r.code, r.stderr)
			}
			ctx2, cancel2 := context.WithCancel(context.Background())
			defer cancel2()
			moving := writeLoop(ctx2, dsn, 0, 3*time.Millisecond, func(ctx context.Context, conn *pgx.Conn, i int) error {
				_, err := conn.Exec(ctx, `UPDATE km SET id = CASE WHEN id > 0 THEN id + 100000 ELSE -id END, n = n + 1
					WHERE id = (SELECT id FROM km ORDER BY (id * 7919) % 3001 OFFSET $1 % 2900 LIMIT 1)`, i)
				return err
			})
			bin := faultBinary(t)
			killArgs := []string{"run", "--source", dsn, "--target", target, "--slot", slot, "--copy-chunk-rows", "40", "--copy-chunk-time", "-1s"}
			var logs strings.Builder
			for _, p := range []string{"backfill.chunk-read:3", "backfill.watermark-written:2", "apply.before-commit:4"} {
				logs.WriteString(runToFault(t, bin, killArgs, p))
			}
			for i := range 3 {
				logs.WriteString(runKilledAfter(t, bin, killArgs, time.Duration(200+i*150)*time.Millisecond))
			}
			cancel2()
			if err := <-moving; err != nil {
				t.Fatal(err)
			}
			logs.WriteString(runNowLog(t, dsn, target, slot))
			if !strings.Contains(logs.String(), `msg="table copied online" table=public.km`) {
				t.Errorf("km's resync did not finish:\n%s", logs.String())
			}
			compareRows(t, dsn, rows, "SELECT id, v, n FROM km")
		})
	}
}

// TestOnlineCopyUnsentKeysMove: an online copy (a chunked initial copy)
// while a session keeps moving keys of rows with large values across its
// progress, the values unchanged (sent as "unchanged TOAST", which only the
// source has): the copy starts over, and from its second restart reads the
// table in one chunk, so it finishes while the moves go on, and ends
// equal. Before, it started over at every such move and never finished
// (helper-81: nine restarts in 40 s). Every target.
func TestOnlineCopyUnsentKeysMove(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE kt (id bigint PRIMARY KEY, big text);
				ALTER TABLE kt ALTER COLUMN big SET STORAGE EXTERNAL;
				INSERT INTO kt SELECT g, repeat(md5(g::text), 100) FROM generate_series(1, 1500) g;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// The highest key, ahead of the copy, moves behind it.
			moving := writeLoop(ctx, dsn, 0, 30*time.Millisecond, func(ctx context.Context, conn *pgx.Conn, i int) error {
				_, err := conn.Exec(ctx, `UPDATE kt SET id = -id WHERE id = (SELECT max(id) FROM kt)`)
				return err
			})
			r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--initial-copy", "chunked",
				"--copy-chunk-rows", "40", "--copy-chunk-time", "-1s", "--stop-at-lsn", "now")
			cancel()
			if err := <-moving; err != nil {
				t.Fatal(err)
			}
			if r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, `msg="table copied online" table=public.kt`) {
				t.Errorf("kt's copy did not finish in the first run:\n%s", r.stderr)
			}
			if n := strings.Count(r.stderr, `reason="a key moved across the copy's progress, its row's large values unsent"`); n > 2 {
				t.Errorf("the copy started over %d times, want at most 2", n)
			}
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, "SELECT id, length(big), substr(big, 1, 40), substr(big, 2980, 20) FROM kt")
		})
	}
}

// TestPartitionLinksLive: partitions attached and detached while walmirror
// streams, the tables written before and after. PostgreSQL 14's pgoutput
// keeps, for its whole session, what it worked out for a table at its first
// change (published as itself, through its root, or not at all): an attach
// or detach after that went unseen until the next connection, and the
// changes that followed reached the wrong table or none (helper-73: exit 0,
// rows missing and stale). Every version, every target; own publication
// (through the root) and an administrator's FOR TABLE both ways.
func TestPartitionLinksLive(t *testing.T) {
	needServer(t)
	pubs := []struct{ name, create string }{
		{"own", ""},
		{"admin_root", "CREATE PUBLICATION pl FOR TABLE p WITH (publish_via_partition_root = true)"},
		{"admin_leaves", "CREATE PUBLICATION pl FOR TABLE p WITH (publish_via_partition_root = false)"},
	}
	for _, tg := range schemaTargets {
		for _, pub := range pubs {
			t.Run(tg.name+"/"+pub.name, func(t *testing.T) {
				dsn, db := newDatabase(t, `CREATE TABLE p (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
					CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);
					CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (100) TO (200);
					INSERT INTO p VALUES (1, 'x'), (101, 'y');
					CREATE TABLE p3 (LIKE p INCLUDING ALL);`+pub.create)
				target, rows := tg.new(t)
				slot := "s_" + db
				dropSlotAtEnd(t, db, slot)
				args := []string{"--source", dsn, "--target", target, "--slot", slot, "--poll-interval", "300ms"}
				if pub.create != "" {
					args = append(args, "--publication", "pl")
				}
				stop := startRun(t, args...)
				// Written standalone while streaming (pgoutput decides about p3
				// now), then attached and written through the root.
				mustExec(t, db, "INSERT INTO p3 VALUES (200, 'a'), (201, 'b'); INSERT INTO p VALUES (2, 'z')")
				time.Sleep(time.Second)
				mustExec(t, db, "ALTER TABLE p ATTACH PARTITION p3 FOR VALUES FROM (200) TO (300)")
				mustExec(t, db, "INSERT INTO p VALUES (202, 'c'); UPDATE p SET v = 'changed' WHERE id = 200; DELETE FROM p WHERE id = 201")
				time.Sleep(time.Second)
				mustExec(t, db, "INSERT INTO p VALUES (203, 'late'); UPDATE p SET v = 'late' WHERE id = 202")
				// p1 written through the root, detached and written on its own.
				mustExec(t, db, "ALTER TABLE p DETACH PARTITION p1")
				mustExec(t, db, "INSERT INTO p1 VALUES (3, 'after'); UPDATE p1 SET v = 'after' WHERE id = 1; INSERT INTO p VALUES (102, 'c')")
				time.Sleep(time.Second)
				mustExec(t, db, "INSERT INTO p1 VALUES (4, 'late'); UPDATE p1 SET v = 'late' WHERE id = 2; DELETE FROM p1 WHERE id = 3; UPDATE p SET v = 'late' WHERE id = 203")
				time.Sleep(time.Second)
				stop()
				runNow(t, dsn, target, slot, args[6:]...)
				if pub.name == "admin_leaves" {
					// Each partition is a table of its own.
					compareRows(t, dsn, rows, "SELECT id, v FROM p2", "SELECT id, v FROM p3")
					return
				}
				compareRows(t, dsn, rows, "SELECT id, v FROM p")
				if pub.create == "" {
					// Its own table once detached (FOR ALL TABLES).
					compareRows(t, dsn, rows, "SELECT id, v FROM p1")
				}
			})
		}
	}
}

// TestPartitionLinksDuringCopy: a partition attached while the partitioned
// table is copied online, its rows changed right after. On PostgreSQL 14 the
// session streaming then drops the partition's changes until it reconnects
// (linkWatch), and a chunk read after the ATTACH stored the new links with
// the table: the reconnect found nothing changed, and the partition's rows
// the copy had passed kept their old values, exit 0 (helper-76). Then a
// partition attached with its rows changed in the same transaction, behind
// the copy's progress: the changes came before any chunk could see the
// partition, and found no rows in the copy (a divergence; this test runs
// with --stop-on-divergence).
func TestPartitionLinksDuringCopy(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE r (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
				CREATE TABLE r_p1 PARTITION OF r FOR VALUES FROM (1000) TO (100000000);
				INSERT INTO r SELECT g, 'p1' FROM generate_series(1000, 121000) g;
				CREATE PUBLICATION pl FOR TABLE r WITH (publish_via_partition_root = true);
				CREATE TABLE r_p2 (id int PRIMARY KEY, v text);
				CREATE TABLE r_p3 (id int PRIMARY KEY, v text); INSERT INTO r_p3 SELECT g, 'orig' FROM generate_series(-30, 0) g`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			// Polls far apart: the link change is found late. Small chunks:
			// the copy, begun again at r_p2's ATTACH, still runs when r_p3
			// is attached 1.5 s later (SQLite's 300 chunks of 400 rows took
			// less).
			args := []string{"--source", dsn, "--target", target, "--slot", slot, "--publication", "pl", "--poll-interval", "5s"}
			stop, logPath := startRunUntil(t, "msg=streaming", append(args, "--initial-copy", "chunked", "--copy-chunk-rows", "200", "--copy-chunk-time", "-1s")...)
			time.Sleep(300 * time.Millisecond)
			mustExec(t, db, "INSERT INTO r_p2 SELECT g, 'orig' FROM generate_series(1, 100) g")
			time.Sleep(300 * time.Millisecond)
			mustExec(t, db, "ALTER TABLE r ATTACH PARTITION r_p2 FOR VALUES FROM (1) TO (1000)")
			time.Sleep(time.Second)
			mustExec(t, db, "UPDATE r SET v = 'changed' WHERE id <= 50; DELETE FROM r WHERE id BETWEEN 90 AND 100")
			time.Sleep(500 * time.Millisecond) // the copy, begun again, is past r_p3's keys
			if out, _ := os.ReadFile(logPath); bytes.Contains(out, []byte("table copied online")) {
				t.Fatalf("the copy ended before r_p3 was attached: this test no longer attaches a partition behind a copy's progress")
			}
			mustExec(t, db, `BEGIN; ALTER TABLE r ATTACH PARTITION r_p3 FOR VALUES FROM (MINVALUE) TO (1);
				UPDATE r SET v = 'p3' WHERE id <= -10; DELETE FROM r WHERE id = -5; COMMIT`)
			waitForLog(t, logPath, "table copied online")
			time.Sleep(time.Second)
			stop()
			runNow(t, dsn, target, slot, args[6:]...)
			compareRows(t, dsn, rows, "SELECT id, v FROM r")
		})
	}
}

// TestAttachNotYetVisible: a partition attached, its rows changed in the
// same transaction, whose commit the stream delivers before other sessions
// see it (it waits for a synchronous standby that never comes; under load
// the same window is short: TestPartitionLinksDuringCopy met it in CI).
// At the Relation message the catalog showed the partition not yet
// attached: an online copy under way, past its keys, went on, and the
// changes found no rows in the copy (a divergence, a stop here). The
// catalog is read only once it shows the transaction. Then the same while
// no copy is under way: that part stopped every time without the wait
// (DuckDB and PostgreSQL targets; SQLite upserts). The first part passed
// without it: the copy's next chunk waits for the ATTACH's locks, and the
// stream behind it. A dedicated server. Every target.
func TestAttachNotYetVisible(t *testing.T) {
	needServer(t)
	srv := holdServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			ctx := t.Context()
			db, exec := serverDatabase(t, srv, "attach_"+tg.name)
			exec(`CREATE TABLE r (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
				CREATE TABLE r_p1 PARTITION OF r FOR VALUES FROM (1000) TO (100000000);
				INSERT INTO r SELECT g, 'p1' FROM generate_series(1000, 121000) g;
				CREATE PUBLICATION pl FOR TABLE r WITH (publish_via_partition_root = true);
				CREATE TABLE r_p2 (id int PRIMARY KEY, v text); INSERT INTO r_p2 SELECT g, 'orig' FROM generate_series(1, 100) g;
				CREATE TABLE r_p3 (id int PRIMARY KEY, v text); INSERT INTO r_p3 SELECT g, 'orig' FROM generate_series(-30, 0) g`)
			dsn := srv.DSN(db)
			target, rows := tg.new(t)
			slot := "s_attach_" + tg.name
			args := []string{"--source", dsn, "--target", target, "--slot", slot, "--publication", "pl"}
			stop, logPath := startRunUntil(t, "msg=streaming", append(args, "--initial-copy", "chunked", "--copy-chunk-rows", "200", "--copy-chunk-time", "-1s", "--log-level", "debug")...)
			defer func() {
				if t.Failed() {
					t.Logf("the run:\n%s", stop())
				}
			}()
			// Behind the copy's progress: some chunks are in.
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if out, _ := os.ReadFile(logPath); bytes.Count(out, []byte(`msg="copied chunk"`)) >= 5 {
					break
				}
			}
			release := holdCommit(ctx, exec, dsn, `BEGIN; ALTER TABLE r ATTACH PARTITION r_p3 FOR VALUES FROM (MINVALUE) TO (1);
				UPDATE r SET v = 'p3' WHERE id <= -10; DELETE FROM r WHERE id = -5; COMMIT`)
			time.Sleep(2 * time.Second)
			if out, _ := os.ReadFile(logPath); bytes.Contains(out, []byte("table copied online")) {
				t.Fatalf("the copy ended before r_p3 was attached: this test no longer attaches a partition behind a copy's progress")
			}
			if err := release(); err != nil {
				t.Fatal(err)
			}
			waitForLog(t, logPath, "table copied online")
			// No copy under way.
			release = holdCommit(ctx, exec, dsn, `BEGIN; ALTER TABLE r ATTACH PARTITION r_p2 FOR VALUES FROM (1) TO (1000);
				UPDATE r SET v = 'p2' WHERE id <= 20; DELETE FROM r WHERE id BETWEEN 90 AND 100; COMMIT`)
			time.Sleep(2 * time.Second)
			if err := release(); err != nil {
				t.Fatal(err)
			}
			exec(`UPDATE r SET v = 'after' WHERE id IN (-1, 1, 1000)`)
			waitConfirmed(t, dsn, slot)
			time.Sleep(time.Second) // a copy of r_p2's rows, if one was begun
			logs := stop()
			if strings.Contains(logs, "level=ERROR") {
				t.Errorf("the run failed")
			}
			runNow(t, dsn, target, slot, args[6:]...)
			compareRows(t, dsn, rows, "SELECT id, v FROM r")
		})
	}
}

// TestSyncStandbySelf: walmirror named in synchronous_standby_names. A
// source commit then waits for walmirror to confirm it and stays invisible
// until then: waiting to see it before reading the catalog (as
// TestAttachNotYetVisible's transactions are waited for) would wait for
// ever. walmirror finds its session is the standby, says so, and goes on.
func TestSyncStandbySelf(t *testing.T) {
	needServer(t)
	srv := testenv.StartT(t, testenv.Options{})
	tg := schemaTargets[0]
	db, exec := serverDatabase(t, srv, "syncself")
	exec(`CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 10) g`)
	dsn := srv.DSN(db)
	target, rows := tg.new(t)
	slot := "s_syncself"
	stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--slot", slot)
	exec(`ALTER SYSTEM SET synchronous_standby_names = 'walmirror'`)
	exec(`SELECT pg_reload_conf()`)
	defer func() {
		exec(`ALTER SYSTEM RESET synchronous_standby_names`)
		exec(`SELECT pg_reload_conf()`)
	}()
	// A Relation message in a transaction that commits only once walmirror
	// confirms it.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `ALTER TABLE t ADD COLUMN n int; UPDATE t SET n = id, v = 'w' WHERE id <= 5`); err != nil {
		t.Fatalf("the commit waiting for walmirror did not end: %v\n%s", err, stop())
	}
	waitForLog(t, logPath, "is a synchronous standby of the source")
	exec(`ALTER SYSTEM RESET synchronous_standby_names`)
	exec(`SELECT pg_reload_conf()`)
	// The catalog, read before the commit showed, did not have the new
	// column: the table is copied again (exact, if more than needed).
	waitForLog(t, logPath, "table copied online")
	waitConfirmed(t, dsn, slot)
	logs := stop()
	compareRows(t, dsn, rows, "SELECT id, v, n FROM t")
	if t.Failed() {
		t.Logf("the run:\n%s", logs)
	}
}

// TestCopyWaitsForBacklog: an online copy due while the stream is far
// behind (a restart into a backlog) waits for the stream to catch up, and
// the copy's position moves meanwhile: its first chunk's watermark, at the
// WAL's end, held every target commit back until the stream reached it, so
// a walmirror restarted every few seconds never got further (helper-72).
func TestCopyWaitsForBacklog(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE s (id int PRIMARY KEY, v text); INSERT INTO s SELECT g, 'v' FROM generate_series(1, 1000) g;
				CREATE TABLE b (id int PRIMARY KEY, n int); INSERT INTO b SELECT g, 0 FROM generate_series(1, 100000) g`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			runNow(t, dsn, target, slot)
			// A volatile default: s is copied again online. Then a backlog.
			mustExec(t, db, `ALTER TABLE s ADD COLUMN ts timestamptz DEFAULT clock_timestamp(); UPDATE s SET v = 'w' WHERE id = 1`)
			for i := range 4 {
				mustExec(t, db, fmt.Sprintf(`UPDATE b SET n = %d`, i+1))
			}
			log := runNowLog(t, dsn, target, slot, "--log-level", "debug", "--commit-rows", "20000")
			wait := strings.Index(log, "online copies wait for the stream to catch up")
			copied := strings.Index(log, `msg="table copied online"`)
			if wait < 0 || copied < 0 || !strings.Contains(log[wait:copied], `msg=committed`) {
				t.Errorf("no target commit while the copy waited for the backlog (wait at %d, copied at %d):\n%s", wait, copied, log)
			}
			compareRows(t, dsn, rows, "SELECT id, v FROM s", "SELECT count(*) FROM s WHERE ts IS NOT NULL", "SELECT id, n FROM b")
		})
	}
}

// TestJoinWithOpenTransaction: a transaction that writes to a table, stays
// open while the table joins the publication and commits after: its
// changes from before the join are in no stream (decoded while the table
// was unpublished), so the online copy must see them. Its first chunk
// waits for the transactions open when it began; before, it read the
// table at once and the copy lacked them, exit 0 (helper-93). Every target.
func TestJoinWithOpenTransaction(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE h (id int PRIMARY KEY, v text);
				INSERT INTO h SELECT g, 'h' || g FROM generate_series(1, 100) g;
				CREATE TABLE h2 (id int PRIMARY KEY, v text);
				INSERT INTO h2 SELECT g, 'h' || g FROM generate_series(1, 100) g;
				CREATE TABLE other (id int PRIMARY KEY);
				CREATE PUBLICATION walmirror FOR TABLE other;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"--source", dsn, "--target", target, "--slot", slot, "--poll-interval", "300ms"}
			stop, logPath := startRunUntil(t, "msg=streaming", args...)
			ctx := t.Context()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			if _, err := conn.Exec(ctx, `BEGIN; INSERT INTO h VALUES (1001, 'open'); UPDATE h SET v = 'open' WHERE id = 5; DELETE FROM h WHERE id = 6`); err != nil {
				t.Fatal(err)
			}
			mustExec(t, db, `ALTER PUBLICATION walmirror ADD TABLE h`)
			waitForLog(t, logPath, `msg="copying table online" table=public.h`)
			time.Sleep(1500 * time.Millisecond) // the copy would be done by now
			if _, err := conn.Exec(ctx, `UPDATE h SET v = 'open2' WHERE id = 7; COMMIT`); err != nil {
				t.Fatal(err)
			}
			waitForLog(t, logPath, `msg="table copied online" table=public.h`)
			// The open transaction began after the one that publishes the
			// table: its xid is past every snapshot's xmax until that one
			// ends, so no snapshot lists it as running (helper-147: the copy
			// did not wait for it, exit 0).
			alter, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer alter.Close(context.Background())
			if _, err := alter.Exec(ctx, `BEGIN; SELECT pg_current_xact_id()`); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, `BEGIN; INSERT INTO h2 VALUES (1001, 'open'); UPDATE h2 SET v = 'open' WHERE id = 5; DELETE FROM h2 WHERE id = 6`); err != nil {
				t.Fatal(err)
			}
			if _, err := alter.Exec(ctx, `ALTER PUBLICATION walmirror ADD TABLE h2; COMMIT`); err != nil {
				t.Fatal(err)
			}
			waitForLog(t, logPath, `msg="copying table online" table=public.h2`)
			time.Sleep(1500 * time.Millisecond) // the copy would be done by now
			if _, err := conn.Exec(ctx, `UPDATE h2 SET v = 'open2' WHERE id = 7; COMMIT`); err != nil {
				t.Fatal(err)
			}
			waitForLog(t, logPath, `msg="table copied online" table=public.h2`)
			mustExec(t, db, `INSERT INTO other VALUES (1)`)
			stop()
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, "SELECT id, v FROM h", "SELECT id, v FROM h2")
		})
	}
}

// TestAttachKilledBeforeCopyByKey: a partition with rows is attached to a
// partitioned table the run already knows (its Relation message changes no
// shape), and the run is killed before the copy by key of the partition's
// rows commits. The next run resumes that copy and stops before a listing;
// the partition is then detached while walmirror is stopped. The detached
// rows must leave the copy: before, the target still stored the table's
// signature from before the attach, which the detach restored exactly, and
// they stayed, exit 0 (helper-123). Every target.
func TestAttachKilledBeforeCopyByKey(t *testing.T) {
	needServer(t)
	bin := faultBinary(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE hp (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
				CREATE TABLE hp_1 PARTITION OF hp FOR VALUES IN (1);
				INSERT INTO hp SELECT g, 1, 'one' FROM generate_series(1, 500) g;
				CREATE PUBLICATION pd FOR ALL TABLES WITH (publish_via_partition_root = true)`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"--source", dsn, "--target", target, "--slot", slot, "--publication", "pd"}
			logPath := filepath.Join(t.TempDir(), "run.log")
			logs, err := os.Create(logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer logs.Close()
			run := exec.Command(bin, append([]string{"run", "--log-level", "debug"}, args...)...)
			run.Env = append(os.Environ(), "WALMIRROR_FAULT=backfill.chunk-read:1")
			run.Stdout, run.Stderr = logs, logs
			if err := run.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = run.Process.Kill(); _ = run.Wait() })
			waitForLog(t, logPath, `msg="publication listed"`)
			// The run describes hp: the attach's Relation message then
			// changes nothing in its shape.
			mustExec(t, db, `INSERT INTO hp VALUES (1000, 1, 'known')`)
			waitConfirmed(t, dsn, slot)
			mustExec(t, db, `CREATE TABLE hp_2 (LIKE hp INCLUDING ALL); INSERT INTO hp_2 SELECT g, 2, 'two' FROM generate_series(1, 800) g;
				BEGIN; ALTER TABLE hp ATTACH PARTITION hp_2 FOR VALUES IN (2); UPDATE hp SET v = 'upd' WHERE k = 2 AND id < 100; COMMIT`)
			done := make(chan error, 1)
			go func() { done <- run.Wait() }()
			select {
			case <-done:
			case <-time.After(faultWait):
				t.Fatal("the copy by key never read its chunk")
			}
			if out, _ := os.ReadFile(logPath); !bytes.Contains(out, []byte("faultpoint: backfill.chunk-read")) {
				t.Fatalf("the run did not stop at the copy's chunk:\n%s", out)
			}
			// The next run resumes the copy and stops before a listing.
			end, err := mirrortest.SourceRows(t.Context(), dsn, `SELECT pg_current_wal_lsn()::text`)
			if err != nil {
				t.Fatal(err)
			}
			// (On 14 it may stop first: its reconnect for the attach would
			// pass the stop position.)
			r := walmirror(t, nil, append([]string{"run", "--stop-at-lsn", end[0]}, args...)...)
			if r.code != 0 || server.Major() >= 15 && !strings.Contains(r.stderr, "rows copied again online") {
				t.Fatalf("the resumed copy: exit %d:\n%s", r.code, r.stderr)
			}
			mustExec(t, db, `ALTER TABLE hp DETACH PARTITION hp_2`)
			runNow(t, dsn, target, slot, "--publication", "pd")
			compareRows(t, dsn, rows, "SELECT id, k, v FROM hp", "SELECT id, k, v FROM hp_2")
		})
	}
}

// TestDetachNotYetVisibleAtStart: a partition attached with rows, which a
// run copies by key at the stream's Relation message (a listing has
// seen the table, so its writes are tracked), the run stopped before its
// next listing; then the partition detached while walmirror is stopped,
// its commit not yet visible when the next run starts (it waits for a
// synchronous standby) and visible soon after, and its rows changed as a
// table of its own. The partition's rows must leave the root's copy
// (helper-121: they stayed, exit 0: the target still had the signature
// from before the attach, which the detach restored exactly). A dedicated
// server. Every target.
func TestDetachNotYetVisibleAtStart(t *testing.T) {
	needServer(t)
	srv := holdServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			ctx := t.Context()
			db, exec := serverDatabase(t, srv, "detach_"+tg.name)
			exec(`CREATE TABLE hp (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY LIST (k);
				CREATE TABLE hp_1 PARTITION OF hp FOR VALUES IN (1);
				INSERT INTO hp SELECT g, 1, 'one' FROM generate_series(1, 500) g;
				CREATE PUBLICATION pd FOR ALL TABLES WITH (publish_via_partition_root = true);
				CREATE TABLE other (id int PRIMARY KEY)`)
			dsn := srv.DSN(db)
			target, rows := tg.new(t)
			slot := "s_detach_" + tg.name
			args := []string{"--source", dsn, "--target", target, "--slot", slot, "--publication", "pd"}
			stop, logPath := startRunUntil(t, "msg=streaming", append(args, "--log-level", "debug")...)
			waitForLog(t, logPath, `msg="publication listed"`)
			exec(`CREATE TABLE hp_2 (LIKE hp INCLUDING ALL); INSERT INTO hp_2 SELECT g, 2, 'two' FROM generate_series(1, 800) g;
				BEGIN; ALTER TABLE hp ATTACH PARTITION hp_2 FOR VALUES IN (2); UPDATE hp SET v = 'upd' WHERE k = 2 AND id < 100; COMMIT`)
			for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
				out, _ := os.ReadFile(logPath)
				if bytes.Contains(out, []byte("rows copied again online")) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("hp_2's rows never copied:\n%s", out)
				}
			}
			exec(`INSERT INTO other VALUES (1)`)
			waitConfirmed(t, dsn, slot)
			if logs := stop(); strings.Contains(logs, "level=ERROR") {
				t.Fatalf("the run failed:\n%s", logs)
			}
			release := holdCommit(ctx, exec, dsn, `ALTER TABLE hp DETACH PARTITION hp_2`)
			time.Sleep(time.Second)
			stop, _ = startRunUntil(t, "msg=starting", args...)
			time.Sleep(3 * time.Second)
			if err := release(); err != nil {
				t.Fatal(err)
			}
			exec(`UPDATE hp_2 SET v = 'detached' WHERE id < 50; INSERT INTO hp VALUES (1000, 1, 'after'); INSERT INTO other VALUES (2)`)
			waitConfirmed(t, dsn, slot)
			time.Sleep(time.Second) // a copy begun by a listing
			logs := stop()
			defer func() {
				if t.Failed() {
					t.Logf("the run:\n%s", logs)
				}
			}()
			if strings.Contains(logs, "level=ERROR") {
				t.Errorf("the run failed")
			}
			logs += runNowLog(t, dsn, target, slot, args[6:]...)
			compareRows(t, dsn, rows, "SELECT id, k, v FROM hp", "SELECT id, k, v FROM hp_2")
		})
	}
}
