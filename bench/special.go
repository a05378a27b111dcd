package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/testenv"
)

// lagWorkload runs pgbench at a fixed rate (half the measured maximum) while
// each walmirror target follows live, and reports source-commit-to-target-
// commit latency from the commit timestamps BEGIN messages carry.
func (e *env) lagWorkload(ctx context.Context, db string, checks []check) error {
	pgbench := filepath.Join(testenv.BinDir(), "pgbench")
	rate, how, err := e.lagRate(ctx, db)
	if err != nil {
		return err
	}
	e.report.addWorkload("lag", fmt.Sprintf("pgbench TPC-B at %.0f tps (%s), %d s, while walmirror follows live", rate, how, e.cfg.lagSeconds))
	for _, c := range e.cfg.consumers {
		if c == "decode" || c == "builtin" {
			continue
		}
		w := e.walmirror(db, c, "lag_"+c+"_"+db)
		if err := w.prepare(ctx); err != nil {
			return err
		}
		// Two seconds of the load, applied before the measured run: what a
		// copy does once after its initial copy (DuckDB indexes the key of
		// a table of 1M rows or more at its first update, seconds of
		// stall at -pgbench-scale 50) is not its steady lag.
		if _, err := runPgbench(ctx, pgbench, e.src.DSN(db), e.cfg.pgbenchClients, 2, rate); err != nil {
			return err
		}
		if _, err := e.runBinary(ctx, w.args("--stop-at-lsn", "now"), ""); err != nil {
			return err
		}
		report := filepath.Join(e.work, "lag-"+w.slot+".json")
		wit, err := e.startWitness(ctx, db, "witness_"+w.slot)
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, e.binary, w.args("--lag-report", report)...)
		cmd.Stdout, cmd.Stderr = e.logs, e.logs
		began := time.Now()
		if err := cmd.Start(); err != nil {
			wit.stop(ctx)
			return err
		}
		// The load starts once walmirror streams, caught up: started
		// together, its start (connecting, preparing the target tables,
		// ~0.2-0.4 s) was counted as lag, and the first second's
		// transactions (5% of a 15 s run) set the p99 (610 ms where the
		// rest stayed under 200 ms, 2026-12-03).
		if err := e.waitCaughtUp(ctx, db, w.slot); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			wit.stop(ctx)
			return err
		}
		if _, err := runPgbench(ctx, pgbench, e.src.DSN(db), e.cfg.pgbenchClients, e.cfg.lagSeconds, rate); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			wit.stop(ctx)
			return err
		}
		if err := e.waitCaughtUp(ctx, db, w.slot); err != nil {
			wit.stop(ctx)
			return err
		}
		cmd.Process.Signal(syscall.SIGINT)
		werr := cmd.Wait()
		server, err := wit.stop(ctx)
		if werr != nil {
			return fmt.Errorf("walmirror (lag, %s): %w", c, werr)
		}
		if err != nil {
			return fmt.Errorf("lag witness: %w", err)
		}
		res := usage(cmd, time.Since(began))
		res.workload, res.consumer = "lag", w.name()
		var lr LagReport
		b, err := os.ReadFile(report)
		if err == nil {
			err = json.Unmarshal(b, &lr)
		}
		if err != nil {
			return fmt.Errorf("read lag report: %w", err)
		}
		res.lag = &lr
		res.witness = &server
		want, err := e.aggregates(ctx, "source", e.src.DSN(db), checks)
		if err != nil {
			return err
		}
		got, err := e.aggregates(ctx, w.kind(), w.target(), checks)
		res.equal = err == nil && got == want
		if !res.equal {
			res.detail = fmt.Sprintf("source %s, copy %s %v", want, got, err)
		}
		log.Printf("  %-18s lag p50 %.1f ms p99 %.1f ms (n=%d); %d target commits, COMMIT p50 %.1f ms p99 %.1f ms max %.1f ms; decode-only witness p50 %.1f ms p99 %.1f ms max %.1f ms (n=%d); equal=%v %s",
			res.consumer, lr.P50Ms, lr.P99Ms, lr.N, lr.Commits, lr.CommitP50Ms, lr.CommitP99Ms, lr.CommitMaxMs, server.P50Ms, server.P99Ms, server.MaxMs, server.N, res.equal, res.detail)
		e.report.add(res)
	}
	return nil
}

// lagRate is the pgbench rate of the lag and ryw workloads: -lag-rate, or
// half the maximum rate measured in this run; how says which.
func (e *env) lagRate(ctx context.Context, db string) (rate float64, how string, err error) {
	if e.cfg.lagRate > 0 {
		return e.cfg.lagRate, "fixed by -lag-rate", nil
	}
	maxTPS, err := e.maxRate(ctx, db)
	if err != nil {
		return 0, "", err
	}
	return maxTPS / 2, fmt.Sprintf("half of the %.0f measured", maxTPS), nil
}

// waitCaughtUp commits a marker transaction and waits until the slot has
// confirmed everything up to it.
func (e *env) waitCaughtUp(ctx context.Context, db, slot string) error {
	stop, err := e.marker(ctx, db)
	if err != nil {
		return err
	}
	// Just past a page header is where the server's decoder stops when idle.
	if off := uint64(stop) % 8192; off == 24 || off == 40 {
		stop -= lsn.LSN(off)
	}
	conn, err := pgx.Connect(ctx, e.src.DSN(db))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return waitFor(ctx, conn, fmt.Sprintf(`SELECT confirmed_flush_lsn >= '%s'::pg_lsn FROM pg_replication_slots WHERE slot_name = '%s'`, stop, slot))
}

// LagReport mirrors what walmirror run --lag-report writes.
type LagReport struct {
	N     int     `json:"n"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// The target's COMMIT alone, per target commit.
	Commits     int     `json:"commits"`
	CommitP50Ms float64 `json:"commit_p50_ms"`
	CommitP99Ms float64 `json:"commit_p99_ms"`
	CommitMaxMs float64 `json:"commit_max_ms"`
}
