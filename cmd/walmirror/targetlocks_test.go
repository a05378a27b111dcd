package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/internal/mirrortest"
	"github.com/walmirror/walmirror/testenv"
)

// TestTargetLockTableSmall: an initial copy of more tables than a
// PostgreSQL target's lock table holds in one transaction. This one failed
// with "out of shared memory" at its 134th table (and 600 tables in a
// larger lock table failed so also with --initial-copy chunked, whose first
// transaction created every table, though the error's remedy named
// chunked). auto now copies the tables past the target's budget online,
// creating each in its first chunk.
func TestTargetLockTableSmall(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	const n = 150
	dsn, db := newDatabase(t, fmt.Sprintf(`DO $$ BEGIN FOR i IN 1..%d LOOP
		EXECUTE format('CREATE TABLE t%%s (id int PRIMARY KEY, b text); INSERT INTO t%%s SELECT g, md5(g::text) FROM generate_series(1, 3) g', i, i);
		END LOOP; END $$`, n))
	// A lock table of 10 × (10 + 1 + 1) slots: the background processes
	// count too (with max_connections 20 and the defaults, 100 tables fit).
	tsrv := testenv.StartT(t, testenv.Options{Settings: map[string]string{"max_locks_per_transaction": "10", "max_connections": "10",
		"autovacuum_max_workers": "1", "max_worker_processes": "0", "max_wal_senders": "0"}})
	tdb, err := tsrv.CreateDatabase(ctx, "target")
	if err != nil {
		t.Fatal(err)
	}
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	r := walmirror(t, nil, "run", "--source", dsn, "--target", tsrv.DSN(tdb), "--slot", slot, "--stop-at-lsn", "now")
	if r.code != 0 {
		t.Fatalf("run: exit %d\n%s", r.code, r.stderr[max(0, len(r.stderr)-3000):])
	}
	if !strings.Contains(r.stderr, "initial copy will be made in chunks") {
		t.Errorf("the copy was not made in chunks:\n%s", r.stderr)
	}
	queries := make([]string, n)
	for i := range queries {
		queries[i] = fmt.Sprintf("SELECT id, b FROM t%d", i+1)
	}
	compareRows(t, dsn, func(q string) ([]string, error) { return mirrortest.SourceRows(ctx, tsrv.DSN(tdb), q) }, queries...)
}
