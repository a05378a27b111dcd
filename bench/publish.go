package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/walmirror/walmirror/testenv"
)

// The publish workload: what walmirror's CPU costs while it follows a light
// steady load (pgbench TPC-B at a fixed 40 transactions/s) on a database
// with a big table that nothing writes, on each target, and on DuckDB with
// and without --publish-copy. The CPU is measured from the first caught-up
// position to the last, so neither the initial copy nor start-up counts.
const (
	publishRate     = 40
	publishInterval = 10 * time.Second
	publishScale    = 5
)

// publishDDL is the table nothing writes.
const publishDDL = `CREATE TABLE cold AS SELECT g AS id, md5(g::text) AS payload, '2024-01-01'::timestamptz + g * interval '1 second' AS at
	FROM generate_series(1, %d) g;
ALTER TABLE cold ADD PRIMARY KEY (id);`

var coldCheck = check{"cold", "count(*), sum(id)"}

// publishResult is one run of the publish workload.
type publishResult struct {
	consumer  string
	publish   bool
	load      time.Duration
	cpu       time.Duration
	equal     bool
	detail    string
	intervals int
}

func (e *env) publishWorkload(ctx context.Context, db string) error {
	if err := e.pgbenchInit(ctx, e.src.DSN(db), publishScale); err != nil {
		return err
	}
	if err := e.src.Exec(ctx, db, fmt.Sprintf(publishDDL, e.cfg.coldRows)+`CREATE TABLE bench_marker (id serial PRIMARY KEY); CREATE PUBLICATION bench FOR ALL TABLES`); err != nil {
		return err
	}
	seconds := e.cfg.lagSeconds * 3
	e.report.addWorkload("publish", fmt.Sprintf("pgbench TPC-B at %d tps (2 clients) for %d s on scale %d plus a %d-row table nothing writes, walmirror following live; DuckDB also with --publish-copy every %v", publishRate, seconds, publishScale, e.cfg.coldRows, publishInterval))
	checks := append(pgbenchChecks[:len(pgbenchChecks):len(pgbenchChecks)], coldCheck)
	pgbench := filepath.Join(testenv.BinDir(), "pgbench")
	for _, c := range e.cfg.consumers {
		if c == "decode" || c == "builtin" {
			continue
		}
		variants := []bool{false}
		if strings.HasPrefix(c, "duckdb") {
			variants = append(variants, true)
		}
		for _, publish := range variants {
			slot := "pub_" + c
			if publish {
				slot += "_copy"
			}
			w := e.walmirror(db, c, slot+"_"+db)
			if err := w.prepare(ctx); err != nil { // the initial copy
				return err
			}
			var extra []string
			if publish {
				extra = []string{"--publish-copy", filepath.Join(e.work, w.slot+"-read.duckdb"), "--publish-interval", publishInterval.String()}
			}
			cmd := exec.CommandContext(ctx, e.binary, w.args(extra...)...)
			cmd.Stdout, cmd.Stderr = e.logs, e.logs
			if err := cmd.Start(); err != nil {
				return err
			}
			res, err := func() (publishResult, error) {
				res := publishResult{consumer: w.name(), publish: publish}
				if err := e.waitCaughtUp(ctx, db, w.slot); err != nil {
					return res, err
				}
				cpu0, err := processCPU(cmd.Process.Pid)
				if err != nil {
					return res, err
				}
				began := time.Now()
				if _, err := runPgbench(ctx, pgbench, e.src.DSN(db), 2, seconds, publishRate); err != nil {
					return res, err
				}
				if err := e.waitCaughtUp(ctx, db, w.slot); err != nil {
					return res, err
				}
				cpu1, err := processCPU(cmd.Process.Pid)
				if err != nil {
					return res, err
				}
				res.load, res.cpu = time.Since(began), cpu1-cpu0
				res.intervals = int(res.load / publishInterval)
				return res, nil
			}()
			cmd.Process.Signal(syscall.SIGINT)
			if werr := cmd.Wait(); err == nil && werr != nil {
				err = fmt.Errorf("walmirror (publish, %s): %w", c, werr)
			}
			if err != nil {
				return err
			}
			want, err := e.aggregates(ctx, "source", e.src.DSN(db), checks)
			if err != nil {
				return err
			}
			got, err := e.aggregates(ctx, w.kind(), w.target(), checks)
			res.equal = err == nil && got == want
			if !res.equal {
				res.detail = fmt.Sprintf("source %s, copy %s %v", want, got, err)
			}
			log.Printf("  %-18s publish=%v CPU %.1f s over %.0f s equal=%v %s", res.consumer, publish, res.cpu.Seconds(), res.load.Seconds(), res.equal, res.detail)
			e.report.publishes = append(e.report.publishes, res)
		}
	}
	return nil
}

// processCPU is the user and system CPU a live process has used so far.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q %q", pid, f[11], f[12])
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

// publishTable reports the publish workload.
func (r *report) publishTable(b *strings.Builder) {
	b.WriteString("\nCPU while following a light load (**publish**): walmirror's user+system CPU from caught up before the load to caught up after it. \"per published copy\" is the CPU above the same target without --publish-copy, divided by the intervals (the first copy of a run is a whole one; later ones copy again only the tables written since).\n\n")
	b.WriteString("| consumer | --publish-copy | load (s) | walmirror CPU (s) | CPU / s of load | per published copy (s) | equal |\n|---|---|---:|---:|---:|---:|---|\n")
	for _, p := range r.publishes {
		per := "—"
		if p.publish {
			for _, q := range r.publishes {
				if q.consumer == p.consumer && !q.publish && p.intervals > 0 {
					per = fmt.Sprintf("%.2f", (p.cpu-q.cpu).Seconds()/float64(p.intervals))
				}
			}
		}
		pub := "no"
		if p.publish {
			pub = "every " + publishInterval.String()
		}
		eq := equalCell(p.equal, p.detail)
		fmt.Fprintf(b, "| %s | %s | %.0f | %.1f | %.3f | %s | %s |\n", p.consumer, pub, p.load.Seconds(), p.cpu.Seconds(), p.cpu.Seconds()/p.load.Seconds(), per, eq)
	}
}
