package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walmirror/walmirror/internal/mirrortest"
)

// TestTypeChangesFollowed: column type changes a copy must follow, each
// with a change to the table after it (so its Relation message arrives
// before the publication poll) or without one, every target, walmirror
// stopped or streaming. Before, SQLite stopped at a change between
// timestamp and timestamptz (PostgreSQL reads the values as UTC without
// rewriting the table when the session's zone is UTC, as a Rails or Django
// migration does on most servers) and at a rewrite it copies again anyway
// (bigint to numeric(20,2)); and kept -1 where the column became oid and
// PostgreSQL reads 4294967295 (int4 and oid are binary coercible), exit 0.
func TestTypeChangesFollowed(t *testing.T) {
	needServer(t)
	eachTargetAndMode(t, func(t *testing.T, target schemaTarget, streaming bool) {
		dsn, db := newDatabase(t, `
			CREATE TABLE ev (id int PRIMARY KEY, at timestamp, t2 timestamptz, x int4, o oid);
			INSERT INTO ev VALUES (1, '2024-01-01 10:00:00', '2024-01-01 10:00:00.5+00', -1, 4294967295),
				(2, '1999-12-31 23:59:59.999999', '2024-07-01 10:00:00+02', 7, 7),
				(3, '0044-03-15 12:00:00 BC', 'infinity', NULL, 2147483648),
				(4, '-infinity', '0044-03-15 12:00:00+00 BC', -2147483648, NULL);
			CREATE TABLE re (id int PRIMARY KEY, bal bigint, j int);
			INSERT INTO re SELECT g, g, g FROM generate_series(1, 5) g;`)
		tgt, _ := target.new(t)
		f := &follower{t: t, dsn: dsn, db: db, slot: "s_" + db, target: tgt, streaming: streaming}
		dropSlotAtEnd(t, db, f.slot)
		verify := func() { t.Helper(); mustVerify(t, dsn, tgt) }
		f.catchUp()
		// No rewrite (the session's zone is UTC; int4 and oid are binary
		// coercible), a change after each.
		f.exec(`SET timezone = 'UTC';
			ALTER TABLE ev ALTER COLUMN at TYPE timestamptz, ALTER COLUMN t2 TYPE timestamp;
			ALTER TABLE ev ALTER COLUMN x TYPE oid, ALTER COLUMN o TYPE int4;
			INSERT INTO ev VALUES (5, '2024-03-03 03:03:03+00', '2024-03-03 03:03:03', 5, -5);`)
		f.catchUp()
		verify()
		// A rewrite with no change after it: copied again online (also by
		// a run that starts after it: the table, described at the first
		// chunk's watermark, is reshaped at that commit, before the chunk
		// that empties it, which stopped SQLite copies).
		f.exec(`ALTER TABLE re ALTER COLUMN bal TYPE numeric(20,2)`)
		f.catchUp()
		verify()
		// A rewrite with a change after it (another session's zone).
		f.exec(`SET timezone = 'Asia/Tokyo';
			ALTER TABLE ev ALTER COLUMN t2 TYPE timestamptz;
			UPDATE ev SET x = 9 WHERE id = 2;`)
		f.catchUp()
		verify()
		// Rewrites that change a column's type class, each with a change
		// after it, in the run that saw the table before (the first
		// UPDATE) and in one that did not (the second step): SQLite
		// stopped ("cannot convert its stored values exactly"), and the
		// PostgreSQL target kept int where jsonb came, then stopped at the
		// first jsonb value. The copy starts at the Relation message now.
		f.exec(`UPDATE re SET bal = bal + 1 WHERE id = 1;
			ALTER TABLE re ALTER COLUMN bal TYPE text USING 'b' || bal;
			UPDATE re SET bal = 'changed' WHERE id = 2;
			ALTER TABLE re ALTER COLUMN j TYPE jsonb USING jsonb_build_object('j', j);
			UPDATE re SET j = '{"a": 1}' WHERE id = 3;`)
		f.catchUp()
		verify()
		f.exec(`ALTER TABLE re ALTER COLUMN j TYPE int USING coalesce((j->>'j')::int, 0) + coalesce((j->>'a')::int, 0);
			UPDATE re SET j = -1 WHERE id = 4;`)
		f.catchUp()
		verify()
	})
}

// TestTypeChangesWithoutRewrite: type changes PostgreSQL makes without
// rewriting the table (the stored bytes stay), each with a change after
// it, every target, walmirror stopped or streaming. SQLite stopped at
// each ("cannot convert its stored values exactly", helper-49): to citext
// and more fractional digits keep every text form and are followed in
// place; cidr to inet is one it does not convert, and the table is
// copied again online instead.
func TestTypeChangesWithoutRewrite(t *testing.T) {
	needServer(t)
	eachTargetAndMode(t, func(t *testing.T, target schemaTarget, streaming bool) {
		dsn, db := newDatabase(t, `CREATE EXTENSION citext;
			CREATE TABLE lt (id int PRIMARY KEY, v varchar(10), ts timestamp(0), tt time(2), n numeric(8,1), net cidr);
			INSERT INTO lt VALUES (1, 'Abc', '2024-01-01 10:00:01', '10:00:00.25', 1.5, '10.0.0.0/8'),
				(2, NULL, 'infinity', NULL, NULL, NULL), (3, 'x y', '0044-03-15 12:00:00 BC', '23:59:59.99', -7, '192.168.1.0/24');`)
		tgt, _ := target.new(t)
		f := &follower{t: t, dsn: dsn, db: db, slot: "s_" + db, target: tgt, streaming: streaming}
		dropSlotAtEnd(t, db, f.slot)
		f.catchUp()
		f.exec(`ALTER TABLE lt ALTER COLUMN v TYPE citext, ALTER COLUMN ts TYPE timestamp(3), ALTER COLUMN tt TYPE time;
			INSERT INTO lt VALUES (4, 'NEW', '2024-05-05 05:05:05.123', '01:02:03.456789', 4.5, '172.16.0.0/12');`)
		f.catchUp()
		mustVerify(t, dsn, tgt)
		// A rewrite (the numeric's scale): copied again by retyped.
		f.exec(`ALTER TABLE lt ALTER COLUMN v TYPE varchar(20), ALTER COLUMN n TYPE numeric(9,3);
			INSERT INTO lt VALUES (5, 'five', NULL, NULL, 5.125, '10.1.0.0/16'); UPDATE lt SET v = 'upd' WHERE id = 1;`)
		f.catchUp()
		mustVerify(t, dsn, tgt)
		// No rewrite, and SQLite does not convert it: copied again by
		// inconvertible (SQLite stopped here).
		f.exec(`ALTER TABLE lt ALTER COLUMN net TYPE inet; UPDATE lt SET v = 'net' WHERE id = 2;`)
		f.catchUp()
		mustVerify(t, dsn, tgt)
		f.exec(`INSERT INTO lt VALUES (6, 'six', NULL, NULL, 6, '10.1.2.4')`)
		f.catchUp()
		mustVerify(t, dsn, tgt)
	})
}

// TestRewriteCopiedOnce: a column added with a volatile default rewrites
// the table, with values the stream does not carry: the table is copied
// again online when the stream describes the new column, and the listing
// that follows sees the rewritten data files that copy already read. It
// copied the table a second time (helper-109, also for a stored generated
// column on 18, which this test adds there). Once now, and the copy is
// equal.
func TestRewriteCopiedOnce(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE w (id int PRIMARY KEY, v text);
		INSERT INTO w SELECT g, 'v' || g FROM generate_series(1, 300) g`)
	path := filepath.Join(t.TempDir(), "copy.db")
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	// Listings far enough apart that the stream describes the column first.
	stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", "sqlite:"+path, "--slot", slot, "--poll-interval", "3s")
	add := `ALTER TABLE w ADD COLUMN u text DEFAULT md5(random()::text)`
	if server.Major() >= 18 {
		// Published (publish_generated_columns = stored), computed by a rewrite.
		add = `ALTER TABLE w ADD COLUMN u int GENERATED ALWAYS AS (id * 3) STORED`
	}
	mustExec(t, db, add+`; UPDATE w SET v = 'changed' WHERE id = 1`)
	waitForLog(t, logPath, `msg="table copied online"`)
	time.Sleep(4 * time.Second) // a listing
	mustExec(t, db, `UPDATE w SET v = 'later' WHERE id = 2`)
	time.Sleep(time.Second)
	out := stop()
	if n := strings.Count(out, `msg="table copied online"`); n != 1 {
		t.Errorf("the table was copied %d times, want once:\n%s", n, out)
	}
	compareRows(t, dsn, func(q string) ([]string, error) { return mirrortest.SQLiteRows(context.Background(), path, q) }, "SELECT id, v, u FROM w")
}

// TestKeyRewrittenInPlace: a rewrite that changes a key's values and not
// its type (ALTER COLUMN ... TYPE int USING, or on PostgreSQL 18 SET
// EXPRESSION of a published generated key), with changes by the new keys
// in the same transaction and after it, while walmirror streams: those
// changes find the copy's rows under the old keys, which the source's own
// rewrite explains. The table is copied again online, and the run does not
// stop under --stop-on-divergence (every test run sets it) nor blame
// someone else. Before, it stopped at every start (helper-134).
func TestKeyRewrittenInPlace(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE gk (id int PRIMARY KEY, v text);
				INSERT INTO gk SELECT g, 'v' || g FROM generate_series(1, 50) g;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			runNow(t, dsn, target, slot)
			stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", target, "--slot", slot, "--progress-interval", "0")
			mustExec(t, db, `UPDATE gk SET v = 'u' WHERE id = 1`)
			mustExec(t, db, `BEGIN; UPDATE gk SET v = 'before' WHERE id = 2;
				ALTER TABLE gk ALTER COLUMN id TYPE int USING id + 1000;
				UPDATE gk SET v = 'after' WHERE id = 1003; DELETE FROM gk WHERE id = 1004; COMMIT;`)
			mustExec(t, db, `UPDATE gk SET id = 5000 WHERE id = 1005; DELETE FROM gk WHERE id = 1006`)
			waitForLog(t, logPath, `msg="table copied online"`)
			out := stop()
			if strings.Contains(out, "someone else wrote to it") || strings.Contains(out, "level=ERROR") {
				t.Errorf("a rewrite of the key's values was blamed on someone else, or stopped the run:\n%s", out)
			}
			// "table copied online" is logged at the chunk's write; a run
			// stopped before its commit resumes the copy.
			if r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now"); r.code != 0 {
				t.Errorf("the next run exited %d:\n%s", r.code, r.stderr)
			}
			compareRows(t, dsn, rows, "SELECT id, v FROM gk")
		})
	}
}

// TestVacuumFullExcusesNothing: a row deleted from the copy behind
// walmirror's back, then VACUUM FULL and an update of that row on the
// source: the data files changed, but no column was rewritten, so under
// --stop-on-divergence (every test run sets it) the run stops, naming the
// divergence, as without the VACUUM FULL (helper-136: it was excused as a
// rewrite and the table quietly copied again).
func TestVacuumFullExcusesNothing(t *testing.T) {
	needServer(t)
	for _, c := range verifyCopies() {
		if c.name != "postgres" {
			continue // SQLite upserts a whole updated row; no other process may write a DuckDB file
		}
		// A column added after the VACUUM FULL writes the table's pg_class
		// row and a column's pg_attribute row in one transaction too: a new
		// column, which excuses nothing (helper-137).
		for _, then := range []string{"", `ALTER TABLE t ADD COLUMN x int`} {
			dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 20) g;`)
			target, tamper := c.make(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			runNow(t, dsn, target, slot)
			tamper(`DELETE FROM ` + c.table("t") + ` WHERE id = 1`)
			mustExec(t, db, `VACUUM FULL t`)
			if then != "" {
				mustExec(t, db, then)
			}
			mustExec(t, db, `UPDATE t SET v = 'changed' WHERE id = 1`)
			r := walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
			if r.code != 1 || !strings.Contains(r.stderr, "missing from the target") {
				t.Errorf("run after VACUUM FULL (then %q) over a damaged copy exited %d, want 1 naming the divergence:\n%s", then, r.code, r.stderr)
			}
		}
	}
}
