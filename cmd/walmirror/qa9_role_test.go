package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/walmirror/walmirror/internal/mirrortest"
)

// TestRoleTimeouts: timeouts an administrator set on the replication role
// (ALTER ROLE ... SET) apply to every session walmirror opens. Before,
// statement_timeout cancelled the initial copy's COPY at every start
// ('canceling statement due to statement timeout', exit 1 for good, every
// target, PG 14-18), transaction_timeout (PG 17+; set after connecting, so a value long enough for one SET) ended its snapshot
// transaction likewise, and idle_in_transaction_session_timeout left verify
// unable to compare (exit 2). walmirror's sessions turn them off.
func TestRoleTimeouts(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	setup := `CREATE TABLE t (id int PRIMARY KEY, v text);
		INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 200000) g;
		DROP ROLE IF EXISTS qa9_timeouts;
		CREATE ROLE qa9_timeouts LOGIN REPLICATION PASSWORD 'pw';
		GRANT SELECT ON t TO qa9_timeouts;
		CREATE PUBLICATION walmirror FOR TABLE t;
		ALTER ROLE qa9_timeouts SET statement_timeout = '1ms';
		ALTER ROLE qa9_timeouts SET lock_timeout = '1ms';
		ALTER ROLE qa9_timeouts SET idle_in_transaction_session_timeout = '1ms';
		ALTER ROLE qa9_timeouts SET idle_session_timeout = '1ms';`
	if server.Major() >= 17 {
		setup += `ALTER ROLE qa9_timeouts SET transaction_timeout = '300ms';`
	}
	dsn, db := newDatabase(t, setup)
	t.Cleanup(func() { server.Exec(ctx, "postgres", "DROP ROLE IF EXISTS qa9_timeouts") })
	role := server.DSNFor("qa9_timeouts", "pw", db)
	path := filepath.Join(t.TempDir(), "copy.db")
	target := "sqlite:" + path
	slot := "s_" + db
	t.Cleanup(func() { walmirror(t, nil, "drop", "--source", dsn, "--target", target, "--slot", slot) })

	if r := walmirror(t, nil, "check", "--source", role, "--target", target, "--slot", slot); r.code != 0 {
		t.Errorf("check exited %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	runNow(t, role, target, slot)
	if err := server.Exec(ctx, db, `UPDATE t SET v = 'y' WHERE id % 1000 = 0; DELETE FROM t WHERE id % 777 = 0`); err != nil {
		t.Fatal(err)
	}
	runNow(t, role, target, slot)
	want, _ := mirrortest.SourceRows(ctx, dsn, "SELECT id, v FROM t ORDER BY id")
	got, err := mirrortest.SQLiteRows(ctx, path, "SELECT id, v FROM t ORDER BY id")
	if err != nil || mirrortest.Diff(want, got) != "" {
		t.Fatalf("copy differs: %v\n%s", err, mirrortest.Diff(want, got))
	}
	mustVerify(t, role, target)
}
