package main

import (
	"strings"
	"testing"
)

// TestResumedCopyAfterRewrite: an online copy interrupted (kill -9 after
// its third chunk), then, while walmirror is stopped, ADD COLUMN ... DEFAULT,
// a change to the table and VACUUM FULL (which drops PostgreSQL's stored
// missing value). The next run stopped for good on every target ('gained
// column "w", but it has a default and PostgreSQL stored no value for older
// rows'), where the README promises the table is copied again online: the
// Relation message of the resumed copy's table, new to the run, did not
// restart the copy (apply: refill compares only with a shape known in this
// run; now it compares a resumed copy's stored shape too).
func TestResumedCopyAfterRewrite(t *testing.T) {
	needServer(t)
	bin := faultBinary(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE kp (id int PRIMARY KEY, v text);
				INSERT INTO kp SELECT g, 'v' FROM generate_series(1, 30000) g;`)
			target, _ := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now",
				"--copy-chunk-rows", "1000", "--copy-chunk-time=-1s"}
			if r := walmirror(t, nil, args...); r.code != 0 {
				t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
			}
			if r := walmirror(t, nil, "resync", "--source", dsn, "--slot", slot, "--table", "public.kp"); r.code != 0 {
				t.Fatalf("resync exited %d:\n%s", r.code, r.stderr)
			}
			runToFault(t, bin, args, "backfill.chunk-read:4")
			mustExec(t, db, `ALTER TABLE kp ADD COLUMN w int DEFAULT 7;
				UPDATE kp SET v = 'x' WHERE id = 5;
				UPDATE kp SET v = 'y' WHERE id = 29000`)
			mustExec(t, db, `VACUUM FULL kp`)
			if r := walmirror(t, nil, args...); r.code != 0 {
				t.Fatalf("run exited %d: %s", r.code, lastLine(r.stderr))
			}
			if r := walmirror(t, nil, "verify", "--source", dsn, "--target", target); r.code != 0 || !strings.Contains(r.stdout, "equal") {
				t.Fatalf("verify exited %d:\n%s%s", r.code, r.stdout, r.stderr)
			}
		})
	}
}
