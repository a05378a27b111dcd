package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/testenv"
)

// TestTablesJoinPublication: tables added to the publication while pgbench
// runs (one of them without a key) arrive complete, copied online in
// chunks, with no restart and the other tables streaming on. Every target.
func TestTablesJoinPublication(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, "")
			pgbench := testenv.Tool("pgbench")
			if out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", dsn).CombinedOutput(); err != nil {
				t.Fatalf("pgbench -i: %v\n%s", err, out)
			}
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"--source", dsn, "--target", target, "--slot", slot, "--tables", "public.pgbench_branches",
				"--copy-chunk-rows", "7000", "--poll-interval", "300ms"}
			stop, logPath := startRunUntil(t, "msg=streaming", args...)

			load := exec.Command(pgbench, "-c", "2", "-T", "6", "-n", dsn)
			var loadOut bytes.Buffer
			load.Stdout, load.Stderr = &loadOut, &loadOut
			if err := load.Start(); err != nil {
				t.Fatal(err)
			}
			// pgbench_accounts first (100,000 rows: 15 chunks), the others
			// a little later, pgbench_history without a key.
			waitForLog(t, logPath, "msg=streaming")
			mustExec(t, db, "ALTER PUBLICATION walmirror ADD TABLE pgbench_accounts")
			mustExec(t, db, "ALTER PUBLICATION walmirror ADD TABLE pgbench_tellers, pgbench_history")
			if err := load.Wait(); err != nil {
				t.Fatalf("pgbench: %v\n%s", err, loadOut.String())
			}
			waitForLog(t, logPath, `msg="table copied online" table=public.pgbench_history`)
			waitForLog(t, logPath, `msg="table copied online" table=public.pgbench_accounts`)
			log := stop()
			for _, l := range strings.Split(log, "\n") {
				if strings.Contains(l, "online") {
					t.Log(l)
				}
			}
			if n := strings.Count(log, "msg=streaming"); n != 1 {
				t.Errorf("walmirror streamed %d times, want once (no restart):\n%s", n, log)
			}
			// What came after the last chunk is applied by a bounded run.
			if r := walmirror(t, nil, append([]string{"run", "--stop-at-lsn", "now"}, args...)...); r.code != 0 {
				t.Fatalf("catch-up run exited %d:\n%s", r.code, r.stderr)
			}
			comparePgbench(t, dsn, rows)
		})
	}
}

func mustExec(t *testing.T, db, sql string) {
	t.Helper()
	if err := server.Exec(t.Context(), db, sql); err != nil {
		t.Fatal(err)
	}
}

// TestResyncTable: `walmirror resync --table` copies one damaged table
// again while pgbench runs and walmirror streams; the other tables are left
// alone and everything ends equal to the source. Every target.
func TestResyncTable(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, "")
			pgbench := testenv.Tool("pgbench")
			if out, err := exec.Command(pgbench, "-i", "-s", "1", "-q", dsn).CombinedOutput(); err != nil {
				t.Fatalf("pgbench -i: %v\n%s", err, out)
			}
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"--source", dsn, "--target", target, "--slot", slot, "--copy-chunk-rows", "9000"}
			if r := walmirror(t, nil, append([]string{"run", "--stop-at-lsn", "now"}, args...)...); r.code != 0 {
				t.Fatalf("first run exited %d:\n%s", r.code, r.stderr)
			}
			// Someone damages the copy of pgbench_accounts.
			appExec(t, tg.name, target, "DELETE FROM pgbench_accounts WHERE aid % 7 = 0; UPDATE pgbench_accounts SET abalance = -1 WHERE aid % 11 = 0")

			stop, logPath := startRunUntil(t, "msg=streaming", args...)
			load := exec.Command(pgbench, "-c", "2", "-T", "5", "-n", dsn)
			var loadOut bytes.Buffer
			load.Stdout, load.Stderr = &loadOut, &loadOut
			if err := load.Start(); err != nil {
				t.Fatal(err)
			}
			r := walmirror(t, nil, "resync", "--source", dsn, "--slot", slot, "--table", "pgbench_accounts")
			if r.code != 0 {
				t.Fatalf("resync exited %d:\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "public.pgbench_accounts") {
				t.Errorf("resync said: %s", r.stdout)
			}
			if err := load.Wait(); err != nil {
				t.Fatalf("pgbench: %v\n%s", err, loadOut.String())
			}
			waitForLog(t, logPath, `msg="table copied online" table=public.pgbench_accounts rows=100000 chunks=12`)
			log := stop()
			if strings.Count(log, `msg="copying table online"`) != 1 {
				t.Errorf("want exactly one table copied again:\n%s", log)
			}
			if r := walmirror(t, nil, append([]string{"run", "--stop-at-lsn", "now"}, args...)...); r.code != 0 {
				t.Fatalf("catch-up run exited %d:\n%s", r.code, r.stderr)
			}
			comparePgbench(t, dsn, rows)
			// A table the publication does not list is refused.
			r = walmirror(t, nil, "resync", "--source", dsn, "--slot", slot, "--table", "public.nope")
			if r.code != 1 || !strings.Contains(r.stderr, "does not publish") {
				t.Errorf("resync of an unpublished table: exit %d, %s", r.code, r.stderr)
			}
		})
	}
}
