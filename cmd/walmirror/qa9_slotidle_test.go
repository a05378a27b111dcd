package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walmirror/walmirror/testenv"
)

// TestSlotIdleTimeoutNamed: PostgreSQL 18 invalidates a slot unused for
// longer than idle_replication_slot_timeout. status and check blamed
// max_slot_wal_keep_size (check: "was invalidated (max_slot_wal_keep_size)"),
// so an operator would raise the wrong setting; they now name the server's
// invalidation_reason.
func TestSlotIdleTimeoutNamed(t *testing.T) {
	if server == nil {
		t.Skip("needs PostgreSQL (not in -short mode)")
	}
	testenv.SkipBelow(t, server, 18, "idle_replication_slot_timeout")
	srv := testenv.StartT(t, testenv.Options{Settings: map[string]string{"idle_replication_slot_timeout": "1s"}})
	ctx := context.Background()
	db, err := srv.CreateDatabase(ctx, "idle")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Exec(ctx, db, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	dsn := srv.DSN(db)
	target := "sqlite:" + filepath.Join(t.TempDir(), "copy.db")
	runNow(t, dsn, target, "walmirror")
	// The checkpoint invalidates slots idle for longer than the timeout.
	deadline := time.Now().Add(time.Minute)
	for {
		time.Sleep(1500 * time.Millisecond)
		if err := srv.Exec(ctx, db, `CHECKPOINT`); err != nil {
			t.Fatal(err)
		}
		r := walmirror(t, nil, "status", "--source", dsn, "--target", target)
		if strings.Contains(r.stdout, "invalidated") {
			if !strings.Contains(r.stdout, "idle_replication_slot_timeout") || strings.Contains(r.stdout, "(max_slot_wal_keep_size)") {
				t.Errorf("status names the wrong cause:\n%s", r.stdout)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot was not invalidated:\n%s", r.stdout)
		}
	}
	r := walmirror(t, nil, "check", "--source", dsn, "--target", target)
	if r.code != 1 || !strings.Contains(r.stdout, "invalidated (it stayed unused longer than idle_replication_slot_timeout)") {
		t.Errorf("check exited %d, want 1 naming idle_replication_slot_timeout:\n%s", r.code, r.stdout)
	}
	if r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--stop-at-lsn", "now"); r.code != 1 ||
		!strings.Contains(r.stderr, "idle_replication_slot_timeout") || strings.Contains(r.stderr, "max_slot_wal_keep_size") {
		t.Errorf("run exited %d, want 1 naming idle_replication_slot_timeout:\n%s", r.code, r.stderr)
	}
	if r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--stop-at-lsn", "now", "--resync"); r.code != 0 {
		t.Fatalf("run --resync exited %d:\n%s", r.code, r.stderr)
	}
}
