package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/testenv"
)

// TestStandbySource: a hot standby as --source is refused before anything
// is made, saying to use the primary. Before, run made its slot on the
// standby and copied the tables, then stopped with "recovery is in
// progress" at its first publication poll, at every start (helper-66:
// PostgreSQL 16-18 decode on standbys).
func TestStandbySource(t *testing.T) {
	needServer(t)
	ctx := t.Context()
	primary := testenv.StartT(t, testenv.Options{})
	db, err := primary.CreateDatabase(ctx, "standby")
	if err != nil {
		t.Fatal(err)
	}
	if err := primary.Exec(ctx, db, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');
		CREATE PUBLICATION walmirror FOR TABLE t`); err != nil {
		t.Fatal(err)
	}
	standby, err := primary.StartStandby(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { standby.Close() })
	dsn := standby.DSN(db)
	target := "sqlite:" + filepath.Join(t.TempDir(), "copy.db")

	noFile := func(after string) {
		t.Helper()
		if _, err := os.Stat(strings.TrimPrefix(target, "sqlite:")); err == nil {
			t.Errorf("%s left a target file behind", after)
		}
	}
	r := walmirror(t, nil, "check", "--source", dsn, "--target", target)
	if r.code == 0 || !strings.Contains(r.stdout, "FAIL") || !strings.Contains(r.stdout, "the source is a standby") {
		t.Errorf("check against a standby exited %d, want a FAIL naming it:\n%s%s", r.code, r.stdout, r.stderr)
	}
	noFile("check")
	r = walmirror(t, nil, "run", "--source", dsn, "--target", target, "--stop-at-lsn", "now")
	if r.code == 0 || !strings.Contains(r.stderr, "the source is a standby") || !strings.Contains(r.stderr, "point it at the primary") {
		t.Errorf("run against a standby exited %d, want a refusal naming it:\n%s", r.code, r.stderr)
	}
	noFile("run")
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var slots int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_replication_slots`).Scan(&slots); err != nil || slots != 0 {
		t.Errorf("%d slots on the standby (%v), want none", slots, err)
	}
}
