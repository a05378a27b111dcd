package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/walmirror/walmirror/internal/mirrortest"
	"github.com/walmirror/walmirror/lsn"
)

// TestPartitionAddedNotCopied: partitions added to a partitioned table
// published through its root while walmirror streams (a month's partition
// made ahead, one made and filled in one transaction, a sub-partitioned
// one, a table holding rows attached) cost a copy of the rows that may
// differ, not of the whole table: the copy of a large partitioned table
// was made again at every new partition. Rows the stream wrote through a
// new partition that then lost them with no WAL (truncated, dropped,
// detached and attached again before a poll; a table attached, written
// through the root and detached) leave the copy. Detaching a known partition
// still copies the table again, and so does a partition added while
// walmirror was stopped. walmirror stopped between the steps and streaming
// through them; it reads as a role that may read the partitioned table and
// not its partitions. Every target.
func TestPartitionAddedNotCopied(t *testing.T) {
	needServer(t)
	steps := []struct {
		sql string
		// The whole table is copied again: stopped between the steps (a
		// run does not know what the one before it wrote after its last
		// look, so a partition added copies the whole table) and streaming.
		wholeStopped, wholeStreaming bool
	}{
		{`CREATE TABLE m2 PARTITION OF m FOR VALUES FROM (200) TO (300)`, true, false},
		{`INSERT INTO m SELECT g, 'n' || g FROM generate_series(200, 219) g;
			BEGIN; CREATE TABLE m3 PARTITION OF m FOR VALUES FROM (300) TO (400);
			INSERT INTO m SELECT g, 'b' || g FROM generate_series(300, 309) g; COMMIT`, true, false},
		{`CREATE TABLE loose (id int PRIMARY KEY, v text); INSERT INTO loose SELECT g, 'l' || g FROM generate_series(400, 449) g;
			ALTER TABLE m ATTACH PARTITION loose FOR VALUES FROM (400) TO (500);
			UPDATE m SET v = 'changed' WHERE id IN (410, 1); DELETE FROM m WHERE id = 420`, true, false},
		{`BEGIN; CREATE TABLE m5 PARTITION OF m FOR VALUES FROM (500) TO (600) PARTITION BY RANGE (id);
			CREATE TABLE m51 PARTITION OF m5 FOR VALUES FROM (500) TO (550);
			CREATE TABLE m52 PARTITION OF m5 FOR VALUES FROM (550) TO (600); COMMIT;
			INSERT INTO m SELECT g, 's' || g FROM generate_series(540, 559) g`, true, false},
		// Rows written through a new partition that loses them with no WAL.
		{`CREATE TABLE m6 PARTITION OF m FOR VALUES FROM (600) TO (700);
			INSERT INTO m VALUES (650, 'x'), (651, 'y'); TRUNCATE m6; INSERT INTO m VALUES (652, 'z')`, true, false},
		{`CREATE TABLE m7 PARTITION OF m FOR VALUES FROM (700) TO (800); INSERT INTO m VALUES (750, 'x');
			DROP TABLE m7; CREATE TABLE m8 PARTITION OF m FOR VALUES FROM (800) TO (900)`, true, false},
		{`CREATE TABLE m9 PARTITION OF m FOR VALUES FROM (900) TO (1000); INSERT INTO m VALUES (950, 'x'), (951, 'y');
			ALTER TABLE m DETACH PARTITION m9; DELETE FROM m9 WHERE id = 950;
			ALTER TABLE m ATTACH PARTITION m9 FOR VALUES FROM (900) TO (1000)`, true, false},
		{`CREATE TABLE px (LIKE m); ALTER TABLE m ATTACH PARTITION px FOR VALUES FROM (1000) TO (1100);
			INSERT INTO m VALUES (1050, 'via m'); ALTER TABLE m DETACH PARTITION px`, false, false},
		{`ALTER TABLE m DETACH PARTITION m0; UPDATE m SET v = 'after' WHERE id = 150`, true, true},
		// DDL on the partitioned table's own columns in the same interval
		// (helper-132: its tracked keys were let go unchecked).
		{`ALTER TABLE m ALTER COLUMN v SET STATISTICS 5; CREATE TABLE mw PARTITION OF m FOR VALUES FROM (1200) TO (1300);
			INSERT INTO m VALUES (1250, 'w'); ALTER TABLE m DETACH PARTITION mw`, false, false},
		// Renamed in the same interval (helper-61): the tracked keys are
		// still checked.
		{`CREATE TABLE mq PARTITION OF m FOR VALUES FROM (1100) TO (1200); INSERT INTO m VALUES (1150, 'q');
			ALTER TABLE m DETACH PARTITION mq; ALTER TABLE m RENAME TO mr`, false, false},
	}
	for _, streaming := range []bool{false, true} {
		mode := "stopped"
		if streaming {
			mode = "streaming"
		}
		for _, tg := range schemaTargets {
			t.Run(mode+"/"+tg.name, func(t *testing.T) {
				ctx := context.Background()
				dsn, db := newDatabase(t, `CREATE TABLE m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
					CREATE TABLE m0 PARTITION OF m FOR VALUES FROM (0) TO (100);
					CREATE TABLE m1 PARTITION OF m FOR VALUES FROM (100) TO (200);
					INSERT INTO m SELECT g, 'v' || g FROM generate_series(0, 199) g;
					CREATE PUBLICATION pm FOR TABLE m WITH (publish_via_partition_root = true);`)
				role := "r_" + db
				mustExec(t, db, `CREATE ROLE `+role+` LOGIN REPLICATION PASSWORD 'pw'; GRANT SELECT ON m TO `+role)
				t.Cleanup(func() {
					server.Exec(ctx, db, "DROP OWNED BY "+role)
					server.Exec(ctx, "postgres", "DROP ROLE IF EXISTS "+role)
				})
				source := server.DSNFor(role, "pw", db)
				target, rows := tg.new(t)
				slot := "s_" + db
				dropSlotAtEnd(t, db, slot)
				args := []string{"--source", source, "--target", target, "--slot", slot, "--publication", "pm", "--poll-interval", "200ms"}
				runNow(t, source, target, slot, "--publication", "pm")
				for i, s := range steps {
					var log string
					bounded := func() {
						t.Helper()
						r := walmirror(t, nil, append([]string{"run", "--stop-at-lsn", "now"}, args...)...)
						if r.code != 0 {
							t.Fatalf("step %d: run exited %d:\n%s", i, r.code, r.stderr)
						}
						log += r.stderr
					}
					if streaming {
						stop, logPath := startRunUntil(t, "msg=streaming", append(args, "--metrics-addr", "127.0.0.1:0", "--log-level", "debug")...)
						waitPolled(t, dsn, logPath, stop) // the first poll, which tracking needs
						mustExec(t, db, s.sql)
						waitPolled(t, dsn, logPath, stop)
						log = stop()
						bounded() // sees the poll through
					} else {
						mustExec(t, db, s.sql)
						bounded()
					}
					table := "m"
					if strings.Contains(s.sql, "RENAME TO mr") {
						table = "mr"
					}
					compareRows(t, dsn, rows, "SELECT id, v FROM "+table)
					want := s.wholeStopped
					if streaming {
						want = s.wholeStreaming
					}
					if copied := strings.Contains(log, "copying table online"); copied != want {
						t.Errorf("step %d (%s): whole table copied again: %v, want %v:\n%s", i, strings.Fields(s.sql)[0], copied, want, log)
					}
				}
			})
		}
	}
}

var publicationListed = regexp.MustCompile(`msg="publication listed" at=([0-9A-F]+/[0-9A-F]+) tables=[0-9]+ copying=([0-9]+)`)

// waitPolled waits until the run logging (at debug level) to logPath has
// settled past the source's current WAL position: two publication listings
// in a row taken at or past it, with no online copy in progress and none
// begun between them, and what they wrote committed (a keepalive after
// them confirms). It fails the test with the run's log (stop) otherwise.
func waitPolled(t *testing.T, dsn, logPath string, stop func() string) {
	t.Helper()
	at, err := mirrortest.SourceRows(context.Background(), dsn, "SELECT pg_current_wal_lsn()::text")
	if err != nil || len(at) != 1 {
		t.Fatalf("current WAL position: %q %v", at, err)
	}
	want, err := lsn.Parse(at[0])
	if err != nil {
		t.Fatal(err)
	}
	settled := func(out []byte, m []int) bool {
		l, err := lsn.Parse(string(out[m[2]:m[3]]))
		return err == nil && l >= want && string(out[m[4]:m[5]]) == "0"
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := os.ReadFile(logPath)
		ms := publicationListed.FindAllSubmatchIndex(out, -1)
		for i := 1; i < len(ms); i++ {
			if settled(out, ms[i-1]) && settled(out, ms[i]) && !bytes.Contains(out[ms[i-1][1]:ms[i][0]], []byte(`msg="copying`)) &&
				bytes.Contains(out[ms[i][1]:], []byte(`msg="keepalive: confirm"`)) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("walmirror did not settle past %s:\n%s", want, stop())
}

// TestPartitionAddedTimeKey: the same for the usual layout of a table
// partitioned by time, whose key holds a timestamptz (helper-59: such keys
// copied the whole table at every new month). Keys the stream gives are
// matched by their text, which the source sessions make the same.
func TestPartitionAddedTimeKey(t *testing.T) {
	needServer(t)
	steps := []string{
		`CREATE TABLE e2 PARTITION OF e FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')`,
		`INSERT INTO e SELECT g, '2026-02-01'::timestamptz + g * interval '1 hour', 'f' || g FROM generate_series(1, 30) g;
			CREATE TABLE e3 (LIKE e); INSERT INTO e3 SELECT g, '2026-03-01 00:00:00.5+02'::timestamptz + g * interval '1 day', 'm' || g FROM generate_series(1, 20) g;
			ALTER TABLE e ATTACH PARTITION e3 FOR VALUES FROM ('2026-03-01') TO ('2026-04-01');
			UPDATE e SET v = 'changed' WHERE id = 5`,
		`CREATE TABLE e4 PARTITION OF e FOR VALUES FROM ('2026-04-01') TO ('2026-05-01');
			INSERT INTO e VALUES (100, '2026-04-02 10:00+00', 'x'); TRUNCATE e4; DELETE FROM e WHERE id = 3`,
	}
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE e (id bigint, at timestamptz, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
				CREATE TABLE e1 PARTITION OF e FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
				INSERT INTO e SELECT g, '2026-01-01'::timestamptz + g * interval '1 hour', 'v' || g FROM generate_series(1, 200) g;
				CREATE PUBLICATION pe FOR TABLE e WITH (publish_via_partition_root = true);`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"--source", dsn, "--target", target, "--slot", slot, "--publication", "pe", "--poll-interval", "200ms"}
			runNow(t, dsn, target, slot, "--publication", "pe")
			for i, sql := range steps {
				stop, logPath := startRunUntil(t, "msg=streaming", append(args, "--metrics-addr", "127.0.0.1:0", "--log-level", "debug")...)
				waitPolled(t, dsn, logPath, stop)
				mustExec(t, db, sql)
				waitPolled(t, dsn, logPath, stop)
				log := stop()
				compareRows(t, dsn, rows, "SELECT id, v FROM e") // at is in the key: each row once
				if strings.Contains(log, "copying table online") {
					t.Errorf("step %d: the whole table was copied again:\n%s", i, log)
				}
			}
		})
	}
}

// TestViaRootToggled: publish_via_partition_root switched off, partitions
// changed, switched on again and changed, while walmirror is stopped. On
// PostgreSQL 14 the server then sends the root's changes without ever
// describing the root in that session, and every run stopped at them
// ("before its Relation message (protocol violation)", helper-93): the run
// now stores what came before and reconnects before that transaction.
// Every target, every version (the reconnect happens on 14).
func TestViaRootToggled(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE root (id int, k int, v text, PRIMARY KEY (id, k)) PARTITION BY RANGE (k);
				CREATE TABLE p1 PARTITION OF root FOR VALUES FROM (0) TO (100);
				CREATE TABLE p2 PARTITION OF root FOR VALUES FROM (100) TO (200);
				INSERT INTO root SELECT g, g % 200, 'r' || g FROM generate_series(1, 400) g;
				CREATE PUBLICATION pub FOR ALL TABLES WITH (publish_via_partition_root = true);`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() string { t.Helper(); return runNowLog(t, dsn, target, slot, "--publication", "pub") }
			run()
			mustExec(t, db, `ALTER PUBLICATION pub SET (publish_via_partition_root = false)`)
			mustExec(t, db, `UPDATE root SET v = 'w' WHERE id % 7 = 0`)
			run()
			mustExec(t, db, `UPDATE root SET v = 'x' WHERE id % 5 = 0`)
			mustExec(t, db, `ALTER PUBLICATION pub SET (publish_via_partition_root = true)`)
			mustExec(t, db, `UPDATE root SET v = 'y' WHERE id % 11 = 0`)
			log := run()
			if server.Major() == 14 && !strings.Contains(log, "reconnecting before its transaction") {
				t.Logf("PostgreSQL 14 described the root this time (no reconnect):\n%s", log)
			}
			mustExec(t, db, `UPDATE root SET v = 'z' WHERE id % 13 = 0`)
			run()
			compareRows(t, dsn, rows, "SELECT id, k, v FROM root")
		})
	}
}
