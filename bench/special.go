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
	maxTPS, err := e.maxRate(ctx, db)
	if err != nil {
		return err
	}
	rate := maxTPS / 2
	e.report.addWorkload("lag", fmt.Sprintf("pgbench TPC-B at %.0f tps (half of the %.0f measured), %d s, while walmirror follows live", rate, maxTPS, e.cfg.lagSeconds))
	for _, c := range e.cfg.consumers {
		if c == "decode" || c == "builtin" {
			continue
		}
		w := e.walmirror(db, c, "lag_"+c+"_"+db)
		if err := w.prepare(ctx); err != nil {
			return err
		}
		report := filepath.Join(e.work, "lag-"+w.slot+".json")
		cmd := exec.CommandContext(ctx, e.binary, w.args("--lag-report", report)...)
		cmd.Stdout, cmd.Stderr = e.logs, e.logs
		began := time.Now()
		if err := cmd.Start(); err != nil {
			return err
		}
		if _, err := runPgbench(ctx, pgbench, e.src.DSN(db), e.cfg.pgbenchClients, e.cfg.lagSeconds, rate); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return err
		}
		if err := e.waitCaughtUp(ctx, db, w.slot); err != nil {
			return err
		}
		cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("walmirror (lag, %s): %w", c, err)
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
		want, err := e.aggregates(ctx, "source", e.src.DSN(db), checks)
		if err != nil {
			return err
		}
		got, err := e.aggregates(ctx, c, w.target(), checks)
		res.equal = err == nil && got == want
		if !res.equal {
			res.detail = fmt.Sprintf("source %s, copy %s %v", want, got, err)
		}
		log.Printf("  %-18s lag p50 %.1f ms p99 %.1f ms (n=%d); %d target commits, COMMIT p50 %.1f ms p99 %.1f ms max %.1f ms; equal=%v %s",
			res.consumer, lr.P50Ms, lr.P99Ms, lr.N, lr.Commits, lr.CommitP50Ms, lr.CommitP99Ms, lr.CommitMaxMs, res.equal, res.detail)
		e.report.add(res)
	}
	return nil
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
