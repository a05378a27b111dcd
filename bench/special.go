package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/testenv"
)

// snapshotWorkload times each consumer's initial copy of pgbench tables:
// walmirror's snapshot against the built-in subscriber's copy_data.
func (e *env) snapshotWorkload(ctx context.Context, db string) error {
	if err := e.src.Exec(ctx, db, `CREATE PUBLICATION bench FOR ALL TABLES`); err != nil {
		return err
	}
	e.report.addWorkload("snapshot", fmt.Sprintf("initial copy of pgbench scale %d (%d accounts)", e.cfg.snapshotScale, e.cfg.snapshotScale*100000))
	checks := pgbenchChecks[:3]
	want, err := e.aggregates(ctx, "source", e.src.DSN(db), checks)
	if err != nil {
		return err
	}
	for _, c := range e.cfg.consumers {
		var res result
		var target, kind string
		switch c {
		case "decode":
			continue
		case "builtin":
			b := &builtin{e: e, db: db, targetDB: strings.ReplaceAll(db, "-", "_") + "_builtin"}
			if err := e.dst.Exec(ctx, "postgres", "CREATE DATABASE "+quoteIdent(b.targetDB)); err != nil {
				return err
			}
			if err := e.copySchema(ctx, db, b.targetDB); err != nil {
				return err
			}
			began := time.Now()
			if err := b.subscribe(ctx, false); err != nil {
				return err
			}
			res = result{wall: time.Since(began)}
			target, kind = b.target(), "postgres"
		default:
			w := e.walmirror(db, c, "snap_"+c+"_"+db)
			if err := w.createTarget(ctx); err != nil {
				return err
			}
			profile := ""
			if e.cfg.profileDir != "" {
				profile = filepath.Join(e.cfg.profileDir, "snapshot-"+w.slot+".pprof")
			}
			res, err = e.runBinary(ctx, w.args("--stop-at-lsn", "now"), profile)
			if err != nil {
				return fmt.Errorf("%s: %w", w.name(), err)
			}
			target, kind = w.target(), w.kind()
			c = w.name()
		}
		got, err := e.aggregates(ctx, kind, target, checks)
		res.workload, res.consumer = "snapshot", c
		if c == "builtin" {
			res.consumer = "built-in"
		}
		res.equal = err == nil && got == want
		if !res.equal {
			res.detail = fmt.Sprintf("source %s, copy %s %v", want, got, err)
		}
		log.Printf("  %-18s %8.2fs  rss %6.1f MB  equal=%v %s", res.consumer, res.wall.Seconds(), res.rssMB, res.equal, res.detail)
		e.report.add(res)
	}
	return nil
}

// lagWorkload runs pgbench at a fixed rate (half the measured maximum) while
// each walmirror target follows live, and reports source-commit-to-target-
// commit latency from the commit timestamps BEGIN messages carry.
func (e *env) lagWorkload(ctx context.Context, db string, checks []check) error {
	pgbench := filepath.Join(testenv.BinDir(), "pgbench")
	maxTPS := e.report.maxTPS
	if maxTPS == 0 {
		var err error
		if maxTPS, err = runPgbench(ctx, pgbench, e.src.DSN(db), e.cfg.pgbenchClients, 5, 0); err != nil {
			return err
		}
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
		log.Printf("  %-18s lag p50 %.1f ms p99 %.1f ms (n=%d) equal=%v %s", res.consumer, lr.P50Ms, lr.P99Ms, lr.N, res.equal, res.detail)
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
}
