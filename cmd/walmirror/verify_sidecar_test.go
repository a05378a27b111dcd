package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/walmirror/walmirror/testenv"
)

// TestVerifySidecar: walmirror verify --sidecar verifies a copy while
// walmirror run replicates into it, on every target, with pgbench writing
// to the source: the running process pauses the copy at the comparison's
// position and compares while it replicates on. An equal copy verifies 0;
// a copy damaged behind walmirror's back (before the run starts: no other
// process may write a DuckDB file walmirror holds) gives 1 and names the
// keys; verify --sidecar --repair has the running walmirror copy just the
// differing rows (a keyless table whole) again and verifies them equal.
func TestVerifySidecar(t *testing.T) {
	needServer(t)
	for _, c := range verifyCopies() {
		t.Run(c.name, func(t *testing.T) { testVerifySidecar(t, c) })
	}
}

var heldFor = regexp.MustCompile(`held_for=\S+`)

func testVerifySidecar(t *testing.T, c verifyCopy) {
	began := time.Now()
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text, n numeric(10,2), at timestamptz);
		INSERT INTO t SELECT i, 'row ' || i, i / 3.0, '2024-01-01'::timestamptz + i * interval '1 hour' FROM generate_series(1, 200) i;
		CREATE TABLE k (v text, n int);
		ALTER TABLE k REPLICA IDENTITY FULL;
		INSERT INTO k VALUES ('dup', 1), ('dup', 1), ('other', NULL);`)
	pgbench := testenv.Tool("pgbench")
	if out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", dsn).CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	target, tamper := c.make(t)
	slot := "s_" + db
	if r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now"); r.code != 0 {
		t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
	}

	// sidecar starts walmirror run serving --metrics-addr and returns its
	// address and a stop that returns its log.
	sidecar := func() (string, func() string) {
		stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--slot", slot,
			"--metrics-addr", "127.0.0.1:0", "--progress-interval", "0")
		logs, _ := os.ReadFile(logPath)
		m := servingMetrics.FindSubmatch(logs)
		if m == nil {
			t.Fatalf("no 'serving metrics' line:\n%s", logs)
		}
		return "http://" + string(m[1]), stop
	}
	// load runs pgbench on the source while fn runs.
	load := func(fn func()) {
		cmd := exec.Command(pgbench, "-c", "2", "-T", "5", "-n", dsn)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond) // changes in flight
		fn()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("pgbench: %v\n%s", err, out.String())
		}
	}

	// An equal copy, verified twice under load through the running process.
	addr, stop := sidecar()
	var r, rj result
	load(func() {
		r = walmirror(t, nil, "verify", "--sidecar", addr)
		rj = walmirror(t, nil, "verify", "--sidecar", strings.TrimPrefix(addr, "http://"), "--json", "--table", "public.pgbench_accounts,public.t")
	})
	logs := stop()
	if r.code != 0 || !strings.Contains(r.stdout, "by the running walmirror") || !strings.Contains(r.stdout, "6 tables equal, 0 different") {
		t.Fatalf("verify --sidecar of an equal copy under load exited %d, want 0:\n%s%s\n%s", r.code, r.stdout, r.stderr, logs)
	}
	var rep struct {
		Equal  bool   `json:"equal"`
		Live   bool   `json:"live"`
		LSN    string `json:"lsn"`
		Tables []struct{ Table, Status, Method string }
	}
	if err := json.Unmarshal([]byte(rj.stdout), &rep); err != nil || rj.code != 0 || !rep.Equal || !rep.Live || len(rep.Tables) != 2 || rep.Tables[0].Table != "public.pgbench_accounts" {
		t.Errorf("verify --sidecar --json exited %d (%v): %+v\n%s%s", rj.code, err, rep, rj.stdout, rj.stderr)
	}
	// Both keyed by an integer: checksums, computed in the running
	// process's own connection to the copy.
	for _, tb := range rep.Tables {
		if tb.Method != "checksum" {
			t.Errorf("%s compared by %q through the sidecar, want checksum", tb.Table, tb.Method)
		}
	}
	for _, want := range []string{"verify: requested", "verify: comparing; the copy replicates on meanwhile", "verify: done"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the run's log lacks %q:\n%s", want, logs)
		}
	}
	t.Logf("verified through the running walmirror under load (engine held at most %s):\n%s", strings.Join(heldFor.FindAllString(logs, -1), ", "), r.stdout)

	// Damaged behind walmirror's back while it was stopped: changed,
	// deleted and inserted rows, one of two duplicate rows.
	tamper(fmt.Sprintf(`UPDATE %[1]s SET v = 'tampered' WHERE id = 2; DELETE FROM %[1]s WHERE id = 3;
		INSERT INTO %[1]s (id, v) VALUES (1000, 'extra');
		DELETE FROM %[2]s WHERE %[3]s = (SELECT %[3]s FROM %[2]s WHERE v = 'dup' LIMIT 1)`, c.table("t"), c.table("k"), c.rowid("k")))
	addr, stop = sidecar()
	var rr, ra result
	load(func() {
		r = walmirror(t, nil, "verify", "--sidecar", addr, "--examples", "3")
		// Repaired through the running walmirror: the differing rows of t
		// by key, k whole; then equal.
		rr = walmirror(t, nil, "verify", "--sidecar", addr, "--repair")
	})
	ra = walmirror(t, nil, "verify", "--sidecar", addr, "--json")
	logs = stop()
	if r.code != 1 {
		t.Fatalf("verify --sidecar of a damaged copy exited %d, want 1:\n%s%s\n%s", r.code, r.stdout, r.stderr, logs)
	}
	for _, want := range []string{"public.t", "1 missing, 1 extra, 1 changed", "(id)=(2) differs in v", "(id)=(3)", "(id)=(1000)",
		"public.k", "(v, n)=(dup, 1)", "4 tables equal, 2 different"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the report lacks %q:\n%s", want, r.stdout)
		}
	}
	if rr.code != 0 || !strings.Contains(rr.stdout, "public.t (3 rows by key)") || !strings.Contains(rr.stdout, "public.k (whole: no key)") ||
		!strings.Contains(rr.stdout, "by the running walmirror (requested at") || !strings.Contains(rr.stdout, "2 tables equal, 0 different") {
		t.Errorf("verify --sidecar --repair exited %d, want 0 after copying 3 rows of t and k again:\n%s%s\n%s", rr.code, rr.stdout, rr.stderr, logs)
	}
	// Only the differing rows of t were copied again, by the running
	// walmirror.
	for _, want := range []string{`msg="copying rows again online" table=public.t reason="resync of rows requested" rows=3`,
		`msg="rows copied again online" table=public.t keys=3`, `msg="copying table online" table=public.k`} {
		if !strings.Contains(logs, want) {
			t.Errorf("the run's log lacks %q:\n%s", want, logs)
		}
	}
	if err := json.Unmarshal([]byte(ra.stdout), &rep); err != nil || ra.code != 0 || !rep.Equal {
		t.Errorf("verify --sidecar after the repair exited %d (%v):\n%s%s", ra.code, err, ra.stdout, ra.stderr)
	}

	// Nothing serves there any more: exit 2 and why.
	r = walmirror(t, nil, "verify", "--sidecar", addr)
	if r.code != 2 || !strings.Contains(r.stderr, "is walmirror run --metrics-addr serving there?") {
		t.Errorf("verify --sidecar with no walmirror there exited %d:\n%s", r.code, r.stderr)
	}
	t.Logf("took %v", time.Since(began).Round(time.Millisecond))
}

// TestVerifySidecarDuringOnlineCopy: verify --sidecar while the running
// walmirror copies a table online exits 2 saying so. Before, every reason
// the engine gave for not pausing was reported as the copy not reaching
// the comparison's position within --catch-up-timeout (5m), at once, with
// the HTTP status of a timeout (504).
func TestVerifySidecarDuringOnlineCopy(t *testing.T) {
	needServer(t)
	for _, c := range verifyCopies() {
		t.Run(c.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE t (id int8 PRIMARY KEY, v text);
				INSERT INTO t SELECT i, 'row ' || i FROM generate_series(1, 200000) i;`)
			target, _ := c.make(t)
			slot := "s_" + db
			runNow(t, dsn, target, slot)
			// Chunks of 200 rows: the copy takes a while.
			stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--slot", slot,
				"--metrics-addr", "127.0.0.1:0", "--progress-interval", "0", "--copy-chunk-rows", "200", "--copy-chunk-time", "-1s")
			logs, _ := os.ReadFile(logPath)
			m := servingMetrics.FindSubmatch(logs)
			if m == nil {
				t.Fatalf("no 'serving metrics' line:\n%s", logs)
			}
			if r := walmirror(t, nil, "resync", "--source", dsn, "--target", target, "--slot", slot, "--table", "public.t"); r.code != 0 {
				t.Fatalf("resync exited %d:\n%s", r.code, r.stderr)
			}
			waitForLog(t, logPath, `msg="copying table online"`)
			r := walmirror(t, nil, "verify", "--sidecar", string(m[1]))
			out := stop()
			if r.code == 0 {
				t.Skipf("the copy was complete before verify asked:\n%s", out)
			}
			if r.code != 2 || !strings.Contains(r.stderr, "tables are being copied online (public.t)") {
				t.Fatalf("verify --sidecar during an online copy exited %d, want 2 saying the table is being copied:\n%s%s\n%s", r.code, r.stdout, r.stderr, out)
			}
		})
	}
}
