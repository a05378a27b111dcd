package main

import (
	"os/exec"
	"strconv"
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
				if len(extra) == 0 {
					extra = []string{"--stop-on-divergence=false"} // the tests' default is true
				}
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

// TestVerifyReportsDivergedTable: verify brings the copy to its comparison's
// position first; when a change there meets a row someone wrote into the
// copy, the catch-up copies that table again (as run does), and verify
// says so and exits 1 (the copy was not equal), or 0 with --repair. Before,
// verify exited 2 at the bare collision, and --repair could not repair it.
// Every target.
func TestVerifyReportsDivergedTable(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			if r := walmirror(t, nil, "run", "--stop-at-lsn", "now", "--source", dsn, "--target", target, "--slot", slot); r.code != 0 {
				t.Fatalf("first run exited %d:\n%s", r.code, r.stderr)
			}
			for i, repair := range []bool{false, true} {
				key := strconv.Itoa(101 + i)
				appExec(t, tg.name, target, `INSERT INTO t (id, v) VALUES (`+key+`, 'by hand')`)
				mustExec(t, db, `INSERT INTO t (id, v) VALUES (`+key+`, 'source')`)
				args := []string{"verify", "--source", dsn, "--target", target}
				want := 1
				if repair {
					args, want = append(args, "--repair"), 0
				}
				r := walmirror(t, nil, args...)
				if r.code != want || !strings.Contains(r.stdout, "public.t differed from the source") {
					t.Errorf("verify (repair %v): exit %d, want %d, saying public.t was copied again:\n%s\n%s", repair, r.code, want, r.stdout, r.stderr)
				}
				if r := walmirror(t, nil, "verify", "--source", dsn, "--target", target); r.code != 0 {
					t.Errorf("verify after: exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
				}
			}
			compareRows(t, dsn, rows, "SELECT id, v FROM t")
		})
	}
}

// TestCopyColumnDropped: someone drops a column of the copy. The next
// change to that table found the target without a column its stored shape
// has, and the sink added it back as a column the source had just added:
// NULL in every row, exit 0 (helper-110, every target). The column's
// values are gone from the copy: the table is copied again online, and the
// copy ends equal to the source, that column included.
func TestCopyColumnDropped(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE r (id int PRIMARY KEY, a int, b text);
				INSERT INTO r SELECT g, g * 10, 'b' || g FROM generate_series(1, 200) g`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			run := func() result {
				return walmirror(t, nil, "run", "--stop-at-lsn", "now", "--stop-on-divergence=false", "--source", dsn, "--target", target, "--slot", slot)
			}
			if r := run(); r.code != 0 {
				t.Fatalf("first run exited %d:\n%s", r.code, r.stderr)
			}
			appExec(t, tg.name, target, `ALTER TABLE r DROP COLUMN a`)
			mustExec(t, db, `UPDATE r SET b = 'changed' WHERE id <= 5; INSERT INTO r VALUES (201, 2010, 'new')`)
			r := run()
			if r.code != 0 {
				t.Fatalf("run after the copy lost a column exited %d:\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, `lacks column \"a\"`) {
				t.Errorf("the run did not say the copy lost column a:\n%s", r.stderr)
			}
			compareRows(t, dsn, rows, "SELECT id, a, b FROM r")
		})
	}
}
