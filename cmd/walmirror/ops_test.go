package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
	logPath := filepath.Join(t.TempDir(), "run.log")
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
	waitForLog(t, logPath, "msg=streaming")
	return stop
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
	stop()

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
