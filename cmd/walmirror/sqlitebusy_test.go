package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walmirror/walmirror/internal/mirrortest"
)

// TestSQLiteWriterHoldsLock: another process holds the SQLite target's
// write lock longer than the busy timeout (10 s) while changes stream. The
// run retries, as it does a lost connection, and goes on once the lock is
// released; the copy ends equal. Before, it exited 1 ("begin: database is
// locked", helper-110).
func TestSQLiteWriterHoldsLock(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')`)
	path := filepath.Join(t.TempDir(), "copy.db")
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", "sqlite:"+path, "--slot", slot)
	ctx := context.Background()
	other, err := sql.Open("sqlite3", path+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, `INSERT INTO t VALUES (2, 'b')`)
	waitForLog(t, logPath, "another process holds the write lock")
	mustExec(t, db, `UPDATE t SET v = 'c' WHERE id = 1; INSERT INTO t VALUES (3, 'd')`)
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := mirrortest.SQLiteRows(ctx, path, "SELECT count(*) FROM t WHERE id = 3")
		if err == nil && len(got) == 1 && got[0] == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("row 3 not in the copy a minute after the lock was released:\n%s", stop())
		}
		time.Sleep(200 * time.Millisecond)
	}
	out := stop()
	if strings.Contains(out, "level=ERROR") || !strings.Contains(out, "replication resumed") {
		t.Errorf("the run did not retry and resume:\n%s", out)
	}
	compareRows(t, dsn, func(q string) ([]string, error) { return mirrortest.SQLiteRows(ctx, path, q) }, "SELECT id, v FROM t")
}
