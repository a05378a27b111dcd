package main

import (
	"strings"
	"testing"
)

// TestPartitionAddedNotCopied: partitions added to a partitioned table
// published through its root (a new month's partition made ahead, one made
// and filled in one transaction, a sub-partitioned one, a table holding rows
// attached) cost a copy of their own rows only, not of the whole table:
// the copy of a large partitioned table was made again at every new
// partition. Detaching one still copies the table again (its rows must
// leave the copy). Stopped between the steps and streaming, every target.
func TestPartitionAddedNotCopied(t *testing.T) {
	needServer(t)
	steps := []struct {
		sql       string
		wholeCopy bool
	}{
		{`CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (200) TO (300)`, false},
		{`INSERT INTO m SELECT g, 'n' || g FROM generate_series(200, 219) g;
			BEGIN; CREATE TABLE m3 PARTITION OF m FOR VALUES FROM (300) TO (400);
			INSERT INTO m SELECT g, 'b' || g FROM generate_series(300, 309) g; COMMIT`, false},
		{`CREATE TABLE loose (id int PRIMARY KEY, v text); INSERT INTO loose SELECT g, 'l' || g FROM generate_series(400, 449) g;
			ALTER TABLE m ATTACH PARTITION loose FOR VALUES FROM (400) TO (500);
			UPDATE m SET v = 'changed' WHERE id IN (410, 1); DELETE FROM m WHERE id = 420`, false},
		{`BEGIN; CREATE TABLE m5 PARTITION OF m FOR VALUES FROM (500) TO (600) PARTITION BY RANGE (id);
			CREATE TABLE m51 PARTITION OF m5 FOR VALUES FROM (500) TO (550);
			CREATE TABLE m52 PARTITION OF m5 FOR VALUES FROM (550) TO (600); COMMIT;
			INSERT INTO m SELECT g, 's' || g FROM generate_series(540, 559) g`, false},
		{`ALTER TABLE m DETACH PARTITION m0; UPDATE m SET v = 'after' WHERE id = 150`, true},
	}
	for _, streaming := range []bool{false, true} {
		mode := "stopped"
		if streaming {
			mode = "streaming"
		}
		for _, tg := range schemaTargets {
			t.Run(mode+"/"+tg.name, func(t *testing.T) {
				dsn, db := newDatabase(t, `CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
					CREATE TABLE m0 PARTITION OF m FOR VALUES FROM (0) TO (100);
					CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (100) TO (200);
					INSERT INTO m SELECT g, 'v' || g FROM generate_series(0, 199) g;
					CREATE PUBLICATION pm FOR TABLE m WITH (publish_via_partition_root = true)`)
				target, rows := tg.new(t)
				slot := "s_" + db
				dropSlotAtEnd(t, db, slot)
				args := []string{"--source", dsn, "--target", target, "--slot", slot, "--publication", "pm", "--poll-interval", "200ms"}
				runNow(t, dsn, target, slot, "--publication", "pm")
				for i, s := range steps {
					var log string
					if streaming {
						stop, logPath := startRunUntil(t, "msg=streaming", append(args, "--metrics-addr", "127.0.0.1:0")...)
						mustExec(t, db, s.sql)
						waitCurrent(t, dsn, logPath, stop)
						log = stop()
						// A bounded run sees the poll through.
						r := walmirror(t, nil, append([]string{"run", "--stop-at-lsn", "now"}, args...)...)
						if r.code != 0 {
							t.Fatalf("step %d: run exited %d:\n%s", i, r.code, r.stderr)
						}
						log += r.stderr
					} else {
						mustExec(t, db, s.sql)
						r := walmirror(t, nil, append([]string{"run", "--stop-at-lsn", "now"}, args...)...)
						if r.code != 0 {
							t.Fatalf("step %d: run exited %d:\n%s", i, r.code, r.stderr)
						}
						log = r.stderr
					}
					compareRows(t, dsn, rows, "SELECT id, v FROM m")
					if copied := strings.Contains(log, "copying table online"); copied != s.wholeCopy {
						t.Errorf("step %d (%s): whole table copied again: %v, want %v:\n%s", i, strings.Fields(s.sql)[0], copied, s.wholeCopy, log)
					}
				}
			})
		}
	}
}
