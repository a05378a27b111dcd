package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/testenv"
)

// TestDivergedTableCopiedAgain: someone writes to the copy behind
// walmirror's back (a row inserted, one deleted, one changed), then the
// source inserts the key the copy already has and updates the row the copy
// lost. Before, every run stopped at the change with a bare duplicate-key
// error (PostgreSQL, SQLite) or a divergence error (DuckDB), and neither
// resync --table nor verify --repair could get past it: their requests
// stand after the failing change. Now the run copies that table again
// online from the stored position and ends equal to the source, the
// silently changed row included; --stop-on-divergence stops instead, naming
// the way on. Every target.
func TestDivergedTableCopiedAgain(t *testing.T) {
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
			args := []string{"--source", dsn, "--target", target, "--slot", slot, "--copy-chunk-rows", "20000"}
			run := func(extra ...string) result {
				return walmirror(t, nil, append(append([]string{"run", "--stop-at-lsn", "now"}, extra...), args...)...)
			}
			if r := run(); r.code != 0 {
				t.Fatalf("first run exited %d:\n%s", r.code, r.stderr)
			}
			appExec(t, tg.name, target, `INSERT INTO pgbench_accounts (aid, bid, abalance, filler) VALUES (100001, 1, 5, 'by hand');
				DELETE FROM pgbench_accounts WHERE aid = 5; UPDATE pgbench_accounts SET abalance = -1 WHERE aid = 7`)
			mustExec(t, db, `INSERT INTO pgbench_accounts (aid, bid, abalance, filler) VALUES (100001, 1, 0, 'source');
				UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid IN (4, 5, 6)`)
			if out, err := exec.Command(pgbench, "-c", "2", "-t", "200", "-n", dsn).CombinedOutput(); err != nil {
				t.Fatalf("pgbench: %v\n%s", err, out)
			}
			r := run()
			if r.code != 0 {
				t.Fatalf("run after the copy was written to exited %d:\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, "the copy of a table differs from the source") || !strings.Contains(r.stderr, "table=public.pgbench_accounts") {
				t.Errorf("the run did not say which table it copied again:\n%s", r.stderr)
			}
			comparePgbench(t, dsn, rows)

			// Told to stop, it stops, and says how to go on.
			appExec(t, tg.name, target, `INSERT INTO pgbench_accounts (aid, bid, abalance, filler) VALUES (100002, 1, 5, 'by hand')`)
			mustExec(t, db, `INSERT INTO pgbench_accounts (aid, bid, abalance, filler) VALUES (100002, 1, 0, 'source')`)
			r = run("--stop-on-divergence")
			if r.code != 1 || !strings.Contains(r.stderr, "already") || !strings.Contains(r.stderr, "without --stop-on-divergence") {
				t.Errorf("--stop-on-divergence: exit %d, want 1 naming the row and the way on:\n%s", r.code, r.stderr)
			}
			if r := run(); r.code != 0 {
				t.Fatalf("run after the stop exited %d:\n%s", r.code, r.stderr)
			}
			comparePgbench(t, dsn, rows)
		})
	}
}
