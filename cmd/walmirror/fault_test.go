package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walmirror/walmirror/internal/mirrortest"
	"github.com/walmirror/walmirror/testenv"
)

// TestNetworkFaults runs walmirror against the source through a TCP proxy
// while pgbench writes, and breaks the network under it: connections reset
// (the client sees an error at once) and a black hole (bytes stop, sockets
// stay open: only walmirror's own --source-timeout can notice). walmirror
// must reconnect with backoff each time, say so once per outage, and in the
// end hold exactly what the source holds.
func TestNetworkFaults(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, "")
	pgbench := testenv.Tool("pgbench")
	if out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", dsn).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	proxy, viaProxy := proxied(t, dsn)
	path := filepath.Join(t.TempDir(), "copy.db")
	args := []string{"run", "--source", viaProxy, "--target", "sqlite:" + path, "--slot", "s_" + db,
		"--source-timeout", "3s", "--max-backoff", "1s"}

	logs, err := os.Create(filepath.Join(t.TempDir(), "walmirror.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitForLog(t, logs.Name(), "streaming")

	type outage struct {
		name        string
		break_      func()
		up, down    time.Duration
		wantInError string
	}
	var outages []outage
	for range faultRounds() {
		outages = append(outages,
			outage{"reset", proxy.Cut, 2 * time.Second, 2 * time.Second, ""},
			outage{"black hole", proxy.Blackhole, 2 * time.Second, 6 * time.Second, "no message from the server"},
			outage{"reset again", proxy.Cut, 2 * time.Second, 1 * time.Second, ""})
	}
	seconds := 1
	for _, o := range outages {
		seconds += int((o.up + o.down) / time.Second)
	}
	load := exec.Command(pgbench, "-c", "2", "-T", strconv.Itoa(seconds), "-n", "-R", "300", dsn)
	var loadOut bytes.Buffer
	load.Stdout, load.Stderr = &loadOut, &loadOut
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	for _, o := range outages {
		time.Sleep(o.up)
		t.Logf("network: %s for %s", o.name, o.down)
		o.break_()
		time.Sleep(o.down)
		proxy.Restore()
	}
	if err := load.Wait(); err != nil {
		t.Fatalf("pgbench: %v\n%s", err, loadOut.String())
	}
	// Give the last reconnect time to happen, then stop it as an operator would.
	time.Sleep(2 * time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		out, _ := os.ReadFile(logs.Name())
		t.Fatalf("walmirror did not stop cleanly: %v\n%s", err, out)
	}
	out, _ := os.ReadFile(logs.Name())
	interrupted := bytes.Count(out, []byte("replication interrupted"))
	resumed := bytes.Count(out, []byte("replication resumed"))
	if interrupted != len(outages) || resumed != len(outages) {
		t.Errorf("want each of %d outages logged once (interrupted, resumed); got %d and %d:\n%s",
			len(outages), interrupted, resumed, out)
	}
	t.Logf("survived %d network outages", len(outages))
	for _, o := range outages {
		if o.wantInError != "" && !bytes.Contains(out, []byte(o.wantInError)) {
			t.Errorf("the %s was not reported as %q:\n%s", o.name, o.wantInError, out)
		}
	}
	if r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...); r.code != 0 {
		t.Fatalf("final run exited %d:\n%s", r.code, r.stderr)
	}
	comparePgbench(t, dsn, func(q string) ([]string, error) {
		return mirrortest.SQLiteRows(context.Background(), path, q)
	})
}

// TestSlotInvalidated: the server invalidates the slot because it would
// otherwise keep more WAL than max_slot_wal_keep_size allows, once while
// walmirror is down and once while it runs (frozen by SIGSTOP, so it cannot
// keep up). Without --resync walmirror stops with the cause; with it, it
// recreates the slot, copies again and ends up equal to the source.
func TestSlotInvalidated(t *testing.T) {
	needServer(t)
	srv := testenv.StartT(t, testenv.Options{Settings: map[string]string{"max_slot_wal_keep_size": "1MB"}})
	ctx := context.Background()
	db, err := srv.CreateDatabase(ctx, "invalidated")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Exec(ctx, db, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 100) i`); err != nil {
		t.Fatal(err)
	}
	dsn := srv.DSN(db)
	path := filepath.Join(t.TempDir(), "copy.db")
	args := []string{"run", "--source", dsn, "--target", "sqlite:" + path, "--slot", "s_inv"}
	// Writes, then moves the server two WAL segments on and checkpoints: a
	// slot that did not follow is now beyond the limit and gets invalidated.
	outrun := func(from int) {
		t.Helper()
		if err := srv.Exec(ctx, db, fmt.Sprintf(`INSERT INTO t SELECT i, 'w' || i FROM generate_series(%d, %d) i;
			UPDATE t SET v = v || '!' WHERE id %% 7 = 0; DELETE FROM t WHERE id %% 11 = 0;`, from, from+99)); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := srv.Exec(ctx, db, `SELECT pg_switch_wal(); INSERT INTO t VALUES (-1, 'x'); DELETE FROM t WHERE id = -1;`); err != nil {
				t.Fatal(err)
			}
		}
		if err := srv.Exec(ctx, db, `CHECKPOINT`); err != nil {
			t.Fatal(err)
		}
		st, err := mirrortest.SourceRows(ctx, dsn, `SELECT wal_status FROM pg_replication_slots WHERE slot_name = 's_inv'`)
		if err != nil || len(st) != 1 || st[0] != "lost" {
			t.Fatalf("the slot was not invalidated: wal_status %q, %v", st, err)
		}
	}
	equal := func() {
		t.Helper()
		compareRows(t, dsn, func(q string) ([]string, error) { return mirrortest.SQLiteRows(ctx, path, q) }, "SELECT id, v FROM t")
		if t.Failed() {
			t.FailNow()
		}
	}
	if r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...); r.code != 0 {
		t.Fatalf("first run: %s", r.stderr)
	}

	t.Log("while down")
	outrun(1000)
	before := walmirror(t, nil, "status", "--target", "sqlite:"+path).stdout
	r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...)
	if msg := lastLine(r.stderr); r.code == 0 || !strings.Contains(msg, "invalidated") ||
		!strings.Contains(msg, "max_slot_wal_keep_size") || !strings.Contains(msg, "--resync") {
		t.Fatalf("exit %d; want an error naming the invalidation, its cause and --resync:\n%s", r.code, r.stderr)
	}
	if after := walmirror(t, nil, "status", "--target", "sqlite:"+path).stdout; after != before {
		t.Errorf("the target changed without --resync:\n%s\nthen\n%s", before, after)
	}
	// PostgreSQL gives a lost slot no safe_wal_size: not "unlimited"
	// (helper-98: "no max_slot_wal_keep_size", safe_wal_bytes -1).
	if st := walmirror(t, nil, "status", "--target", "sqlite:"+path, "--source", dsn); st.code != 1 || !strings.Contains(st.stdout, "wal_status lost, retains") ||
		!strings.Contains(st.stdout, "(invalidated)") {
		t.Errorf("status of the invalidated slot exited %d:\n%s%s", st.code, st.stdout, st.stderr)
	}
	if r := walmirror(t, nil, append(args, "--stop-at-lsn", "now", "--resync")...); r.code != 0 {
		t.Fatalf("--resync: %s", r.stderr)
	}
	equal()

	t.Log("while running")
	logs, err := os.Create(filepath.Join(t.TempDir(), "walmirror.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd := exec.Command(binary, append(args, "--resync", "--max-backoff", "1s")...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitForLog(t, logs.Name(), "streaming")
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	outrun(2000)
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, logs.Name(), "initial snapshot complete")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		out, _ := os.ReadFile(logs.Name())
		t.Fatalf("walmirror did not stop cleanly: %v\n%s", err, out)
	}
	if out, _ := os.ReadFile(logs.Name()); !bytes.Contains(out, []byte("resynchronising")) {
		t.Errorf("no resync was logged:\n%s", out)
	}
	if r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...); r.code != 0 {
		t.Fatalf("final run: %s", r.stderr)
	}
	equal()
}

// faultRounds is how many times the fault tests repeat their schedule:
// WALMIRROR_FAULT_ROUNDS, 1 by default (make soak raises it).
func faultRounds() int {
	if n, err := strconv.Atoi(os.Getenv("WALMIRROR_FAULT_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 1
}

var faultBuild struct {
	once sync.Once
	path string
	err  error
}

// faultWait is how long a run may take to reach its fault point before it
// is stopped as hung: a copy of pgbench scale 1 into DuckDB took over 30 s
// on two cores at a load average of 16 (the matrix beside other work).
const faultWait = 2 * time.Minute

// faultBinary is walmirror built with -tags faultinject: WALMIRROR_FAULT
// kills it at a named point (internal/faultpoint).
func faultBinary(t *testing.T) string {
	t.Helper()
	faultBuild.once.Do(func() {
		faultBuild.path = binary + "-faultinject"
		out, err := exec.Command("go", "build", "-tags", "faultinject", "-o", faultBuild.path, ".").CombinedOutput()
		if err != nil {
			faultBuild.err = fmt.Errorf("build with -tags faultinject: %v\n%s", err, out)
		}
	})
	if faultBuild.err != nil {
		t.Fatal(faultBuild.err)
	}
	return faultBuild.path
}

// TestFaultPoints kills walmirror exactly where exactly-once is most fragile
// (random kills almost never land in these microsecond windows), while
// pgbench writes, and restarts it each time: inside the initial copy's
// commit, with a chunk of a transaction written but not committed, just
// before the target commit, just after it but before the source is told, and
// just after a new flush position was reported. Every kill pauses first, so
// an acknowledgement sent too early would reach the server. The copy must
// end equal to the source, for every target.
func TestFaultPoints(t *testing.T) {
	needServer(t)
	bin := faultBinary(t)
	points := []string{"snapshot.before-commit:1"} // the copy happens once
	for range faultRounds() {
		points = append(points,
			"apply.before-commit:3",
			"apply.after-commit:3",
			"apply.chunk-written:2",
			"source.flush-reported:3",
			"apply.after-commit:1",
			"apply.before-commit:1")
	}
	pgTarget := func(t *testing.T) (string, func(q string) ([]string, error)) {
		db, err := server.CreateDatabase(context.Background(), "fault_target")
		if err != nil {
			t.Fatal(err)
		}
		dsn := server.DSN(db)
		return dsn, func(q string) ([]string, error) { return mirrortest.SourceRows(context.Background(), dsn, q) }
	}
	for _, tc := range []struct {
		name   string
		target func(t *testing.T) (string, func(q string) ([]string, error))
		extra  []string
	}{
		{"sqlite", func(t *testing.T) (string, func(q string) ([]string, error)) {
			path := filepath.Join(t.TempDir(), "copy.db")
			return "sqlite:" + path, func(q string) ([]string, error) { return mirrortest.SQLiteRows(context.Background(), path, q) }
		}, nil},
		{"duckdb", func(t *testing.T) (string, func(q string) ([]string, error)) {
			path := filepath.Join(t.TempDir(), "copy.duckdb")
			return "duckdb:" + path, func(q string) ([]string, error) {
				return mirrortest.DuckDBRows(context.Background(), path, strings.Replace(q, "FROM ", "FROM public.", 1))
			}
		}, nil},
		{"postgres", pgTarget, nil},
		// The pipelined engine commits and confirms on a writer goroutine:
		// the same windows, moved to another thread.
		{"postgres-pipelined", pgTarget, []string{"--pipeline"}},
		// Every staged batch through the loader session: its tables hold
		// input only, the main session's result is read late.
		{"postgres-loader", pgTarget, []string{"--pg-loader-rows", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn, db := newDatabase(t, "")
			pgbench := testenv.Tool("pgbench")
			if out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", dsn).CombinedOutput(); err != nil {
				t.Fatalf("pgbench -i: %v\n%s", err, out)
			}
			target, copyRows := tc.target(t)
			args := append([]string{"run", "--source", dsn, "--target", target, "--slot", "s_" + db,
				"--commit-rows", "300", "--chunk-rows", "40"}, tc.extra...)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			load := exec.CommandContext(ctx, pgbench, "-c", "2", "-T", "600", "-n", "-R", "400", dsn)
			if err := load.Start(); err != nil {
				t.Fatal(err)
			}
			for _, p := range points {
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
			}
			cancel()
			_ = load.Wait()
			if r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...); r.code != 0 {
				t.Fatalf("final run exited %d:\n%s", r.code, r.stderr)
			}
			t.Logf("survived %d kills at fault points", len(points))
			comparePgbench(t, dsn, copyRows)
		})
	}
}

// TestTargetDiskFull: the target's disk fills up mid-stream (a 2 MB tmpfs;
// for a PostgreSQL target, a tablespace on it). walmirror must stop with a
// clear error without confirming the transaction it could not store; once
// there is room, a restart completes the copy.
func TestTargetDiskFull(t *testing.T) {
	needServer(t)
	for _, kind := range []string{"sqlite", "duckdb", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			dir := testenv.SmallDisk(t, "2M")
			ctx := context.Background()
			var target string
			var copyRows func(q string) ([]string, error)
			switch kind {
			case "sqlite":
				path := filepath.Join(dir, "copy.db")
				target = "sqlite:" + path
				copyRows = func(q string) ([]string, error) { return mirrortest.SQLiteRows(ctx, path, q) }
			case "duckdb":
				path := filepath.Join(dir, "copy.duckdb")
				target = "duckdb:" + path
				copyRows = func(q string) ([]string, error) {
					return mirrortest.DuckDBRows(ctx, path, strings.Replace(q, "FROM ", "FROM public.", 1))
				}
			case "postgres":
				// Only the target's tables go to the small disk: the server's
				// WAL and catalog stay where they are, as on a server whose
				// data volume fills up.
				if err := chownToServer(dir); err != nil {
					t.Skip(err)
				}
				ts := "full_" + strconv.Itoa(os.Getpid())
				db, err := server.CreateDatabase(ctx, "disk_full_target")
				if err != nil {
					t.Fatal(err)
				}
				if err := server.Exec(ctx, "postgres", fmt.Sprintf(`CREATE TABLESPACE %s LOCATION '%s'`, ts, dir)); err != nil {
					t.Fatal(err)
				}
				defer server.Exec(ctx, "postgres", "DROP TABLESPACE IF EXISTS "+ts)
				defer server.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
				// New tables (walmirror's) land there; the catalog stays put.
				if err := server.Exec(ctx, "postgres", fmt.Sprintf(`ALTER DATABASE %s SET default_tablespace = %s`, db, ts)); err != nil {
					t.Fatal(err)
				}
				target = server.DSN(db)
				copyRows = func(q string) ([]string, error) { return mirrortest.SourceRows(ctx, target, q) }
			}
			dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, pad text); INSERT INTO t VALUES (1, 'x');`)
			args := []string{"run", "--source", dsn, "--target", target, "--slot", "s_" + db, "--stop-at-lsn", "now"}
			if r := walmirror(t, nil, args...); r.code != 0 {
				t.Fatalf("first run: %s", r.stderr)
			}
			if err := server.Exec(ctx, db, `INSERT INTO t SELECT i, repeat(md5(i::text), 16) FROM generate_series(2, 20000) i`); err != nil {
				t.Fatal(err)
			}
			after, err := mirrortest.SourceRows(ctx, dsn, `SELECT pg_current_wal_insert_lsn()`)
			if err != nil {
				t.Fatal(err)
			}
			r := walmirror(t, nil, args...)
			if r.code == 0 || !strings.Contains(lastLine(r.stderr), "disk is full") {
				t.Fatalf("exit %d; want a disk-full error:\n%s", r.code, r.stderr)
			}
			t.Logf("disk full: %s", lastLine(r.stderr))
			confirmedBeyond, err := mirrortest.SourceRows(ctx, dsn, fmt.Sprintf(
				`SELECT confirmed_flush_lsn >= '%s'::pg_lsn FROM pg_replication_slots WHERE slot_name = 's_%s'`, after[0], db))
			if err != nil || confirmedBeyond[0] != "f" {
				t.Fatalf("the slot confirmed the transaction the target could not store (%v, %v)", confirmedBeyond, err)
			}
			if out, err := exec.Command("mount", "-o", "remount,size=64M", dir).CombinedOutput(); err != nil {
				t.Fatalf("remount: %v %s", err, out)
			}
			if r := walmirror(t, nil, args...); r.code != 0 {
				t.Fatalf("run after the disk was grown: %s", r.stderr)
			}
			compareRows(t, dsn, copyRows, "SELECT id, pad FROM t")
		})
	}
}

// chownToServer hands dir to the OS user the test server runs as (postgres
// when the tests run as root), so it can hold a tablespace.
func chownToServer(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("no postgres OS user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// TestSlotDroppedWhileRunning: an administrator terminates walmirror's
// walsender and drops its slot. walmirror's reconnect must find the slot
// gone and stop with the cause (exit 1), not create a new one and carry on
// over the gap.
func TestSlotDroppedWhileRunning(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);`)
	slot := "s_" + db
	path := filepath.Join(t.TempDir(), "copy.db")
	logs, err := os.Create(filepath.Join(t.TempDir(), "walmirror.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd := exec.Command(binary, "run", "--source", dsn, "--target", "sqlite:"+path, "--slot", slot, "--max-backoff", "1s")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitForLog(t, logs.Name(), "streaming")
	ctx := context.Background()
	if err := server.Exec(ctx, db, fmt.Sprintf(`SELECT pg_terminate_backend(active_pid, 5000) FROM pg_replication_slots WHERE slot_name = '%[1]s';
		SELECT pg_drop_replication_slot('%[1]s'); INSERT INTO t VALUES (2);`, slot)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		out, _ := os.ReadFile(logs.Name())
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !bytes.Contains(out, []byte(`replication slot "`+slot+`" is gone`)) {
			t.Fatalf("exit %v; want exit 1 naming the missing slot:\n%s", err, out)
		}
	case <-time.After(30 * time.Second):
		out, _ := os.ReadFile(logs.Name())
		t.Fatalf("walmirror kept running without its slot:\n%s", out)
	}
	if err := server.Exec(ctx, db, fmt.Sprintf(`DO $$ BEGIN IF EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '%s') THEN RAISE 'a slot was recreated'; END IF; END $$`, slot)); err != nil {
		t.Error(err)
	}
}

// proxied starts a TCP proxy to the test server, closed at the end of the
// test, and returns it with dsn leading through it.
func proxied(t *testing.T, dsn string) (*testenv.Proxy, string) {
	t.Helper()
	proxy, err := testenv.StartProxy(fmt.Sprintf("%s:%d", server.Host(), server.Port()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	return proxy, strings.Replace(dsn, fmt.Sprintf(":%d/", server.Port()), fmt.Sprintf(":%d/", proxy.Port()), 1)
}

// TestReconnectRelapseBackoff: a session that fails soon after each
// reconnect (a source that crashes decoding a transaction, helper-120:
// PostgreSQL 18.4 restarted 20 times in 20 s) keeps its backoff growing
// across outages instead of starting over at each resume, and says so.
func TestReconnectRelapseBackoff(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)`)
	proxy, viaProxy := proxied(t, dsn)
	path := filepath.Join(t.TempDir(), "copy.db")
	logs, err := os.Create(filepath.Join(t.TempDir(), "walmirror.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd := exec.Command(binary, "run", "--source", viaProxy, "--target", "sqlite:"+path, "--slot", "s_"+db, "--max-backoff", "2s")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	for i := range 3 {
		from := logLen(logs.Name())
		if i == 0 {
			from = 0
		}
		if !waitForLogAfter(logs.Name(), from, "msg=streaming", 30*time.Second) {
			out, _ := os.ReadFile(logs.Name())
			t.Fatalf("no session %d:\n%s", i+1, out)
		}
		proxy.Cut()
		time.Sleep(100 * time.Millisecond)
		proxy.Restore()
	}
	if !waitForLogAfter(logs.Name(), 0, "times=3", 30*time.Second) {
		out, _ := os.ReadFile(logs.Name())
		t.Fatalf("three sessions failed soon after they began, and the log does not count them:\n%s", out)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}
