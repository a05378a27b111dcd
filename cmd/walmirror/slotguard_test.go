package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/internal/mirrortest"
)

// TestSlotMovedByOthers: a copy's slot dropped and made again while the
// copy was stopped (another copy with the same --slot, after the hint to
// drop a slot "no other copy follows"), or advanced by hand, is confirmed
// past the copy's position: the server would start there and skip the
// changes between. check, status and run say so (exit 1) instead of going
// on from the later position (exit 0, rows missing, before); --resync
// copies again. A copy on an idle publication still lets its slot move on.
func TestSlotMovedByOthers(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text);
				CREATE TABLE other (id int);
				INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 100) g`)
			target, rows := tg.new(t)
			slot := "s_moved_" + tg.name
			dropSlotAtEnd(t, db, slot)
			runNow(t, dsn, target, slot, "--tables", "t")
			mustExec(t, db, `UPDATE t SET v = 'applied' WHERE id <= 10`)
			runNow(t, dsn, target, slot)

			// Idle publication: WAL of another table only. The slot moves
			// on with the stored position.
			mustExec(t, db, `INSERT INTO other SELECT generate_series(1, 1000)`)
			end, err := mirrortest.SourceRows(t.Context(), dsn, "SELECT pg_current_wal_lsn()::text")
			if err != nil {
				t.Fatal(err)
			}
			runNow(t, dsn, target, slot)
			moved, err := mirrortest.SourceRows(t.Context(), dsn, fmt.Sprintf(`SELECT confirmed_flush_lsn >= '%s' FROM pg_replication_slots WHERE slot_name = '%s'`, end[0], slot))
			if err != nil {
				t.Fatal(err)
			}
			if len(moved) != 1 || moved[0] != "true" && moved[0] != "t" {
				t.Fatalf("an idle publication's slot did not move on to %s: %v", end, moved)
			}
			r := walmirror(t, nil, "status", "--target", target, "--source", dsn)
			if r.code != 0 {
				t.Fatalf("status on a copy whose slot moved on with it exited %d:\n%s%s", r.code, r.stdout, r.stderr)
			}

			for _, move := range []struct {
				name string
				sql  []string
			}{
				{"made again", []string{fmt.Sprintf(`SELECT pg_drop_replication_slot('%s')`, slot),
					`INSERT INTO t VALUES (1001, 'between the slots'); UPDATE t SET v = 'lost' WHERE id = 20`,
					fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput')`, slot)}},
				{"advanced", []string{`INSERT INTO t VALUES (1002, 'skipped'); DELETE FROM t WHERE id = 30`,
					fmt.Sprintf(`SELECT pg_replication_slot_advance('%s', pg_current_wal_lsn())`, slot)}},
			} {
				for _, q := range move.sql {
					mustExec(t, db, q)
				}
				mustExec(t, db, `INSERT INTO t VALUES (2000, 'after'); UPDATE t SET v = 'after' WHERE id = 40`)
				const want = "past the copy's position"
				r := walmirror(t, nil, "check", "--source", dsn, "--target", target, "--slot", slot, "--tables", "t")
				if r.code != 1 || !strings.Contains(r.stdout, "FAIL slot: ") || !strings.Contains(r.stdout, want) {
					t.Fatalf("%s: check exited %d, want 1 with a FAIL slot line saying %q:\n%s%s", move.name, r.code, want, r.stdout, r.stderr)
				}
				r = walmirror(t, nil, "status", "--target", target, "--source", dsn)
				if r.code != 1 || !strings.Contains(r.stdout, want) {
					t.Fatalf("%s: status exited %d, want 1 saying %q:\n%s%s", move.name, r.code, want, r.stdout, r.stderr)
				}
				r = walmirror(t, nil, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now")
				if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "--resync") {
					t.Fatalf("%s: run exited %d, want 1 saying %q and --resync:\n%s", move.name, r.code, want, r.stderr)
				}
				runNow(t, dsn, target, slot, "--resync")
				compareRows(t, dsn, rows, "SELECT id, v FROM t")
				mustExec(t, db, `DELETE FROM t WHERE id >= 1000`)
				runNow(t, dsn, target, slot)
				compareRows(t, dsn, rows, "SELECT id, v FROM t")
			}
			// Gone: check does not also say run will create it (helper-77).
			mustExec(t, db, fmt.Sprintf(`SELECT pg_drop_replication_slot('%s')`, slot))
			r = walmirror(t, nil, "check", "--source", dsn, "--target", target, "--slot", slot, "--tables", "t")
			if r.code != 1 || !strings.Contains(r.stdout, "is gone but the target follows it") || strings.Contains(r.stdout, "run will create it") {
				t.Fatalf("check of a copy whose slot is gone exited %d, want 1 saying so only:\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}
