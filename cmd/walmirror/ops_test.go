package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walmirror/walmirror/internal/mirrortest"
	"github.com/walmirror/walmirror/testenv"
)

// slotExists asks the source whether a replication slot exists.
func slotExists(t *testing.T, db, slot string) bool {
	t.Helper()
	err := server.Exec(context.Background(), db, fmt.Sprintf(
		`DO $$ BEGIN IF EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = '%s') THEN RAISE 'exists'; END IF; END $$`, slot))
	return err != nil && strings.Contains(err.Error(), "exists")
}

func publicationExists(t *testing.T, db, pub string) bool {
	t.Helper()
	err := server.Exec(context.Background(), db, fmt.Sprintf(
		`DO $$ BEGIN IF EXISTS (SELECT FROM pg_publication WHERE pubname = '%s') THEN RAISE 'exists'; END IF; END $$`, pub))
	return err != nil && strings.Contains(err.Error(), "exists")
}

// startRun starts walmirror run in the background and waits until it
// streams; the returned function stops it (SIGTERM) and returns its log.
func startRun(t *testing.T, args ...string) (stop func() string) {
	t.Helper()
	stop, _ = startRunUntil(t, "msg=streaming", args...)
	return stop
}

// startRunUntil starts walmirror run in the background and waits until it
// logs text; logPath is its log, stop sends SIGTERM and returns the log.
func startRunUntil(t *testing.T, text string, args ...string) (stop func() string, logPath string) {
	t.Helper()
	logPath = filepath.Join(t.TempDir(), "run.log")
	logs, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, append([]string{"run"}, args...)...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() string {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
			logs.Close()
		}
		out, _ := os.ReadFile(logPath)
		return string(out)
	}
	t.Cleanup(func() { stop() })
	waitForLog(t, logPath, text)
	return stop, logPath
}

func TestDrop(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);`)
	path := filepath.Join(t.TempDir(), "copy.db")
	slot := "s_" + db
	if r := walmirror(t, nil, "run", "--source", dsn, "--target", "sqlite:"+path, "--slot", slot, "--stop-at-lsn", "now"); r.code != 0 {
		t.Fatalf("run: %s", r.stderr)
	}
	if !slotExists(t, db, slot) || !publicationExists(t, db, "walmirror") {
		t.Fatal("run created no slot or publication")
	}

	// A slot in use is refused, naming the server process holding it.
	stop := startRun(t, "--source", dsn, "--target", "sqlite:"+path, "--slot", slot)
	r := walmirror(t, nil, "drop", "--source", dsn, "--slot", slot)
	if line := lastLine(r.stderr); r.code != 1 || !strings.Contains(line, "in use by another connection (server PID ") ||
		!strings.Contains(line, "application 'walmirror'") || !strings.Contains(line, "nothing dropped") {
		t.Fatalf("drop of an active slot: exit %d, %q", r.code, line)
	}
	if !slotExists(t, db, slot) || !publicationExists(t, db, "walmirror") {
		t.Fatal("drop of an active slot dropped something")
	}
	// A run that ends while drop looks: the walsender outlives its client
	// briefly, and drop (and check) wait for it to let the slot go
	// (helper-130: straight after a run, they said "in use").
	stopped := make(chan struct{})
	go func() { time.Sleep(time.Second); stop(); close(stopped) }()
	r = walmirror(t, nil, "check", "--source", dsn, "--target", "sqlite:"+path, "--slot", slot)
	<-stopped
	if strings.Contains(r.stdout, "in use by another connection") {
		t.Fatalf("check while the run ends: exit %d\n%s", r.code, r.stdout)
	}

	// The target names the slot.
	r = walmirror(t, nil, "drop", "--source", dsn, "--target", "sqlite:"+path)
	if r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("dropped replication slot %q", slot)) ||
		!strings.Contains(r.stdout, `dropped publication "walmirror"`) || !strings.Contains(r.stdout, "--resync") {
		t.Fatalf("drop: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if slotExists(t, db, slot) || publicationExists(t, db, "walmirror") {
		t.Fatal("drop left the slot or the publication")
	}
	// Nothing left: exit 0, saying so.
	r = walmirror(t, nil, "drop", "--source", dsn, "--slot", slot)
	if r.code != 0 || !strings.Contains(r.stdout, "nothing to drop") {
		t.Fatalf("second drop: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestDropKeepsAdministratorsPublication: a publication walmirror did not
// create is left alone, and drop says so.
func TestDropKeepsAdministratorsPublication(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION admin_pub FOR TABLE t;`)
	slot := "s_" + db
	path := filepath.Join(t.TempDir(), "copy.db")
	if r := walmirror(t, nil, "run", "--source", dsn, "--target", "sqlite:"+path, "--slot", slot, "--publication", "admin_pub", "--stop-at-lsn", "now"); r.code != 0 {
		t.Fatalf("run: %s", r.stderr)
	}
	r := walmirror(t, nil, "drop", "--source", dsn, "--slot", slot, "--publication", "admin_pub")
	if r.code != 0 || !strings.Contains(r.stdout, `publication "admin_pub" left in place: walmirror did not create it`) {
		t.Fatalf("drop: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if slotExists(t, db, slot) || !publicationExists(t, db, "admin_pub") {
		t.Fatal("want the slot dropped and the publication kept")
	}
}

// TestCheck: check reports each misconfiguration TestBadInput feeds run, as
// one FAIL line, exit 1, and creates nothing (no file, slot or publication).
func TestCheck(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY);
		CREATE TABLE keyless (v text);
		CREATE TABLE deferred (id int PRIMARY KEY DEFERRABLE);
		CREATE ROLE check_plain LOGIN PASSWORD 'plainpw';`)
	good := filepath.Join(t.TempDir(), "copy.db")
	replica := testenv.StartT(t, testenv.Options{WALLevel: "replica"})
	targetDB, err := server.CreateDatabase(ctx, "check_target")
	if err != nil {
		t.Fatal(err)
	}
	ownedDB, err := server.CreateDatabase(ctx, "check_owned")
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "ALTER DATABASE "+ownedDB+" OWNER TO check_plain")

	cases := []struct {
		name, source, target string
		args                 []string
		want                 []string // a FAIL line must contain each
	}{
		{"wrong password", server.DSNFor("postgres", "not-the-password", db), "sqlite:" + good, nil,
			[]string{"password authentication failed", "check the user name and password"}},
		{"malformed DSN", "postgres://u:secret@host:notaport/db", "sqlite:" + good, nil,
			[]string{"not a valid PostgreSQL connection string"}},
		{"unreachable host", "postgres://u:secret@127.0.0.1:1/db?connect_timeout=3", "sqlite:" + good, nil,
			[]string{"cannot reach the server", "--source"}},
		{"wal_level replica", replica.DSN("postgres"), "sqlite:" + good, nil,
			[]string{`wal_level is "replica"`, "ALTER SYSTEM SET wal_level = logical"}},
		{"role without REPLICATION", server.DSNFor("check_plain", "plainpw", db), "sqlite:" + good, []string{"--tables", "t"},
			[]string{`role "check_plain" may not start replication`, "ALTER ROLE"}},
		{"unwritable target", dsn, "sqlite:/nonexistent-dir/copy.db", []string{"--tables", "t"},
			[]string{"/nonexistent-dir/copy.db", "check that the directory exists and is writable"}},
		{"unknown target kind", dsn, "mysql:x", []string{"--tables", "t"}, []string{"want duckdb:PATH, sqlite:PATH or postgres://"}},
		{"keyless table", dsn, "sqlite:" + good, nil, []string{`"public"."keyless" has no primary key`, "REPLICA IDENTITY FULL"}},
		// PostgreSQL refuses UPDATE and DELETE on it once published
		// (helper-64: check said nothing).
		{"deferrable key", dsn, "sqlite:" + good, []string{"--tables", "deferred"},
			[]string{`"public"."deferred" has a DEFERRABLE primary key`, "NOT DEFERRABLE"}},
		{"missing table", dsn, "sqlite:" + good, []string{"--tables", "t,nope"}, []string{`"public"."nope", which does not exist`}},
		{"target role without CREATE", dsn, server.DSNFor("check_plain", "plainpw", targetDB), []string{"--tables", "t"},
			[]string{"may not create schemas there"}},
		// run sets session_replication_role = replica (helper-86: check said ok).
		// Its tables are the source's (helper-87: "drop them in the target").
		{"target is the source database", dsn, server.DSN(db), []string{"--tables", "t"},
			[]string{"the source's own database", "point --target at another database"}},
		{"target role without replica role", dsn, server.DSNFor("check_plain", "plainpw", ownedDB), []string{"--tables", "t"},
			[]string{"may not set session_replication_role = replica", "--pg-replica-role=false"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"check", "--source", c.source, "--target", c.target, "--slot", "check_slot"}, c.args...)
			r := walmirror(t, nil, args...)
			if r.code != 1 || !strings.Contains(r.stderr, "problem(s) to fix before walmirror run") {
				t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
			}
			t.Logf("check output:\n%s", r.stdout)
			found := false
			for _, line := range strings.Split(r.stdout, "\n") {
				if !strings.HasPrefix(line, "FAIL") {
					continue
				}
				all := true
				for _, w := range c.want {
					all = all && strings.Contains(line, w)
				}
				found = found || all
			}
			if !found {
				t.Errorf("no FAIL line has %q:\n%s", c.want, r.stdout)
			}
			for _, secret := range []string{"secret", "not-the-password", "plainpw", server.Password()} {
				if strings.Contains(r.stdout+r.stderr, secret) {
					t.Errorf("output shows a password (%q)", secret)
				}
			}
		})
	}
	if r := walmirror(t, nil, "check", "--source", dsn, "--target", server.DSNFor("check_plain", "plainpw", ownedDB), "--slot", "check_slot", "--tables", "t",
		"--pg-replica-role=false"); r.code != 0 {
		t.Errorf("target role without replica role, --pg-replica-role=false: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := walmirror(t, nil, "run", "--source", dsn, "--target", server.DSN(db), "--slot", "check_slot", "--tables", "t", "--adopt-tables", "--stop-at-lsn", "now"); r.code != 1 ||
		!strings.Contains(r.stderr, "the source's own database") || slotExists(t, db, "check_slot") {
		t.Errorf("run into the source's own database: exit %d\n%s", r.code, r.stderr)
	}
	// A PostgreSQL target the role may write to.
	if r := walmirror(t, nil, "check", "--source", dsn, "--target", server.DSN(targetDB), "--slot", "check_slot", "--tables", "t"); r.code != 0 ||
		!strings.Contains(r.stdout, "holds no walmirror state; run will start a copy there") {
		t.Errorf("PostgreSQL target: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A good configuration: exit 0, every line ok.
	r := walmirror(t, nil, "check", "--source", dsn, "--target", "sqlite:"+good, "--slot", "check_slot", "--tables", "t")
	if r.code != 0 || strings.Contains(r.stdout, "FAIL") {
		t.Fatalf("good configuration: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, w := range []string{"ok   source:", "ok   wal_level:", "ok   replication:", `run will create it FOR TABLE t`, "ok   tables:", "ok   slot:", "ok   wal senders:", "ok   target:"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("check output lacks %q:\n%s", w, r.stdout)
		}
	}
	t.Logf("check output:\n%s", r.stdout)
	if _, err := os.Stat(good); err == nil {
		t.Error("check created the target file")
	}
	if slotExists(t, db, "check_slot") || publicationExists(t, db, "walmirror") {
		t.Error("check created a slot or a publication")
	}
	// With an existing copy: the target's state is read (and checked
	// against the slot), read-only.
	if r := walmirror(t, nil, "run", "--source", dsn, "--target", "sqlite:"+good, "--slot", "check_slot", "--tables", "t", "--stop-at-lsn", "now"); r.code != 0 {
		t.Fatalf("run: %s", r.stderr)
	}
	r = walmirror(t, nil, "check", "--source", dsn, "--target", "sqlite:"+good, "--slot", "check_slot", "--tables", "t,keyless")
	if r.code != 0 || !strings.Contains(r.stdout, "holds a copy at") || !strings.Contains(r.stdout, `WARN tables:`) ||
		!strings.Contains(r.stdout, "the source holds what the copy applied (timeline 1)") {
		t.Errorf("check of a running copy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("check output:\n%s", r.stdout)
	// A publication that leaves operations out makes a copy that differs
	// from the source: check and run both say so.
	mustExec(t, db, "ALTER PUBLICATION walmirror SET (publish = 'insert')")
	r = walmirror(t, nil, "check", "--source", dsn, "--target", "sqlite:"+good, "--slot", "check_slot")
	if !strings.Contains(r.stdout, `does not publish update, delete, truncate`) {
		t.Errorf("check of an insert-only publication: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = walmirror(t, nil, "run", "--source", dsn, "--target", "sqlite:"+good, "--slot", "check_slot", "--stop-at-lsn", "now")
	if r.code != 0 || !strings.Contains(r.stderr, `not_published="update, delete, truncate"`) {
		t.Errorf("run with an insert-only publication: exit %d\n%s", r.code, r.stderr)
	}
	_ = server.Exec(ctx, db, `SELECT pg_drop_replication_slot('check_slot')`)
}

// TestStatusWithSource: status --source adds the lag, the last commit and
// the slot's health, in text and JSON.
func TestStatusWithSource(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);`)
	path := filepath.Join(t.TempDir(), "copy.db")
	slot := "s_" + db
	if r := walmirror(t, nil, "run", "--source", dsn, "--target", "sqlite:"+path, "--slot", slot, "--stop-at-lsn", "now"); r.code != 0 {
		t.Fatalf("run: %s", r.stderr)
	}
	status := func() statusReport {
		t.Helper()
		r := walmirror(t, nil, "status", "--target", "sqlite:"+path, "--source", dsn, "--json")
		var rep statusReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); r.code != 0 || err != nil || rep.Source == nil {
			t.Fatalf("status --json: exit %d, %v:\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		return rep
	}
	// Stopped and behind: bytes known, time not.
	if err := server.Exec(context.Background(), db, `INSERT INTO t SELECT generate_series(2, 1000)`); err != nil {
		t.Fatal(err)
	}
	// A source that does not answer: the target's part and the reason.
	r := walmirror(t, nil, "status", "--target", "sqlite:"+path, "--source", "postgres://127.0.0.1:1/none?sslmode=disable", "--json")
	var failed statusReport
	if err := json.Unmarshal([]byte(r.stdout), &failed); r.code != 1 || err != nil || failed.Error == "" || failed.LSN == "" || failed.Slot != slot {
		t.Errorf("status --json, source down: exit %d, %v, want 1, the stored position and an error:\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	rep := status()
	if rep.Source.LagBytes < 1000 || rep.Source.LagSeconds != -1 || !rep.Source.SlotState.Exists || rep.Source.SlotState.Active ||
		rep.LastTargetCommit == nil || !rep.SnapshotComplete || rep.Source.SlotState.RetainedWALBytes <= 0 || rep.Source.SlotState.WALStatus != "reserved" {
		t.Errorf("stopped and behind: %+v %+v", rep, rep.Source)
	}
	// Running: the slot is active, held by walmirror; caught up.
	stop := startRun(t, "--source", dsn, "--target", "sqlite:"+path, "--slot", slot)
	deadline := time.Now().Add(20 * time.Second)
	for rep = status(); rep.Source.LagSeconds < 0 || rep.Source.LagBytes > 1024 || !rep.Source.SlotState.Active; rep = status() {
		if time.Now().After(deadline) {
			t.Fatalf("running: %+v", rep.Source)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if rep.Source.SlotState.ActivePID == 0 || !strings.Contains(rep.Source.SlotState.Holder, "walmirror") {
		t.Errorf("running: slot state %+v", rep.Source.SlotState)
	}
	r = walmirror(t, nil, "status", "--target", "sqlite:"+path, "--source", dsn)
	for _, want := range []string{"lsn:", "committed:", "lag:", "slot state: active (server PID", "wal_status reserved"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r.stdout)
		}
	}
	t.Logf("status:\n%s", r.stdout)
	stop()
	// The slot gone: a monitor that reads the exit code learns it (it
	// was 0, helper-55), in text and JSON.
	if err := server.Exec(context.Background(), db, `SELECT pg_drop_replication_slot('`+slot+`')`); err != nil {
		t.Fatal(err)
	}
	r = walmirror(t, nil, "status", "--target", "sqlite:"+path, "--source", dsn)
	if r.code != 1 || !strings.Contains(r.stdout, "problem:  slot") || !strings.Contains(r.stderr, "problem") {
		t.Errorf("status, slot gone: exit %d, want 1 and the problem:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = walmirror(t, nil, "status", "--target", "sqlite:"+path, "--source", dsn, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &rep); r.code != 1 || err != nil || rep.Source == nil || !strings.Contains(rep.Source.Problem, "gone") || rep.Error != "" {
		t.Errorf("status --json, slot gone: exit %d, %v, want 1 and source.problem:\n%s%s", r.code, err, r.stdout, r.stderr)
	}
}

// TestSlotInUse: a second walmirror on a slot another one streams from
// gets a clear error naming the holder and exits: at once when its target
// has no state, after --slot-busy-wait when it follows the same slot.
func TestSlotInUse(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);`)
	path := filepath.Join(t.TempDir(), "copy.db")
	slot := "s_" + db
	stop := startRun(t, "--source", dsn, "--target", "sqlite:"+path, "--slot", slot)

	other := filepath.Join(t.TempDir(), "other.db")
	r := walmirror(t, nil, "run", "--source", dsn, "--target", "sqlite:"+other, "--slot", slot, "--stop-at-lsn", "now")
	if line := lastLine(r.stderr); r.code != 1 || !strings.Contains(line, "is in use by another connection (server PID ") ||
		!strings.Contains(line, "application 'walmirror'") || !strings.Contains(line, "another copy follows that slot") {
		t.Errorf("a fresh target on a busy slot: exit %d, %q", r.code, line)
	}
	// The first commits and confirms meanwhile: the second must not take
	// the slot's later position for someone else's (helper-80: "past the
	// copy's position ... --resync", exit 1 at once).
	writing := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 2; ; i++ {
			select {
			case <-writing:
				return
			default:
			}
			_ = server.Exec(context.Background(), db, fmt.Sprintf("INSERT INTO t VALUES (%d)", i))
			time.Sleep(2 * time.Millisecond)
		}
	}()
	began := time.Now()
	r = walmirror(t, nil, "run", "--source", dsn, "--target", "sqlite:"+path, "--slot", slot, "--slot-busy-wait", "2s")
	close(writing)
	<-done
	line := lastLine(r.stderr)
	if r.code != 1 || !strings.Contains(line, "gave up after 2s") || !strings.Contains(line, "in use by another connection (server PID ") {
		t.Errorf("the same slot twice: exit %d, %q", r.code, line)
	}
	if !strings.Contains(r.stderr, "waiting for it to be released") || time.Since(began) > 15*time.Second {
		t.Errorf("no warning, or waited %v:\n%s", time.Since(began), r.stderr)
	}
	stop()
	dropSlotAtEnd(t, db, slot)
}

// TestDuckDBHeldByRun: check and a second run against a DuckDB file a
// running walmirror writes (DuckDB lets no other process open it) name the
// process holding it and say what to do, instead of DuckDB's raw lock error
// (helper-98); status reads the run's state file, and verify goes through
// the running process.
func TestDuckDBHeldByRun(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);`)
	path := filepath.Join(t.TempDir(), "copy.duckdb")
	slot := "s_" + db
	stop := startRun(t, "--source", dsn, "--target", "duckdb:"+path, "--slot", slot)
	dropSlotAtEnd(t, db, slot)
	dropSlotAtEnd(t, db, slot+"_x") // none expected: the second run stops before making one
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"check", "--source", dsn, "--target", "duckdb:" + path, "--slot", slot + "_x"}, 1, "--metrics-addr"},
		{[]string{"run", "--source", dsn, "--target", "duckdb:" + path, "--slot", slot + "_x", "--stop-at-lsn", "now"}, 1, "stop that process first"},
	} {
		r := walmirror(t, nil, c.args...)
		out := r.stdout + r.stderr
		if r.code != c.code || !strings.Contains(out, "is open in another process (") || !strings.Contains(out, ", PID ") || !strings.Contains(out, c.want) {
			t.Errorf("%s on a DuckDB file walmirror run writes: exit %d (want %d), want the holder and %q:\n%s", c.args[0], r.code, c.code, c.want, out)
		}
	}
	// check without --slot checks the run's slot, named by its state file
	// (helper-139: it checked the default one, "missing; run will create it").
	if r := walmirror(t, nil, "check", "--source", dsn, "--target", "duckdb:"+path); r.code != 1 || !strings.Contains(r.stdout, `"`+slot+`"`) {
		t.Errorf("check of a DuckDB file walmirror run writes: exit %d, want its slot %q:\n%s%s", r.code, slot, r.stdout, r.stderr)
	}
	// verify finds the run through its control socket and verifies
	// through it (before, exit 2 asking for --sidecar).
	if r := walmirror(t, nil, "verify", "--source", dsn, "--target", "duckdb:"+path); r.code != 0 || !strings.Contains(r.stdout, "by the running walmirror") {
		t.Errorf("verify of a DuckDB file walmirror run writes: exit %d, want 0 through the run:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// status prints what the run says it stored (its state file beside
	// the DuckDB file; helper-130: the contract's status --target failed
	// while a run held the file), and the applied position moves on.
	stored := func() string {
		t.Helper()
		r := walmirror(t, nil, "status", "--target", "duckdb:"+path, "--json")
		var rep statusReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); r.code != 0 || err != nil || rep.LSN == "" || rep.RunningPID == 0 || rep.Slot != slot {
			t.Fatalf("status on a DuckDB file walmirror run writes: exit %d, %v:\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		return rep.LSN
	}
	before := stored()
	mustExec(t, db, `INSERT INTO t VALUES (2)`)
	deadline := time.Now().Add(30 * time.Second)
	for stored() == before {
		if time.Now().After(deadline) {
			t.Fatalf("status kept %s after a commit", before)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r := walmirror(t, nil, "status", "--target", "duckdb:"+path); r.code != 0 || !strings.Contains(r.stdout, "running:  walmirror (PID ") {
		t.Errorf("status: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// resync --target asks the run, the slot read from its state file
	// (helper-139: refused while the run held the file, its main use).
	if r := walmirror(t, nil, "resync", "--source", dsn, "--target", "duckdb:"+path, "--table", "public.t"); r.code != 0 || !strings.Contains(r.stdout, `slot "`+slot+`"`) {
		t.Errorf("resync --target of a DuckDB file walmirror run writes: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	stop()
	if _, err := os.Stat(runStatePath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the run left its state file: %v", err)
	}
	if r := walmirror(t, nil, "status", "--target", "duckdb:"+path); r.code != 0 || strings.Contains(r.stdout, "running:") {
		t.Errorf("status after the run: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestFailedStartLeavesNoFile: a run that fails before anything was
// committed removes the target file it created; an existing file stays.
func TestFailedStartLeavesNoFile(t *testing.T) {
	needServer(t)
	_, db := newDatabase(t, "")
	bad := server.DSNFor("postgres", "wrong-password", db)
	dir := t.TempDir()
	for _, target := range []string{"sqlite:" + filepath.Join(dir, "copy.db"), "duckdb:" + filepath.Join(dir, "copy.duckdb")} {
		r := walmirror(t, nil, "run", "--source", bad, "--target", target, "--slot", "never")
		if r.code != 1 || !strings.Contains(lastLine(r.stderr), "password authentication failed") {
			t.Errorf("%s: exit %d, %q", target, r.code, lastLine(r.stderr))
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("a failed start left %v", left)
	}
	existing := filepath.Join(dir, "kept.db")
	if err := os.WriteFile(existing, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	walmirror(t, nil, "run", "--source", bad, "--target", "sqlite:"+existing, "--slot", "never")
	if _, err := os.Stat(existing); err != nil {
		t.Errorf("an existing target file was removed: %v", err)
	}
}

// TestTablesDisagreeWarns: --tables that differs from an existing
// publication gives a warning saying what to do.
func TestTablesDisagreeWarns(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE u (id int PRIMARY KEY); CREATE PUBLICATION walmirror FOR TABLE t;`)
	path := filepath.Join(t.TempDir(), "copy.db")
	r := walmirror(t, nil, "run", "--source", dsn, "--target", "sqlite:"+path, "--slot", "s_"+db, "--tables", "t,u", "--stop-at-lsn", "now")
	if r.code != 0 || !strings.Contains(r.stderr, "level=WARN") || !strings.Contains(r.stderr, `does not publish \"public\".\"u\"`) ||
		!strings.Contains(r.stderr, "ALTER PUBLICATION") {
		t.Errorf("exit %d:\n%s", r.code, r.stderr)
	}
	dropSlotAtEnd(t, db, "s_"+db)
}

// TestPublicationOperationsChangedWhileRunning: an ALTER PUBLICATION ...
// SET (publish = ...) that leaves deletes out, made while walmirror runs,
// is logged by the next publication poll, as the start logs it. Before,
// nothing said so until a later insert of a deleted key stopped the run
// at a collision naming no cause.
func TestPublicationOperationsChangedWhileRunning(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);`)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	target := "sqlite:" + filepath.Join(t.TempDir(), "copy.db")
	stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--slot", slot, "--poll-interval", "200ms")
	mustExec(t, db, `ALTER PUBLICATION walmirror SET (publish = 'insert, update')`)
	waitForLog(t, logPath, "no longer publishes every operation")
	mustExec(t, db, `ALTER PUBLICATION walmirror SET (publish = 'insert, update, delete, truncate')`)
	waitForLog(t, logPath, "publishes every operation again")
	if out := stop(); strings.Count(out, "no longer publishes every operation") != 1 {
		t.Errorf("want the change logged once:\n%s", out)
	}
}

// TestTableJoinsIdlePublication: a table added to a publication on a source
// that then writes nothing more is copied within a few polls. The poll
// waits for the stream to pass the WAL position of its listing, and an
// idle server's last WAL (the background writer's snapshot of running
// transactions) may be flushed, and so streamed, only at its next write:
// seen by hand on PostgreSQL 16, 64 bytes unflushed for over 10 s, the
// table waiting and 90 keepalive requests a second meanwhile; the poll now
// has the server flush. This test's server did not leave its WAL unflushed
// that long, so it guards the case rather than reproducing that stall.
func TestTableJoinsIdlePublication(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (1);
		CREATE TABLE b (id int PRIMARY KEY, v text); INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 300) g;
		CREATE PUBLICATION walmirror FOR TABLE a;`)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	target := "sqlite:" + filepath.Join(t.TempDir(), "copy.db")
	stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--slot", slot, "--poll-interval", "200ms")
	time.Sleep(time.Second) // polls of the idle source
	// Then WAL the server does not flush at once, as the background
	// writer's snapshots are (a non-transactional message is not flushed).
	mustExec(t, db, `ALTER PUBLICATION walmirror ADD TABLE b; SELECT pg_logical_emit_message(false, 'test', 'not flushed')`)
	waitForLog(t, logPath, "table copied online")
	stop()
	mustVerify(t, dsn, target)
}

// TestDemoKeepsOtherCopies: the demo replaces only a copy it made. It read
// --target from WALMIRROR_TARGET and --config like every command, so with
// the environment of a deployed sidecar it replaced the real copy (exit 0;
// helper-55). It now takes --target from the command line only, and
// refuses a file that holds another copy.
func TestDemoKeepsOtherCopies(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);`)
	dir := t.TempDir()
	real := "sqlite:" + filepath.Join(dir, "real.sqlite")
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	runNow(t, dsn, real, slot)
	before, err := os.ReadFile(filepath.Join(dir, "real.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	if r := walmirror(t, nil, "demo", "--target", real, "--duration", "1s"); r.code == 0 || !strings.Contains(r.stderr, "is not a copy the demo made") {
		t.Errorf("demo onto a real copy: exit %d, want a refusal:\n%s", r.code, lastLine(r.stderr))
	}
	demo := "sqlite:" + filepath.Join(dir, "demo.sqlite")
	for i := 0; i < 2; i++ { // the second replaces the first
		// The environment of a sidecar: the demo must not take its target.
		if r := walmirror(t, []string{"WALMIRROR_TARGET=" + real}, "demo", "--target", demo, "--duration", "1s"); r.code != 0 {
			t.Fatalf("demo run %d exited %d:\n%s%s", i+1, r.code, r.stdout, r.stderr)
		}
	}
	after, err := os.ReadFile(filepath.Join(dir, "real.sqlite"))
	if err != nil || !bytes.Equal(before, after) {
		t.Errorf("the real copy changed (%v)", err)
	}
	if !givenOnCommandLine([]string{"--duration", "1s", "-target=x"}, "target") || givenOnCommandLine([]string{"--", "--target"}, "target") {
		t.Error("givenOnCommandLine")
	}
}

// TestDropOtherClusterTarget: drop --target with a copy taken from another
// cluster, whose slot name this source also has for a copy of its own,
// dropped that other copy's slot and publication (helper-55); check, run
// and verify refuse such a target. It now refuses too, and drops nothing.
// run --resync copies the other cluster afresh once no slot of that name
// is in the way.
func TestDropOtherClusterTarget(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	other := testenv.StartT(t, testenv.Options{})
	dbA, err := other.CreateDatabase(ctx, "cluster_a")
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Exec(ctx, dbA, `CREATE TABLE t (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	dsnB, dbB := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	dir := t.TempDir()
	a, b := "sqlite:"+filepath.Join(dir, "a.sqlite"), "sqlite:"+filepath.Join(dir, "b.sqlite")
	const slot = "s_dropother"
	runNow(t, other.DSN(dbA), a, slot)
	dropSlotAtEnd(t, dbB, slot)
	runNow(t, dsnB, b, slot)
	r := walmirror(t, nil, "drop", "--source", dsnB, "--target", a)
	if r.code == 0 || !strings.Contains(r.stderr, "another PostgreSQL cluster") {
		t.Errorf("drop with another cluster's copy: exit %d, want a refusal:\n%s%s", r.code, r.stdout, r.stderr)
	}
	runNow(t, dsnB, b, slot) // B's copy still follows its slot
	// status of A's copy against B: B's slot of that name and its positions
	// are not the copy's (before, it showed them, and "caught up").
	r = walmirror(t, nil, "status", "--source", dsnB, "--target", a)
	if r.code != 1 || !strings.Contains(r.stdout, "check that --source names the copy's server") ||
		strings.Contains(r.stdout, "slot state:") || strings.Contains(r.stdout, "caught up") {
		t.Errorf("status of another cluster's copy: exit %d, want 1 with the problem and no slot or lag figures:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// ... and of B's copy against another database of B's cluster.
	dsnC, _ := newDatabase(t, "")
	r = walmirror(t, nil, "status", "--source", dsnC, "--target", b)
	if r.code != 1 || !strings.Contains(r.stdout, `belongs to database "`+dbB+`"`) || strings.Contains(r.stdout, "slot state:") {
		t.Errorf("status against another database: exit %d, want 1 naming the slot's database:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// So does run, with what to do if the database was replaced
	// (helper-113: "choose another --slot", which the target refused).
	r = walmirror(t, nil, "run", "--source", dsnC, "--target", b, "--slot", slot, "--stop-at-lsn", "now")
	if r.code == 0 || !strings.Contains(r.stderr, `decodes database "`+dbB+`"`) || !strings.Contains(r.stderr, "--resync") {
		t.Errorf("run against another database: exit %d, want a refusal naming the slot's database and --resync:\n%s", r.code, r.stderr)
	}
	if r := walmirror(t, nil, "drop", "--source", other.DSN(dbA), "--target", a); r.code != 0 || !strings.Contains(r.stdout, "dropped replication slot") {
		t.Errorf("drop of its own source: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// B as A's source replaced (pg_upgrade, a dump restored into a new
	// cluster): run names --resync (helper-113: "use a fresh target", and
	// --resync was refused too). B holds a slot of that name, B's copy's
	// (pg_upgrade's carried-over one looks the same): --resync leaves it.
	r = walmirror(t, nil, "run", "--source", dsnB, "--target", a, "--slot", slot, "--stop-at-lsn", "now")
	if r.code == 0 || !strings.Contains(r.stderr, "another PostgreSQL cluster") || !strings.Contains(r.stderr, "run with --resync") {
		t.Errorf("run of another cluster's copy: exit %d, want a refusal naming --resync:\n%s", r.code, r.stderr)
	}
	r = walmirror(t, nil, "run", "--source", dsnB, "--target", a, "--slot", slot, "--resync", "--stop-at-lsn", "now")
	if r.code == 0 || !strings.Contains(r.stderr, "has a replication slot") {
		t.Errorf("--resync of another cluster's copy onto a cluster with that slot: exit %d, want a refusal:\n%s", r.code, r.stderr)
	}
	mustExec(t, dbB, `INSERT INTO t SELECT generate_series(1, 50)`)
	runNow(t, dsnB, b, slot) // B's copy still follows its slot
	// Once that slot is gone, --resync makes A a copy of B.
	if r := walmirror(t, nil, "drop", "--source", dsnB, "--slot", slot); r.code != 0 {
		t.Fatalf("drop of the slot by name: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Refused before B is changed: a database of B with no publication
	// got one, FOR ALL TABLES, and its keyless table refused UPDATE from
	// then on (helper-122).
	dsnD, dbD := newDatabase(t, `CREATE TABLE keyless (a int); INSERT INTO keyless VALUES (1)`)
	r = walmirror(t, nil, "run", "--source", dsnD, "--target", a, "--slot", slot, "--stop-at-lsn", "now")
	if r.code == 0 || !strings.Contains(r.stderr, "another PostgreSQL cluster") {
		t.Errorf("run of another cluster's copy, against a database with no publication: exit %d, want a refusal:\n%s", r.code, r.stderr)
	}
	if err := server.Exec(ctx, dbD, `UPDATE keyless SET a = 2`); err != nil {
		t.Errorf("the refused run changed the source: %v", err)
	}
	runNow(t, dsnB, a, slot, "--resync")
	compareRows(t, dsnB, func(q string) ([]string, error) {
		return mirrortest.SQLiteRows(ctx, filepath.Join(dir, "a.sqlite"), q)
	}, "SELECT id FROM t")
}

// TestCheckSlotExistsNewTarget: a slot that exists and a target file that
// does not yet (a Kubernetes emptyDir after a restart): run refuses it,
// and check said ok (helper-55). It fails now, naming the remedy.
func TestCheckSlotExistsNewTarget(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	mustExec(t, db, `SELECT pg_create_logical_replication_slot('`+slot+`', 'pgoutput')`)
	target := "sqlite:" + filepath.Join(t.TempDir(), "new.sqlite")
	r := walmirror(t, nil, "check", "--source", dsn, "--target", target, "--slot", slot)
	if r.code != 1 || !strings.Contains(r.stdout, "already exists but the target has no walmirror state") {
		t.Errorf("check: exit %d, want 1 naming the slot:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestRunWarnsKeyless: the publication run creates makes PostgreSQL
// refuse UPDATE and DELETE on a table without a key; run said nothing
// while check calls it a problem (helper-55). It warns, naming the table,
// and a table whose primary key is DEFERRABLE (helper-98: the warning said
// it had none).
func TestRunWarnsKeyless(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE keyed (id int PRIMARY KEY); CREATE TABLE "Key less" (v int); CREATE TABLE full_ident (v int);
		ALTER TABLE full_ident REPLICA IDENTITY FULL; CREATE TABLE deferred (id int PRIMARY KEY DEFERRABLE)`)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	r := walmirror(t, nil, "run", "--source", dsn, "--target", "sqlite:"+filepath.Join(t.TempDir(), "c.sqlite"), "--slot", slot, "--stop-at-lsn", "now")
	if r.code != 0 {
		t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
	}
	warning := ""
	for _, line := range strings.Split(r.stderr, "\n") {
		if strings.Contains(line, "have no key PostgreSQL takes as replica identity (no primary key, or a DEFERRABLE one)") {
			warning = line
		}
	}
	if !strings.Contains(warning, `public.\"Key less\", public.deferred"`) || strings.Contains(warning, "full_ident") || strings.Contains(warning, "keyed") {
		t.Errorf("want a warning naming only public.\"Key less\" and public.deferred:\n%s", r.stderr)
	}
}

// TestRunMissingTable: --tables naming a table the source lacks says so.
func TestRunMissingTable(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	r := walmirror(t, nil, "run", "--source", dsn, "--target", "sqlite:"+filepath.Join(t.TempDir(), "c.sqlite"), "--slot", "s_"+db, "--tables", "t,nosuch", "--stop-at-lsn", "now")
	if r.code == 0 || !strings.Contains(lastLine(r.stderr), "--tables names a table the source does not have") {
		t.Errorf("exit %d:\n%s", r.code, lastLine(r.stderr))
	}
}

// TestDropNamesTheCopysPublication: drop --target of a copy made from an
// administrator's publication speaks of that one (left in place), not of
// the default name (before: no publication "walmirror": nothing to drop;
// helper-101).
func TestDropNamesTheCopysPublication(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION pub FOR TABLE t`)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	target := "sqlite:" + filepath.Join(t.TempDir(), "copy.db")
	runNow(t, dsn, target, slot, "--publication", "pub")
	r := walmirror(t, nil, "drop", "--source", dsn, "--target", target)
	if r.code != 0 || !strings.Contains(r.stdout, `publication "pub" left in place: walmirror did not create it`) || strings.Contains(r.stdout, `"walmirror"`) {
		t.Errorf("drop of a copy of an administrator's publication: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !publicationExists(t, db, "pub") {
		t.Error("drop dropped the administrator's publication")
	}
}

// TestCheckLockedTable: a published table a migration holds locked made
// check (and status, resync) wait --source-timeout, then blame the network
// (helper-54). It now says a lock is held, within seconds.
func TestCheckLockedTable(t *testing.T) {
	needServer(t)
	testenv.SkipBelow(t, server, 16, "pg_publication_tables opening every table it lists")
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE u (id int PRIMARY KEY); CREATE PUBLICATION walmirror FOR TABLE t, u`)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `BEGIN; LOCK TABLE u IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	r := walmirror(t, nil, "check", "--source", dsn, "--target", "sqlite:"+filepath.Join(t.TempDir(), "c.sqlite"), "--slot", "s_"+db)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "holds a lock") {
		t.Errorf("check with a locked table: exit %d after %s:\n%s%s", r.code, time.Since(began).Round(time.Second), r.stdout, r.stderr)
	}
}

// TestStartWhileTableLocked: a run of a copy made before starts and
// streams while another session holds a lock on a published table (an
// ETL's load that began with TRUNCATE, a prepared transaction): on
// PostgreSQL 16+ looking for unlogged partitions at the start opens every
// published table, and waited for the lock with nothing said, the row
// committed meanwhile not applied (helper-103). The listing of the
// publication waits instead, and says for whom.
func TestStartWhileTableLocked(t *testing.T) {
	needServer(t)
	testenv.SkipBelow(t, server, 16, "pg_publication_tables opening every table it lists")
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE staging (id int);
		CREATE TABLE f (id int, d date, PRIMARY KEY (id, d)) PARTITION BY RANGE (d);
		CREATE TABLE f1 PARTITION OF f FOR VALUES FROM (MINVALUE) TO (MAXVALUE);
		INSERT INTO t VALUES (1, 'before')`)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	target, rows := schemaTargets[0].new(t)
	runNow(t, dsn, target, slot)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `BEGIN; TRUNCATE staging`); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "INSERT INTO t VALUES (2, 'while locked')")
	stop, _ := startRunUntil(t, "did not look for unlogged or foreign partitions", "--source", dsn, "--target", target, "--slot", slot, "--log-level", "debug")
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := rows("SELECT id, v FROM t WHERE id = 2")
		if err == nil && len(got) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the row committed before the start is not in the copy after 20 s (%v):\n%s", err, stop())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := conn.Exec(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "INSERT INTO t VALUES (3, 'after')")
	if log := stop(); strings.Contains(log, "\nwalmirror: ") {
		t.Errorf("the run stopped:\n%s", log)
	}
	runNow(t, dsn, target, slot)
	compareRows(t, dsn, rows, "SELECT id, v FROM t", "SELECT id FROM staging")
}

// TestChunkMeetsNoDeadlock: a chunk of an online copy locks its table,
// then lists the publication, which on PostgreSQL 16+ opens every published
// table in turn. An application transaction that locked another published
// table and then the one being copied (as the swap of two tables by
// renames does) met it in a deadlock, and the server cancelled one of the
// two: the application's transaction, or walmirror's run, exit 1
// (helper-100). The chunk now lets go of its table before the server looks
// for deadlocks, and is read a moment later.
func TestChunkMeetsNoDeadlock(t *testing.T) {
	needServer(t)
	testenv.SkipBelow(t, server, 16, "pg_publication_tables opening every table it lists")
	dsn, db := newDatabase(t, `CREATE TABLE a (id int PRIMARY KEY, v text);
		INSERT INTO a SELECT g, 'v' || g FROM generate_series(1, 100000) g;
		CREATE TABLE b (id int PRIMARY KEY)`)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	target, rows := schemaTargets[0].new(t)
	args := []string{"--source", dsn, "--target", target, "--slot", slot, "--initial-copy", "chunked", "--copy-chunk-rows", "500", "--copy-chunk-time", "-1s"}
	stop := startRun(t, args...)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for round := range 4 {
		// b first, held while a chunk of a starts and waits for it; then a.
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE b IN ACCESS EXCLUSIVE MODE"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		_, err = tx.Exec(ctx, fmt.Sprintf("LOCK TABLE a IN ACCESS EXCLUSIVE MODE; INSERT INTO b VALUES (%d); UPDATE a SET v = 'u' WHERE id = %d", round, round*1000+1))
		if err != nil {
			t.Errorf("round %d: the application's transaction failed: %v", round, err)
			_ = tx.Rollback(ctx)
			continue
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	log := stop()
	if strings.Contains(log, "deadlock detected") || strings.Contains(log, "\nwalmirror: ") {
		t.Errorf("the run met a deadlock or stopped:\n%s", log)
	}
	runNow(t, dsn, target, slot)
	compareRows(t, dsn, rows, "SELECT id, v FROM a", "SELECT id FROM b")
}

// TestCopyOutgrowsLockTable: a one-transaction initial copy of more tables
// than the source's lock table holds (max_locks_per_transaction ×
// (max_connections + max_prepared_transactions), shared by every session)
// completes, and check does not warn of it. Before, the copy held every
// table's lock and, read through a query, every index's until it
// committed: it failed with "out of shared memory" (helper-57, at table
// 7,070; 3,000 tables of four indexes each failed at the 826th on a
// default PostgreSQL 15), and check warned of it.
func TestCopyOutgrowsLockTable(t *testing.T) {
	needServer(t)
	srv := testenv.StartT(t, testenv.Options{Settings: map[string]string{"max_locks_per_transaction": "10", "max_connections": "20"}})
	ctx := context.Background()
	db, err := srv.CreateDatabase(ctx, "locks")
	if err != nil {
		t.Fatal(err)
	}
	// 200 lock slots; 1,000 tables, each with its key, two more indexes and
	// a TOASTed value.
	for from := 1; from <= 1000; from += 50 { // transactions that fit the lock table
		if err := srv.Exec(ctx, db, fmt.Sprintf(`DO $$ BEGIN FOR i IN %d..%d LOOP
			EXECUTE format('CREATE TABLE t%%s (id int PRIMARY KEY, a int, b text); CREATE INDEX ON t%%s (a); CREATE INDEX ON t%%s (b);
				ALTER TABLE t%%s ALTER COLUMN b SET STORAGE EXTERNAL;
				INSERT INTO t%%s SELECT g, g, repeat(md5(g::text), 100) FROM generate_series(1, 3) g', i, i, i, i, i);
			END LOOP; END $$`, from, from+49)); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	target := "sqlite:" + path
	r := walmirror(t, nil, "check", "--source", srv.DSN(db), "--target", target)
	if strings.Contains(r.stdout, "out of shared memory") || strings.Contains(r.stdout, "lock table") {
		t.Errorf("check warns of the lock table:\n%s%s", r.stdout, r.stderr)
	}
	r = walmirror(t, nil, "run", "--source", srv.DSN(db), "--target", target, "--initial-copy", "single", "--stop-at-lsn", "now")
	if r.code != 0 {
		t.Fatalf("run: exit %d\n%s", r.code, r.stderr)
	}
	compareRows(t, srv.DSN(db), func(q string) ([]string, error) { return mirrortest.SQLiteRows(ctx, path, q) },
		"SELECT id, a, b FROM t1", "SELECT id, a, b FROM t500", "SELECT id, a, b FROM t1000")
	// verify reads every table under one snapshot too: it released no
	// lock either ("out of shared memory" at about the 50th table).
	if r = walmirror(t, nil, "verify", "--source", srv.DSN(db), "--target", target); r.code != 0 {
		t.Fatalf("verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestCheckForeignPartition: a partitioned table published through its root
// with a foreign table among its partitions (an archive on another server)
// is warned of: the copy reads the foreign rows, and their changes are in no
// WAL, so the copy of them would go stale with no word (helper-59).
func TestCheckForeignPartition(t *testing.T) {
	needServer(t)
	dsn, _ := newDatabase(t, `CREATE TABLE k (id bigint, v text) PARTITION BY RANGE (id);
		CREATE TABLE k1 PARTITION OF k FOR VALUES FROM (10000) TO (20000);
		CREATE FOREIGN DATA WRAPPER archive_fdw; CREATE SERVER archive FOREIGN DATA WRAPPER archive_fdw;
		CREATE FOREIGN TABLE k_arch PARTITION OF k FOR VALUES FROM (0) TO (10000) SERVER archive;
		CREATE TABLE plain (id int PRIMARY KEY);`)
	r := walmirror(t, nil, "check", "--source", dsn, "--target", "sqlite:"+filepath.Join(t.TempDir(), "copy.db"))
	if !strings.Contains(r.stdout, `"public"."k" has a foreign table among its partitions`) || strings.Contains(r.stdout, `"plain" has a foreign`) {
		t.Errorf("check does not warn of the foreign partition, or warns of another table:\n%s%s", r.stdout, r.stderr)
	}
}

// TestCheckGeneratedKey: check warns of a key that includes a generated
// column the publication does not publish: before 18 every UPDATE and
// DELETE then copies the table again, on 18 the source refuses them
// (helper-90: check said every table had a key). A publication that
// publishes generated columns (18) draws no warning.
func TestCheckGeneratedKey(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE g (a int NOT NULL, b int NOT NULL, gk int GENERATED ALWAYS AS (b * 2) STORED, PRIMARY KEY (a, gk));
		CREATE TABLE plain (id int PRIMARY KEY);
		CREATE PUBLICATION pub FOR ALL TABLES;`)
	check := func(pub string) string {
		t.Helper()
		r := walmirror(t, nil, "check", "--source", dsn, "--publication", pub, "--target", "sqlite:"+filepath.Join(t.TempDir(), "copy.db"))
		return r.stdout + r.stderr
	}
	out := check("pub")
	if !strings.Contains(out, `"public"."g"'s key includes generated columns (gk)`) || strings.Contains(out, `"plain"'s key`) {
		t.Errorf("check does not warn of g's generated key, or warns of another table:\n%s", out)
	}
	want := "REPLICA IDENTITY FULL"
	if server.Major() >= 18 {
		want = "publish_generated_columns = stored"
	}
	if !strings.Contains(out, want) {
		t.Errorf("the warning does not name the remedy %q:\n%s", want, out)
	}
	if server.Major() >= 18 {
		mustExec(t, db, `CREATE PUBLICATION gen FOR ALL TABLES WITH (publish_generated_columns = stored)`)
		if out := check("gen"); strings.Contains(out, "generated columns") {
			t.Errorf("a publication that publishes generated columns draws a warning:\n%s", out)
		}
	}
}

// TestCheckFullIdentityGenerated: on PostgreSQL 18 a REPLICA IDENTITY FULL
// table takes every column for its identity, and the source refuses UPDATE
// and DELETE on it while its publication leaves a generated column out: a
// VIRTUAL one (never published), or a stored one of a publication without
// publish_generated_columns. check fails before the publication exists
// (run would create it), warns of an existing one, and run warns when it
// creates it (helper-109: check said ok, run said nothing, the
// application's deletes failed). Before 18 nothing is refused: no word.
func TestCheckFullIdentityGenerated(t *testing.T) {
	needServer(t)
	virtual := ""
	if server.Major() >= 18 {
		virtual = `CREATE TABLE vfull (a int, b text, v text GENERATED ALWAYS AS (b || a) VIRTUAL);
			ALTER TABLE vfull REPLICA IDENTITY FULL; INSERT INTO vfull (a, b) VALUES (1, 'x');`
	}
	dsn, db := newDatabase(t, virtual+`CREATE TABLE sfull (a int, s int GENERATED ALWAYS AS (a * 2) STORED);
		ALTER TABLE sfull REPLICA IDENTITY FULL; INSERT INTO sfull (a) VALUES (1);
		CREATE TABLE plain (id int PRIMARY KEY, s int GENERATED ALWAYS AS (id * 2) STORED);`)
	check := func(pub string) string {
		t.Helper()
		r := walmirror(t, nil, "check", "--source", dsn, "--publication", pub, "--target", "sqlite:"+filepath.Join(t.TempDir(), "copy.db"))
		return r.stdout + r.stderr
	}
	out := check("walmirror")
	if server.Major() < 18 {
		if strings.Contains(out, "unpublished generated") || strings.Contains(out, "generated columns no") {
			t.Errorf("check warns of generated columns PostgreSQL %d refuses nothing for:\n%s", server.Major(), out)
		}
		return
	}
	if !strings.Contains(out, `FAIL`) || !strings.Contains(out, `"public"."vfull" is REPLICA IDENTITY FULL with VIRTUAL generated columns (v)`) ||
		strings.Contains(out, `"sfull" is REPLICA`) || strings.Contains(out, `"plain" is REPLICA`) {
		t.Errorf("check does not fail for vfull alone:\n%s", out)
	}
	mustExec(t, db, `CREATE PUBLICATION admin FOR TABLE sfull, plain`)
	if out := check("admin"); !strings.Contains(out, `"public"."sfull" is REPLICA IDENTITY FULL with generated columns publication "admin" does not publish (s)`) ||
		!strings.Contains(out, "publish_generated_columns = stored") || strings.Contains(out, `"plain" is REPLICA`) {
		t.Errorf("check does not warn of sfull alone, with the remedy:\n%s", out)
	}
	target := "sqlite:" + filepath.Join(t.TempDir(), "run.db")
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
	if r.code != 0 || !strings.Contains(r.stderr, "REPLICA IDENTITY FULL with generated columns no publication publishes") || !strings.Contains(r.stderr, `tables=public.vfull`) {
		t.Errorf("run does not warn of vfull when it creates the publication (exit %d):\n%s", r.code, r.stderr)
	}
}

// TestUnloggedPartitionWarned: a published partitioned table with an
// unlogged partition: the copy reads that partition's rows through the root
// but its changes are in no WAL. check and every run say so (before: check
// all ok, the copy went stale, exit 0; helper-93). check also names the
// unlogged tables a FOR ALL TABLES publication leaves out.
func TestUnloggedPartitionWarned(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE root (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
		CREATE TABLE root_1 PARTITION OF root FOR VALUES FROM (0) TO (100);
		CREATE UNLOGGED TABLE "Root 2" PARTITION OF root FOR VALUES FROM (100) TO (200);
		CREATE TABLE logged (id int PRIMARY KEY) PARTITION BY RANGE (id);
		CREATE TABLE logged_1 PARTITION OF logged FOR VALUES FROM (0) TO (100);
		CREATE PUBLICATION pub FOR ALL TABLES WITH (publish_via_partition_root = true);
		CREATE UNLOGGED TABLE scratch (id int); CREATE PUBLICATION listed FOR TABLE logged;`)
	target := "sqlite:" + filepath.Join(t.TempDir(), "copy.db")
	r := walmirror(t, nil, "check", "--source", dsn, "--publication", "pub", "--target", target)
	if out := r.stdout + r.stderr; !strings.Contains(out, `"public"."root" has an unlogged table among its partitions`) || strings.Contains(out, `"logged" has an unlogged`) {
		t.Errorf("check does not warn of root's unlogged partition, or warns of another table:\n%s", out)
	}
	// An unlogged table FOR ALL TABLES leaves out (helper-97), not the
	// partition; a publication that lists its tables leaves out nothing.
	if out := r.stdout + r.stderr; !strings.Contains(out, "unlogged tables are not published, and the copy has none of them (their changes are in no WAL): public.scratch;") {
		t.Errorf("check does not name the unlogged table FOR ALL TABLES leaves out:\n%s", out)
	}
	if r := walmirror(t, nil, "check", "--source", dsn, "--publication", "listed", "--target", target); strings.Contains(r.stdout+r.stderr, "unlogged tables are not published") {
		t.Errorf("check warns of unlogged tables a FOR TABLE publication does not list:\n%s", r.stdout+r.stderr)
	}
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	log := runNowLog(t, dsn, target, slot, "--publication", "pub")
	if !strings.Contains(log, `table=public.root partitions="public.\"Root 2\""`) || strings.Count(log, "unlogged or foreign partitions") != 1 {
		t.Errorf("the run does not warn once of root's unlogged partition:\n%s", log)
	}
}

// TestConcurrentFirstRuns: walmirrors started at the same moment on a
// database with no publication each create it; the ones that lose the race
// take it as found. Before, one exited 1 with "duplicate key value violates
// unique constraint pg_publication_pubname_index" (helper-65).
func TestConcurrentFirstRuns(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)`)
	const runs = 8
	var wg sync.WaitGroup
	results := make([]result, runs)
	for i := range runs {
		slot := fmt.Sprintf("s_%s_%d", db, i)
		dropSlotAtEnd(t, db, slot)
		target := "sqlite:" + filepath.Join(t.TempDir(), "copy.db")
		wg.Go(func() {
			results[i] = walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
		})
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("run %d exited %d:\n%s", i, r.code, r.stderr)
		}
	}
}

// TestSlotReplacedDuringCopy: the slot is idle while an initial copy runs,
// and another run on the same target and slot took it for one an
// interrupted copy left and dropped it (helper-71: the first run then
// streamed from the second's later slot, skipping what came between, exit
// 0). The copy notices before it commits, rolls back and leaves the slot;
// the next run copies afresh.
func TestSlotReplacedDuringCopy(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE big (id int PRIMARY KEY, v text);
				INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 300000) g`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			logPath := filepath.Join(t.TempDir(), "run.log")
			logs, err := os.Create(logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer logs.Close()
			cmd := exec.Command(binary, "run", "--source", dsn, "--target", target, "--slot", slot, "--initial-copy", "single", "--stop-at-lsn", "now")
			cmd.Stdout, cmd.Stderr = logs, logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitForLog(t, logPath, "created replication slot")
			mustExec(t, db, `SELECT pg_drop_replication_slot('`+slot+`')`)
			mustExec(t, db, `INSERT INTO big VALUES (0, 'between')`)
			mustExec(t, db, `SELECT pg_create_logical_replication_slot('`+slot+`', 'pgoutput')`)
			err = cmd.Wait()
			out, _ := os.ReadFile(logPath)
			if code := cmd.ProcessState.ExitCode(); code != 1 || !bytes.Contains(out, []byte("was dropped while this run made its initial copy")) {
				t.Fatalf("run exited %d (%v), want 1 saying the slot was dropped:\n%s", code, err, out)
			}
			if !slotExists(t, db, slot) {
				t.Fatal("the run dropped the slot it no longer owned")
			}
			runNow(t, dsn, target, slot)
			compareRows(t, dsn, rows, "SELECT id, v FROM big")
		})
	}
}

// TestStatusInterruptedCopy: an initial copy killed before it committed,
// its slot gone since: status says the next run redoes the copy, and
// names no problem (helper-71: it said the slot was gone and to run with
// --resync, exit 1, while a plain run redoes it).
func TestStatusInterruptedCopy(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)`)
	path := filepath.Join(t.TempDir(), "copy.db")
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	runToFault(t, faultBinary(t), []string{"run", "--source", dsn, "--target", "sqlite:" + path, "--slot", slot}, "snapshot.before-commit:1")
	mustExec(t, db, `SELECT pg_drop_replication_slot('`+slot+`')`)
	before, _ := os.ReadFile(path)
	r := walmirror(t, nil, "status", "--target", "sqlite:"+path, "--source", dsn)
	if r.code != 0 || strings.Contains(r.stdout, "problem") || !strings.Contains(r.stdout, "redone") {
		t.Fatalf("status exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	// No lag from 0/0: there is no copy to lag (helper-110).
	if !strings.Contains(r.stdout, "lag:      none yet") {
		t.Errorf("status of an interrupted copy, lag:\n%s", r.stdout)
	}
	// Read, not written (helper-71: status opened it as a sink).
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("status changed the target file")
	}
	runNow(t, dsn, "sqlite:"+path, slot)
	compareRows(t, dsn, func(q string) ([]string, error) { return mirrortest.SQLiteRows(context.Background(), path, q) }, "SELECT id FROM t")
}

// TestCheckUnownedTable: a target that already holds a table of the
// publication under the copy's name, which walmirror did not create, fails
// check as it stops run (helper-71: check said ok); --adopt-tables warns.
func TestCheckUnownedTable(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE "Order Items" (id int PRIMARY KEY); CREATE TABLE t2 (id int PRIMARY KEY)`)
			target, _ := tg.new(t)
			table := `"Order Items"`
			if strings.HasPrefix(target, "duckdb:") {
				table = `public."order items"` // DuckDB's names ignore case
				targetExec(t, target, "CREATE SCHEMA public")
			}
			targetExec(t, target, "CREATE TABLE "+table+" (id int)")
			slot := "s_" + db
			args := []string{"--source", dsn, "--target", target, "--slot", slot}
			r := walmirror(t, nil, append([]string{"check"}, args...)...)
			if r.code != 1 || !strings.Contains(r.stdout, `already holds public.Order Items, which walmirror did not create`) {
				t.Fatalf("check exited %d:\n%s%s", r.code, r.stdout, r.stderr)
			}
			if r := walmirror(t, nil, append([]string{"check", "--adopt-tables"}, args...)...); r.code != 0 || !strings.Contains(r.stdout, "WARN target:") {
				t.Errorf("check --adopt-tables exited %d:\n%s%s", r.code, r.stdout, r.stderr)
			}
			// With a row, run --adopt-tables refuses it: so does check
			// (helper-139: it warned, exit 0).
			targetExec(t, target, "INSERT INTO "+table+" VALUES (1)")
			if r := walmirror(t, nil, append([]string{"check", "--adopt-tables"}, args...)...); r.code != 1 || !strings.Contains(r.stdout, "holds rows") {
				t.Errorf("check --adopt-tables of a table with a row exited %d:\n%s%s", r.code, r.stdout, r.stderr)
			}
			if r := walmirror(t, nil, append([]string{"run", "--adopt-tables", "--stop-at-lsn", "now"}, args...)...); r.code != 1 || !strings.Contains(r.stderr, "holds rows") {
				t.Errorf("run --adopt-tables of a table with a row exited %d, want 1:\n%s", r.code, r.stderr)
			}
			if r := walmirror(t, nil, append([]string{"run", "--stop-at-lsn", "now"}, args...)...); r.code != 1 || !strings.Contains(r.stderr, "Order Items") ||
				!strings.Contains(r.stderr, "--adopt-tables") {
				t.Errorf("run exited %d, want 1 refusing the table:\n%s", r.code, r.stderr)
			}
			dropSlotAtEnd(t, db, slot)
			// Refused before anything was made (helper-86: the publication
			// stayed behind, and walmirror's tables in the user's target).
			if slotExists(t, db, slot) || publicationExists(t, db, "walmirror") {
				t.Error("the refused run left a slot or a publication on the source")
			}
			if r := walmirror(t, nil, "status", "--target", target); r.code != 1 {
				t.Errorf("status of the refused target exited %d, want 1 (no walmirror state):\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestSlotOfAnotherDatabase: a slot of that name that decodes another
// database is another copy's: run refuses it before it makes a publication,
// and drop leaves it alone (helper-85: run left a publication whose comment
// sent the user to walmirror drop, which dropped that other copy's slot).
func TestSlotOfAnotherDatabase(t *testing.T) {
	needServer(t)
	_, other := newDatabase(t, `CREATE TABLE a (id int PRIMARY KEY)`)
	slot := "s_" + other
	mustExec(t, other, "SELECT pg_create_logical_replication_slot('"+slot+"', 'pgoutput')")
	dropSlotAtEnd(t, other, slot)
	dsn, db := newDatabase(t, `CREATE TABLE b (id int PRIMARY KEY)`)
	target := "sqlite:" + filepath.Join(t.TempDir(), "copy.db")
	r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
	if r.code != 1 || !strings.Contains(r.stderr, `decodes database "`+other+`"`) {
		t.Errorf("run with another database's slot exited %d, want 1 naming that database:\n%s", r.code, r.stderr)
	}
	if publicationExists(t, db, "walmirror") {
		t.Error("the refused run created a publication")
	}
	r = walmirror(t, nil, "drop", "--source", dsn, "--slot", slot)
	if r.code != 1 || !strings.Contains(r.stderr, `belongs to database "`+other+`"`) {
		t.Errorf("drop of another database's slot exited %d, want 1 naming that database:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !slotExists(t, other, slot) {
		t.Error("drop dropped another database's slot")
	}
}

// TestCheckNames: check fails, naming each, the tables an SQLite or DuckDB
// target refuses by their names: tables, columns and (DuckDB) schemas whose
// names differ in letter case only, reserved names, and columns hiding the
// rowid of a table whose changes carry no key. Before, check said ok and
// run stopped at the first of them (helper-104).
func TestCheckNames(t *testing.T) {
	needServer(t)
	dsn, _ := newDatabase(t, `CREATE TABLE "Users" (id int PRIMARY KEY); CREATE TABLE users (id int PRIMARY KEY);
		CREATE TABLE cc ("ID" int PRIMARY KEY, id int);
		CREATE TABLE sqlite_stuff (id int PRIMARY KEY);
		CREATE SCHEMA main; CREATE TABLE main._walmirror_x (id int PRIMARY KEY);
		CREATE TABLE hide (rowid int, _rowid_ int, oid int, v text); ALTER TABLE hide REPLICA IDENTITY FULL;
		CREATE TABLE keyed (rowid int PRIMARY KEY, _rowid_ int, oid int);
		CREATE SCHEMA "Sch"; CREATE SCHEMA sch; CREATE TABLE "Sch".a (id int PRIMARY KEY); CREATE TABLE sch.b (id int PRIMARY KEY);
		CREATE TABLE plain (id int PRIMARY KEY, "Name" text, name2 text);
		CREATE TABLE parted (id int PRIMARY KEY) PARTITION BY RANGE (id); CREATE TABLE "Parted_1" PARTITION OF parted FOR VALUES FROM (0) TO (10);`)
	for _, c := range []struct {
		target    string
		want, not []string
	}{
		{"sqlite:" + filepath.Join(t.TempDir(), "copy.db"),
			[]string{`"public"."Users" and "public"."users"`, `has columns "ID" and "id"`, `"public"."sqlite_stuff" maps to SQLite name`, `"public"."hide" has no key its changes carry`},
			[]string{`"plain"`, `"keyed"`, `"Sch"`, `"main"`, "Parted"}},
		{"duckdb:" + filepath.Join(t.TempDir(), "copy.duckdb"),
			[]string{`"public"."Users" and "public"."users"`, `has columns "ID" and "id"`, `"main"."_walmirror_x" maps to DuckDB table`, `"public"."hide" (REPLICA IDENTITY FULL) has a column named "rowid"`, `schemas "Sch" and "sch"`},
			[]string{`"plain"`, `"keyed"`, `sqlite_stuff`, "Parted"}},
	} {
		r := walmirror(t, nil, "check", "--source", dsn, "--target", c.target)
		if r.code != 1 {
			t.Errorf("check %s exited %d, want 1", c.target, r.code)
		}
		var names []string
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.Contains(l, "names:") {
				names = append(names, l)
			}
		}
		out := strings.Join(names, "\n")
		t.Logf("%s:\n%s", c.target, out)
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("check %s does not say %s:\n%s", c.target, w, r.stdout)
			}
		}
		for _, n := range c.not {
			if strings.Contains(out, n) {
				t.Errorf("check %s names %s, which run takes:\n%s", c.target, n, out)
			}
		}
	}
	// A source without such names: ok.
	clean, _ := newDatabase(t, `CREATE TABLE a (id int PRIMARY KEY, v text)`)
	r := walmirror(t, nil, "check", "--source", clean, "--target", "duckdb:"+filepath.Join(t.TempDir(), "clean.duckdb"))
	if !strings.Contains(r.stdout, "ok   names:") {
		t.Errorf("check of a source without clashing names:\n%s%s", r.stdout, r.stderr)
	}
}

// TestInterruptedCopySlotHeld: a run killed in its initial copy leaves a
// slot the next run drops and makes again; while another connection still
// holds it (the killed run's walsender, still making it behind a long
// transaction) the next run waits for it (--slot-busy-wait) and then
// redoes the copy. Before, it stopped at once: "in use by another
// connection ...: stop that process first" (helper-116).
func TestInterruptedCopySlotHeld(t *testing.T) {
	needServer(t)
	bin := faultBinary(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g;`)
	path := filepath.Join(t.TempDir(), "copy.db")
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	args := []string{"run", "--source", dsn, "--target", "sqlite:" + path, "--slot", slot, "--stop-at-lsn", "now"}
	killed := exec.Command(bin, args...)
	killed.Env = append(os.Environ(), "WALMIRROR_FAULT=snapshot.before-commit:1")
	var stderr bytes.Buffer
	killed.Stderr = &stderr
	if err := killed.Run(); !strings.Contains(stderr.String(), "faultpoint: ") {
		t.Fatalf("the copy was not killed at its commit (%v):\n%s", err, stderr.String())
	}

	ctx := context.Background()
	rc, err := pgconn.Connect(ctx, dsn+"&replication=database")
	if err != nil {
		t.Fatal(err)
	}
	if err := pglogrepl.StartReplication(ctx, rc, slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'walmirror'"}}); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(3 * time.Second)
		rc.Close(ctx)
	}()
	r := walmirror(t, nil, append(args, "--slot-busy-wait", "60s")...)
	<-released
	if r.code != 0 || !strings.Contains(r.stderr, "redoing an interrupted initial snapshot") || !strings.Contains(r.stderr, "waiting for it to be released") {
		t.Fatalf("exit %d, want 0 after waiting for the slot:\n%s", r.code, r.stderr)
	}
	compareRows(t, dsn, func(q string) ([]string, error) { return mirrortest.SQLiteRows(ctx, path, q) }, "SELECT id, v FROM t ORDER BY id")
}

// TestCheckSchemaClosed: a PostgreSQL target whose role may create
// schemas but not tables in public (PostgreSQL 15's default for a role
// that does not own it) fails check as it stops run (helper-139: check
// said ok, run stopped at "permission denied for schema public").
func TestCheckSchemaClosed(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	tdb, err := server.CreateDatabase(context.Background(), "closed_target")
	if err != nil {
		t.Fatal(err)
	}
	role := "tgt_" + db
	mustExec(t, tdb, `CREATE ROLE `+role+` LOGIN PASSWORD 'tgtpw';
		GRANT CREATE ON DATABASE `+tdb+` TO `+role+`;
		REVOKE CREATE ON SCHEMA public FROM PUBLIC`)
	t.Cleanup(func() {
		_ = server.Exec(context.Background(), tdb, `DROP OWNED BY `+role+`; DROP ROLE `+role)
	})
	target := server.DSNFor(role, "tgtpw", tdb)
	slot := "s_" + db
	r := walmirror(t, nil, "check", "--source", dsn, "--target", target, "--slot", slot, "--pg-replica-role=false")
	if r.code != 1 || !strings.Contains(r.stdout, "may not create tables in schema public") || !strings.Contains(r.stdout, "GRANT CREATE ON SCHEMA public") {
		t.Fatalf("check exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	mustExec(t, tdb, `GRANT CREATE ON SCHEMA public TO `+role)
	if r := walmirror(t, nil, "check", "--source", dsn, "--target", target, "--slot", slot, "--pg-replica-role=false"); r.code != 0 {
		t.Fatalf("check after the grant exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestDropPublicationNotOwned: drop by a REPLICATION role that does not own
// walmirror's publication drops the slot and says who may drop the
// publication (helper-139: a hint about REPLICATION and SELECT).
func TestDropPublicationNotOwned(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	role := "rep_" + db
	mustExec(t, db, `CREATE ROLE `+role+` LOGIN REPLICATION PASSWORD 'reppw'`)
	t.Cleanup(func() { _ = server.Exec(context.Background(), db, `DROP ROLE IF EXISTS `+role) })
	slot := "s_" + db
	target := "sqlite:" + filepath.Join(t.TempDir(), "copy.db")
	runNow(t, dsn, target, slot)
	r := walmirror(t, nil, "drop", "--source", server.DSNFor(role, "reppw", db), "--target", target)
	if r.code != 1 || !strings.Contains(r.stdout, `dropped replication slot "`+slot+`"`) ||
		!strings.Contains(r.stderr, "only its owner") || strings.Contains(r.stderr, "REPLICATION") {
		t.Fatalf("drop exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !publicationExists(t, db, "walmirror") {
		t.Error("the publication was dropped")
	}
}
