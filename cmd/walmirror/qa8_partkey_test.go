package main

import (
	"strings"
	"testing"
)

// TestPartitionKeysNotRoots: a partitioned table without a primary key
// whose partitions have their own, published through its root (the
// publication walmirror creates). PostgreSQL then sends a delete with only
// the partition's key and an update with no old row; matched as a whole
// row, the delete removed nothing (every target, PG17, exit 0) and the
// update stopped every run blaming the table's replica identity. Such a
// change now marks the table diverged: it is copied again, and the log
// says what to set on the source. So also for a root with REPLICA
// IDENTITY FULL over such partitions, whose deletes came as whole old rows
// holding only the partition's key (matched as such: nothing deleted,
// exit 0): the catalog tells (Attribute.PartialOld).
func TestPartitionKeysNotRoots(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE ev (id int NOT NULL, ts date NOT NULL, v text) PARTITION BY RANGE (ts);
				CREATE TABLE ev_1 PARTITION OF ev FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
				CREATE TABLE ev_2 PARTITION OF ev FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
				ALTER TABLE ev_1 ADD PRIMARY KEY (id); ALTER TABLE ev_2 ADD PRIMARY KEY (id);
				INSERT INTO ev SELECT g, date '2024-06-01' + g * 10, 'v' || g FROM generate_series(1, 40) g;
				CREATE TABLE ef (id int NOT NULL, ts date NOT NULL, v text) PARTITION BY RANGE (ts);
				ALTER TABLE ef REPLICA IDENTITY FULL;
				CREATE TABLE ef_1 PARTITION OF ef FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
				CREATE TABLE ef_2 PARTITION OF ef FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
				ALTER TABLE ef_1 ADD PRIMARY KEY (id); ALTER TABLE ef_2 ADD PRIMARY KEY (id);
				INSERT INTO ef SELECT * FROM ev;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() result {
				t.Helper()
				r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now", "--stop-on-divergence=false")
				if r.code != 0 {
					t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
				}
				return r
			}
			run()
			mustExec(t, db, `DELETE FROM ev WHERE id IN (2, 31); DELETE FROM ef WHERE id IN (2, 31)`)
			r := run()
			if !strings.Contains(r.stderr, "REPLICA IDENTITY FULL on each partition") {
				t.Errorf("the log does not say what to set on the source:\n%s", r.stderr)
			}
			compareRows(t, dsn, rows, "SELECT id, v FROM ev ORDER BY id", "SELECT id, v FROM ef ORDER BY id")
			mustExec(t, db, `UPDATE ev SET v = 'u' WHERE id IN (1, 30); DELETE FROM ev WHERE id = 3;
				UPDATE ef SET v = 'u' WHERE id IN (1, 30); DELETE FROM ef WHERE id = 3`)
			run()
			compareRows(t, dsn, rows, "SELECT id, v FROM ev ORDER BY id", "SELECT id, v FROM ef ORDER BY id")
		})
	}
}
