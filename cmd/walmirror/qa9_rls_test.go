package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/internal/mirrortest"
)

// TestRowLevelSecurity: a published table with a row-level security policy
// that applies to the replication role. The stream carries every row, but a
// SELECT by that role sees only some: the initial copy held 50 of 100 rows
// and walmirror exited 0 (every target, PG 14-18), and verify compared the
// filtered read. walmirror's sessions run with row_security = off, so such a
// read is refused with an error naming the fix; check says so beforehand.
func TestRowLevelSecurity(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, owner text, v text);
		INSERT INTO t SELECT g, CASE WHEN g % 2 = 0 THEN 'qa9_rls' ELSE 'other' END, 'x' || g FROM generate_series(1, 100) g;
		ALTER TABLE t ENABLE ROW LEVEL SECURITY;
		CREATE POLICY own ON t FOR SELECT USING (owner = current_user);
		DROP ROLE IF EXISTS qa9_rls;
		CREATE ROLE qa9_rls LOGIN REPLICATION PASSWORD 'pw';
		GRANT SELECT ON t TO qa9_rls;
		CREATE PUBLICATION walmirror FOR TABLE t;`)
	t.Cleanup(func() { server.Exec(ctx, "postgres", "DROP ROLE IF EXISTS qa9_rls") })
	role := server.DSNFor("qa9_rls", "pw", db)
	path := filepath.Join(t.TempDir(), "copy.db")
	target := "sqlite:" + path
	slot := "s_" + db
	t.Cleanup(func() { walmirror(t, nil, "drop", "--source", dsn, "--target", target, "--slot", slot) })

	r := walmirror(t, nil, "check", "--source", role, "--target", target, "--slot", slot)
	if r.code != 1 || !strings.Contains(r.stdout, "row-level security hides rows of \"public\".\"t\"") {
		t.Errorf("check exited %d, want 1 naming row-level security:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = walmirror(t, nil, "run", "--source", role, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
	if r.code == 0 || !strings.Contains(lastLine(r.stderr), "row-level security") || !strings.Contains(lastLine(r.stderr), "BYPASSRLS") {
		got, _ := mirrortest.SQLiteRows(ctx, path, "SELECT count(*) FROM t")
		t.Fatalf("run as a role row-level security filters exited %d (copy holds %v rows of 100), want an error naming row-level security and BYPASSRLS:\n%s", r.code, got, r.stderr)
	}

	// The fix the error names works, and the copy is whole.
	if err := server.Exec(ctx, db, `ALTER ROLE qa9_rls BYPASSRLS`); err != nil {
		t.Fatal(err)
	}
	runNow(t, role, target, slot)
	want, _ := mirrortest.SourceRows(ctx, dsn, "SELECT id, owner, v FROM t ORDER BY id")
	got, err := mirrortest.SQLiteRows(ctx, path, "SELECT id, owner, v FROM t ORDER BY id")
	if err != nil || mirrortest.Diff(want, got) != "" {
		t.Fatalf("copy after BYPASSRLS: %v\n%s", err, mirrortest.Diff(want, got))
	}

	// verify as a filtered role must not compare a partial read.
	if err := server.Exec(ctx, db, `ALTER ROLE qa9_rls NOBYPASSRLS`); err != nil {
		t.Fatal(err)
	}
	r = walmirror(t, nil, "verify", "--source", role, "--target", target)
	if r.code != 2 || !strings.Contains(r.stdout+r.stderr, "row-level security") {
		t.Errorf("verify as a filtered role exited %d, want 2 naming row-level security:\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A table joining the publication later (an online copy) is refused too.
	if err := server.Exec(ctx, db, `CREATE TABLE u (id int PRIMARY KEY, owner text);
		INSERT INTO u SELECT g, 'other' FROM generate_series(1, 10) g;
		ALTER TABLE u ENABLE ROW LEVEL SECURITY;
		CREATE POLICY own ON u FOR SELECT USING (owner = current_user);
		GRANT SELECT ON u TO qa9_rls;
		ALTER PUBLICATION walmirror ADD TABLE u;`); err != nil {
		t.Fatal(err)
	}
	r = walmirror(t, nil, "run", "--source", role, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
	if r.code == 0 || !strings.Contains(r.stderr, "row-level security") {
		got, _ := mirrortest.SQLiteRows(ctx, path, "SELECT count(*) FROM u")
		t.Fatalf("run with a joining table row-level security filters exited %d (copy holds %v rows of 10):\n%s", r.code, got, r.stderr)
	}
}
