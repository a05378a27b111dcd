package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walmirror/walmirror/internal/mirrortest"
	"github.com/walmirror/walmirror/testenv"
)

// TestTargetCommitWaitsForStandby: a PostgreSQL target whose commits wait
// for a synchronous standby that does not answer, walmirror killed while
// its commit waits (durable in the target, not yet visible), then started
// again. The new run read the position before that commit, applied its
// transactions again, and once the standby answered both commits stood:
// a keyless table's rows twice, exit 0 (helper-120). It now waits for the
// state row the old commit holds, and says so. A dedicated target server.
func TestTargetCommitWaitsForStandby(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE h (v int); ALTER TABLE h REPLICA IDENTITY FULL; INSERT INTO h VALUES (1)`)
	tsrv := testenv.StartT(t, testenv.Options{})
	tdb, texec := serverDatabase(t, tsrv, "standby_target")
	target := tsrv.DSN(tdb)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	runNow(t, dsn, target, slot)

	logs, err := os.Create(filepath.Join(t.TempDir(), "walmirror.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	args := []string{"run", "--source", dsn, "--target", target, "--slot", slot}
	first := exec.Command(binary, args...)
	first.Stdout, first.Stderr = logs, logs
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Process.Kill()
	waitForLog(t, logs.Name(), "msg=streaming")
	texec(`ALTER SYSTEM SET synchronous_standby_names = 'ghost'`)
	texec(`SELECT pg_reload_conf()`)
	mustExec(t, db, `INSERT INTO h SELECT g FROM generate_series(2, 50) g`)
	// Its commit now waits for the standby; then it dies.
	waitCommitWaiting(t, tsrv, tdb)
	_ = first.Process.Signal(syscall.SIGKILL)
	_ = first.Wait()

	from := logLen(logs.Name())
	second := exec.Command(binary, args...)
	second.Stdout, second.Stderr = logs, logs
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	defer second.Process.Kill()
	if !waitForLogAfter(logs.Name(), from, "holds walmirror's state row", 30*time.Second) {
		out, _ := os.ReadFile(logs.Name())
		t.Errorf("the second run did not wait for the first one's commit:\n%s", out)
	}
	texec(`ALTER SYSTEM RESET synchronous_standby_names`)
	texec(`SELECT pg_reload_conf()`)
	mustExec(t, db, `INSERT INTO h VALUES (100)`)
	waitConfirmed(t, dsn, slot)
	_ = second.Process.Signal(syscall.SIGTERM)
	_ = second.Wait()
	compareRows(t, dsn, func(q string) ([]string, error) { return mirrortest.SourceRows(context.Background(), target, q) }, `SELECT v FROM h`)
	if t.Failed() {
		out, _ := os.ReadFile(logs.Name())
		t.Logf("the runs:\n%s", out)
	}
}

// waitCommitWaiting waits until a session of database db on srv waits for
// a synchronous standby (its commit durable, not yet visible).
func waitCommitWaiting(t *testing.T, srv *testenv.Server, db string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		rows, err := mirrortest.SourceRows(context.Background(), srv.DSN(db), `SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`)
		if err == nil && len(rows) == 1 && strings.TrimSpace(rows[0]) != "0" {
			return
		}
	}
	t.Fatal("no commit waited for the synchronous standby")
}
