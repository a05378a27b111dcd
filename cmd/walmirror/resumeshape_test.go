package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
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
			args := pausedCopy(t, bin, dsn, db, target)
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

// pausedCopy copies db's tables into target, asks for an online copy of
// public.kp again and kills the run (bin, built with fault points) after
// the copy's third chunk of 1,000 rows; it returns the arguments of a run
// that resumes it.
func pausedCopy(t *testing.T, bin, dsn, db, target string) []string {
	t.Helper()
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
	return args
}

// TestResumedCopyUnderNewKey: an online copy interrupted after its third
// chunk, then, while walmirror is stopped, the primary key replaced by
// another column that sorts the rows the other way round, or the table
// left without a key. The resumed copy must not go on by the new key
// from the old key's progress: it read the rows past 3000 by the new key
// (none), called the copy complete with 3,000 of 30,000 rows, exit 0
// (helper-125); the keyless table stopped every run. It starts again.
// Every target.
func TestResumedCopyUnderNewKey(t *testing.T) {
	needServer(t)
	bin := faultBinary(t)
	for _, change := range []struct{ name, sql string }{
		{"key", `ALTER TABLE kp DROP CONSTRAINT kp_pkey, ADD PRIMARY KEY (b)`},
		{"keyless", `ALTER TABLE kp DROP CONSTRAINT kp_pkey, REPLICA IDENTITY FULL`},
	} {
		for _, tg := range schemaTargets {
			t.Run(change.name+"/"+tg.name, func(t *testing.T) {
				dsn, db := newDatabase(t, `CREATE TABLE kp (id int PRIMARY KEY, b int NOT NULL, v text);
					INSERT INTO kp SELECT g, -g, 'v' || g FROM generate_series(1, 30000) g;`)
				target, rows := tg.new(t)
				args := pausedCopy(t, bin, dsn, db, target)
				mustExec(t, db, change.sql)
				r := walmirror(t, nil, args...)
				if r.code != 0 {
					t.Fatalf("run exited %d: %s", r.code, lastLine(r.stderr))
				}
				if !strings.Contains(r.stderr, "its key changed while it was copied") {
					t.Errorf("the copy did not start again:\n%s", r.stderr)
				}
				compareRows(t, dsn, rows, "SELECT id, b, v FROM kp")
			})
		}
	}
}

// TestColumnReaddedBetweenChunks: while a table is copied online, its last
// column is dropped and added again under the same name and type, with no
// row change after it (so no Relation message): the next chunks must not
// read the new column beside rows holding the old one's values. The shape
// differs in the column's attnum alone; before, the chunks went on, and a
// bounded run ended with the old values in the rows copied first, exit 0
// (helper-125; the next publication poll would have copied it again).
// Every target.
func TestColumnReaddedBetweenChunks(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE dd (id int PRIMARY KEY, v int);
				INSERT INTO dd SELECT g, g FROM generate_series(1, 200000) g;`)
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			runNow(t, dsn, target, slot)
			if r := walmirror(t, nil, "resync", "--source", dsn, "--slot", slot, "--table", "public.dd"); r.code != 0 {
				t.Fatalf("resync exited %d:\n%s", r.code, r.stderr)
			}
			logPath := filepath.Join(t.TempDir(), "run.log")
			logs, err := os.Create(logPath)
			if err != nil {
				t.Fatal(err)
			}
			defer logs.Close()
			run := exec.Command(binary, "run", "--source", dsn, "--target", target, "--slot", slot, "--stop-at-lsn", "now",
				"--poll-interval", "1h", "--copy-chunk-rows", "500", "--copy-chunk-time=-1s", "--log-level", "debug")
			run.Stdout, run.Stderr = logs, logs
			if err := run.Start(); err != nil {
				t.Fatal(err)
			}
			waitForLog(t, logPath, `msg="copied chunk"`)
			mustExec(t, db, `ALTER TABLE dd DROP COLUMN v; ALTER TABLE dd ADD COLUMN v int`)
			err = run.Wait()
			out, _ := os.ReadFile(logPath)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, out)
			}
			if bytes.Contains(out, []byte(`msg="table copied online" table=public.dd rows=200000 chunks=400`)) {
				t.Fatalf("the copy ended before the column was added again: nothing tested")
			}
			compareRows(t, dsn, rows, "SELECT id, CAST(v AS VARCHAR) FROM dd")
		})
	}
}
