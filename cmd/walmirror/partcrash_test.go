package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestPartitionChangesCrash: walmirror killed at the fault points of its
// online copies, after commits and at random, while the source keeps adding
// partitions to a partitioned table published through its root (empty,
// with rows, attached with rows), writes through the root, truncates and
// detaches partitions it wrote through, and updates rows; the copy ends
// equal, every target. The keys tracked since the last poll live only in
// memory: a run after a kill starts from the stored signature, and what
// the killed run wrote after its last poll copies the whole table again
// when partitions were added.
func TestPartitionChangesCrash(t *testing.T) {
	needServer(t)
	bin := faultBinary(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			dsn, db := newDatabase(t, `CREATE TABLE m (id bigint PRIMARY KEY, v text) PARTITION BY RANGE (id);
				CREATE TABLE m0 PARTITION OF m FOR VALUES FROM (0) TO (1000);
				INSERT INTO m SELECT g, 'v' || g FROM generate_series(0, 999) g;
				CREATE PUBLICATION pm FOR TABLE m WITH (publish_via_partition_root = true);`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"run", "--source", dsn, "--target", target, "--slot", slot, "--publication", "pm",
				"--poll-interval", "100ms", "--commit-rows", "20"}
			if r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...); r.code != 0 {
				t.Fatalf("first run exited %d:\n%s", r.code, r.stderr)
			}
			// PostgreSQL 14 reconnects after every attach or detach (see
			// apply/partitions.go), and an online copy's chunk waits until
			// the session decodes the links its snapshot shows: with a new
			// partition every 40 ms (or 400 ms) no chunk was read within
			// 30 s, each session outlived by a link change. Partitions come
			// less often there: every 3 s (at 1.5 s, a loaded machine's
			// reconnects took 1-1.5 s and no chunk was read in 30 s).
			pause := 40 * time.Millisecond
			if server.Major() < 15 {
				pause = 3 * time.Second
			}
			loadCtx, cancel := context.WithCancel(ctx)
			loaded := make(chan error, 1)
			go func() {
				defer close(loaded)
				for k := 1; loadCtx.Err() == nil; k++ {
					lo := k * 1000
					sql := fmt.Sprintf(`CREATE TABLE p%[1]d PARTITION OF m FOR VALUES FROM (%[2]d) TO (%[3]d);
						INSERT INTO m SELECT g, 'r' || g FROM generate_series(%[2]d, %[2]d + 20) g;
						UPDATE m SET v = 'u%[1]d' WHERE id IN (%[2]d - 1000, 5);
						CREATE TABLE x%[1]d (LIKE m); INSERT INTO x%[1]d SELECT g, 'x' || g FROM generate_series(%[3]d, %[3]d + 9) g;
						ALTER TABLE m ATTACH PARTITION x%[1]d FOR VALUES FROM (%[3]d) TO (%[4]d);`, k, lo, lo+500, lo+1000)
					switch k % 4 {
					case 1:
						sql += fmt.Sprintf(`TRUNCATE p%d;`, k)
					case 2:
						sql += fmt.Sprintf(`ALTER TABLE m DETACH PARTITION p%d;`, k)
					case 3:
						sql += fmt.Sprintf(`DELETE FROM m WHERE id = %d;`, lo+3)
					}
					if err := server.Exec(loadCtx, db, sql); err != nil {
						if loadCtx.Err() == nil {
							loaded <- err
						}
						return
					}
					time.Sleep(pause)
				}
			}()
			var logs bytes.Buffer
			for _, p := range []string{"apply.after-commit:3", "backfill.chunk-read:1", "backfill.watermark-written:1", "apply.before-commit:4", "backfill.chunk-read:2"} {
				logs.WriteString(runToFault(t, bin, args, p))
			}
			for i := range 4 {
				logs.WriteString(runKilledAfter(t, bin, args, time.Duration(300+i*250)*time.Millisecond))
			}
			cancel()
			if err := <-loaded; err != nil {
				t.Fatalf("load: %v", err)
			}
			r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...)
			if r.code != 0 {
				t.Fatalf("final run exited %d:\n%s", r.code, r.stderr)
			}
			logs.WriteString(r.stderr)
			compareRows(t, dsn, rows, "SELECT id, v FROM m")
			if t.Failed() {
				t.Logf("the runs' logs:\n%s", logs.String())
			}
		})
	}
}

// TestPartitionTrackedThroughResumedCopy: a run that resumes an online copy
// of a partitioned table left by a killed run still tracks what the stream
// writes to it: a partition made, written through the root and detached in
// one transaction while walmirror was stopped took its row out of the copy
// (helper-61: the resumed copy turned tracking off, exit 0 with the row
// still there).
func TestPartitionTrackedThroughResumedCopy(t *testing.T) {
	needServer(t)
	bin := faultBinary(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE m (id bigint PRIMARY KEY, v text) PARTITION BY RANGE (id);
				CREATE TABLE m0 PARTITION OF m FOR VALUES FROM (0) TO (100000);
				INSERT INTO m SELECT g, 'v' || g FROM generate_series(0, 9999) g;
				CREATE PUBLICATION pm FOR TABLE m WITH (publish_via_partition_root = true);`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"run", "--source", dsn, "--target", target, "--slot", slot, "--publication", "pm",
				"--copy-chunk-rows", "1000", "--copy-chunk-time", "-1s"}
			if r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...); r.code != 0 {
				t.Fatalf("first run exited %d:\n%s", r.code, r.stderr)
			}
			if r := walmirror(t, nil, "resync", "--source", dsn, "--target", target, "--table", "public.m", "--publication", "pm"); r.code != 0 {
				t.Fatalf("resync exited %d:\n%s", r.code, r.stderr)
			}
			runToFault(t, bin, args, "backfill.chunk-read:4")
			mustExec(t, db, `BEGIN; CREATE TABLE mneg PARTITION OF m FOR VALUES FROM (-1000) TO (0);
				INSERT INTO m VALUES (-5, 'ghost'); ALTER TABLE m DETACH PARTITION mneg; COMMIT;
				UPDATE m SET v = 'after' WHERE id = 7`)
			r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...)
			if r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, "resuming online copy") {
				t.Errorf("the run did not resume the copy:\n%s", r.stderr)
			}
			compareRows(t, dsn, rows, "SELECT id, v FROM m")
		})
	}
}
