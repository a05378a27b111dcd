package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walmirror/walmirror/testenv"
)

// TestSourceLimitsHint: a source whose replication slots or WAL senders are
// all taken. run exited 1 with PostgreSQL's bare 'all replication slots are
// in use' / 'number of requested standby connections exceeds
// max_wal_senders' (every target, PG 14-18), without what to do (check said
// it; run did not). The error now names the setting and how to find the
// slot or client holding it.
func TestSourceLimitsHint(t *testing.T) {
	needServer(t)
	srv := testenv.StartT(t, testenv.Options{Settings: map[string]string{"max_replication_slots": "1", "max_wal_senders": "1"}})
	ctx := context.Background()
	db, err := srv.CreateDatabase(ctx, "limits")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Exec(ctx, db, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);
		SELECT pg_create_physical_replication_slot('taken')`); err != nil {
		t.Fatal(err)
	}
	dsn := srv.DSN(db)
	target := "sqlite:" + filepath.Join(t.TempDir(), "copy.db")
	r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--stop-at-lsn", "now")
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "raise max_replication_slots") || !strings.Contains(lastLine(r.stderr), "pg_replication_slots") {
		t.Errorf("every slot taken: exit %d, want 1 naming max_replication_slots and pg_replication_slots: %s", r.code, lastLine(r.stderr))
	}
	// Refused before anything is made: no publication (helper-64: the
	// failed start left one), no target file.
	var pubs int
	if conn, err := pgx.Connect(ctx, dsn); err != nil {
		t.Fatal(err)
	} else if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_publication`).Scan(&pubs); err != nil {
		t.Fatal(err)
	} else if conn.Close(ctx); pubs != 0 {
		t.Errorf("the refused start left %d publications", pubs)
	}
	if _, err := os.Stat(strings.TrimPrefix(target, "sqlite:")); !os.IsNotExist(err) {
		t.Errorf("the refused start left the target file (%v)", err)
	}
	if err := srv.Exec(ctx, db, `SELECT pg_drop_replication_slot('taken')`); err != nil {
		t.Fatal(err)
	}

	// Hold the only WAL sender with a replication connection of our own.
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["replication"] = "database"
	holder, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	r = walmirror(t, nil, "run", "--source", dsn, "--target", target, "--stop-at-lsn", "now")
	if r.code != 1 || !strings.Contains(lastLine(r.stderr), "raise max_wal_senders") || !strings.Contains(lastLine(r.stderr), "pg_stat_replication") {
		t.Errorf("every WAL sender taken: exit %d, want 1 naming max_wal_senders and pg_stat_replication: %s", r.code, lastLine(r.stderr))
	}
	holder.Close(ctx)
	runNow(t, dsn, target, "walmirror")
	walmirror(t, nil, "drop", "--source", dsn, "--target", target)
}
