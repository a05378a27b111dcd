package main

import (
	"strings"
	"testing"
)

// TestPartitionAttachedDetachedUnseen: a partition with rows attached,
// updated through the root and detached again while walmirror was stopped
// (helper-112, cron refreshes): the copy never had its rows, so the updates
// find them missing. The table is copied again, and the warning no longer
// blames only someone writing to the copy; with --stop-on-divergence the
// error says so too. Every target.
func TestPartitionAttachedDetachedUnseen(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE part (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
				CREATE TABLE part1 PARTITION OF part FOR VALUES FROM (0) TO (1000);
				INSERT INTO part SELECT g, g % 1000, 'x' FROM generate_series(1, 100) g;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			runNow(t, dsn, target, slot)
			mustExec(t, db, `CREATE TABLE part2 (LIKE part INCLUDING ALL); INSERT INTO part2 SELECT g, 1000 + g, 'y' FROM generate_series(1, 20) g;
				ALTER TABLE part ATTACH PARTITION part2 FOR VALUES FROM (1000) TO (2000);
				UPDATE part SET v = v || '!' WHERE id % 5 = 0;
				ALTER TABLE part DETACH PARTITION part2; DROP TABLE part2;`)
			// The tests' runs stop at a divergence (TestMain).
			r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
			if r.code != 0 && !strings.Contains(r.stderr, "not necessarily someone else's write: a partition attached and detached") {
				t.Fatalf("--stop-on-divergence: exit %d without naming the partition:\n%s", r.code, r.stderr)
			}
			r = walmirror(t, []string{"WALMIRROR_STOP_ON_DIVERGENCE=false"}, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
			if r.code != 0 || strings.Contains(r.stderr, "differs from the source") && !strings.Contains(r.stderr, "a partition attached and detached") {
				t.Errorf("exit %d; the warning should name the partition:\n%s", r.code, r.stderr)
			}
			compareRows(t, dsn, rows, `SELECT id, k, v FROM part`)
		})
	}
}
