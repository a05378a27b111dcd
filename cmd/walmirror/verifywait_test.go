package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walmirror/walmirror/testenv"
)

// TestVerifySnapshotWaitBounded: verify's temporary slot waits for every
// transaction open on the source, and a forgotten prepared transaction
// held a standalone verify forever (a scheduled verify hung, logging a
// warning every 30 s). --snapshot-timeout bounds the wait: exit 2, naming
// the prepared transaction and what to do.
func TestVerifySnapshotWaitBounded(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	srv := testenv.StartT(t, testenv.Options{Settings: map[string]string{"max_prepared_transactions": "2"}})
	if err := srv.Exec(ctx, "postgres", `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	dsn := srv.DSN("postgres")
	target := "sqlite:" + filepath.Join(t.TempDir(), "copy.db")
	if r := walmirror(t, nil, "run", "--stop-at-lsn", "now", "--source", dsn, "--target", target); r.code != 0 {
		t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
	}
	if err := srv.Exec(ctx, "postgres", `BEGIN; INSERT INTO t VALUES (2); PREPARE TRANSACTION 'left_behind'`); err != nil {
		t.Fatal(err)
	}
	defer srv.Exec(ctx, "postgres", `ROLLBACK PREPARED 'left_behind'`)
	began := time.Now()
	r := walmirror(t, nil, "verify", "--source", dsn, "--target", target, "--snapshot-timeout", "3s")
	if r.code != 2 || !strings.Contains(r.stderr, "left_behind") || !strings.Contains(r.stderr, "ROLLBACK PREPARED") {
		t.Errorf("verify behind a prepared transaction: exit %d after %s, want 2 naming it:\n%s", r.code, time.Since(began).Round(time.Second), r.stderr)
	}
	// Through a running walmirror (--sidecar) too: it waited 25 s whatever
	// --snapshot-timeout said, and named nothing (helper-103).
	stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--metrics-addr", "127.0.0.1:0", "--progress-interval", "0")
	logs, _ := os.ReadFile(logPath)
	m := servingMetrics.FindSubmatch(logs)
	if m == nil {
		t.Fatalf("no 'serving metrics' line:\n%s", logs)
	}
	began = time.Now()
	r = walmirror(t, nil, "verify", "--sidecar", "http://"+string(m[1]), "--snapshot-timeout", "3s")
	if took := time.Since(began); r.code != 2 || !strings.Contains(r.stderr, "left_behind") || !strings.Contains(r.stderr, "ROLLBACK PREPARED") || took > 15*time.Second {
		t.Errorf("verify --sidecar behind a prepared transaction: exit %d after %s, want 2 within about 3 s naming it:\n%s", r.code, took.Round(time.Second), r.stderr)
	}
	if err := srv.Exec(ctx, "postgres", `COMMIT PREPARED 'left_behind'`); err != nil {
		t.Fatal(err)
	}
	if r := walmirror(t, nil, "verify", "--sidecar", "http://"+string(m[1])); r.code != 0 {
		t.Errorf("verify --sidecar after the commit: exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	stop()
	if r := walmirror(t, nil, "verify", "--source", dsn, "--target", target); r.code != 0 {
		t.Errorf("verify after the commit: exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}
