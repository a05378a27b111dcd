package main

import (
	"context"
	"fmt"
	"log"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/testenv"
)

const benchDDL = `
CREATE TABLE bench_t (id bigint PRIMARY KEY, n int, s text, at timestamptz, amount numeric(12,2), doc jsonb);
CREATE TABLE bench_marker (id serial PRIMARY KEY);`

const benchRow = `g, g % 1000, md5(g::text), '2024-01-01'::timestamptz + g * interval '1 second', g * 0.01, jsonb_build_object('g', g, 'tag', 'x')`

// check is an aggregate that must agree between the source and a copy.
type check struct {
	table string // unqualified, in public
	exprs string // aggregate expressions, integer-valued in every target
}

var tChecks = []check{{"bench_t", "count(*), sum(id), sum(n)"}}
var pgbenchChecks = []check{
	{"pgbench_accounts", "count(*), sum(aid), sum(abalance)"},
	{"pgbench_tellers", "count(*), sum(tbalance)"},
	{"pgbench_branches", "count(*), sum(bbalance)"},
	{"pgbench_history", "count(*), sum(delta), sum(aid)"},
}

func (e *env) runWorkload(ctx context.Context, name string) error {
	if name == "stream" {
		return e.streamWorkload(ctx) // a database per consumer
	}
	db, err := e.src.CreateDatabase(ctx, name)
	if err != nil {
		return err
	}
	if name == "publish" {
		return e.publishWorkload(ctx, db)
	}
	srcDSN := e.src.DSN(db)
	pgbench := filepath.Join(testenv.BinDir(), "pgbench")
	cfg := e.cfg
	switch name {
	case "insert", "bigtx":
		if err := e.src.Exec(ctx, db, benchDDL); err != nil {
			return err
		}
	case "update":
		if err := e.src.Exec(ctx, db, benchDDL+fmt.Sprintf(`INSERT INTO bench_t SELECT %s FROM generate_series(1, %d) g;`, benchRow, cfg.updateRows)); err != nil {
			return err
		}
	case "pgbench", "lag", "ryw":
		if err := e.pgbenchInit(ctx, srcDSN, cfg.pgbenchScale); err != nil {
			return err
		}
		if err := e.src.Exec(ctx, db, `CREATE TABLE bench_marker (id serial PRIMARY KEY)`); err != nil {
			return err
		}
		if name == "ryw" {
			if err := e.src.Exec(ctx, db, rywDDL); err != nil {
				return err
			}
		}
	case "snapshot":
		if err := e.pgbenchInit(ctx, srcDSN, cfg.snapshotScale); err != nil {
			return err
		}
		return e.copyWorkload(ctx, db, "snapshot", fmt.Sprintf("initial copy of pgbench scale %d (%d accounts)", cfg.snapshotScale, cfg.snapshotScale*100000), pgbenchChecks[:3])
	case "snapshot-typed":
		// Vacuumed, so that no copy pays for setting hint bits (the first
		// one to read the rows would).
		if err := e.src.Exec(ctx, db, benchDDL+fmt.Sprintf(`INSERT INTO bench_t SELECT %s FROM generate_series(1, %d) g;`, benchRow, cfg.typedRows)); err != nil {
			return err
		}
		if err := e.src.Exec(ctx, db, `VACUUM ANALYZE`); err != nil {
			return err
		}
		return e.copyWorkload(ctx, db, "snapshot-typed", fmt.Sprintf("initial copy of a %d-row table (bigint key, int, text, timestamptz, numeric, jsonb)", cfg.typedRows), typedChecks)
	case "resume":
		if err := e.pgbenchInit(ctx, srcDSN, cfg.snapshotScale); err != nil {
			return err
		}
		return e.resumeWorkload(ctx, db)
	case "verify":
		// The snapshot-typed table, vacuumed likewise (verify.go).
		if err := e.src.Exec(ctx, db, benchDDL+fmt.Sprintf(`INSERT INTO bench_t SELECT %s FROM generate_series(1, %d) g;`, benchRow, cfg.typedRows)); err != nil {
			return err
		}
		if err := e.src.Exec(ctx, db, `VACUUM ANALYZE`); err != nil {
			return err
		}
		return e.verifyWorkload(ctx, db)
	}
	if err := e.src.Exec(ctx, db, `CREATE PUBLICATION bench FOR ALL TABLES`); err != nil {
		return err
	}
	checks := tChecks
	if name == "pgbench" || name == "lag" || name == "ryw" {
		checks = pgbenchChecks
	}
	switch name {
	case "lag":
		return e.lagWorkload(ctx, db, checks)
	case "ryw":
		return e.rywWorkload(ctx, db, append(checks, rywChecks...))
	}

	// Every consumer gets its slot (and initial copy) before the workload. An
	// untimed decode-only pass goes first, so no timed consumer pays for
	// reading cold WAL from disk.
	warm := &decodeOnly{e: e, db: db, slot: "warmup_" + db}
	cons := e.consumers(db)
	for _, c := range append([]consumer{warm}, cons...) {
		if err := c.prepare(ctx); err != nil {
			return fmt.Errorf("prepare %s: %w", c.name(), err)
		}
	}
	// Every PostgreSQL copy starts vacuumed and analyzed (autovacuum is off
	// on the bench's servers: when it woke up during one consumer's run and
	// not another's, it made their times differ by a quarter).
	for _, c := range cons {
		if db, ok := c.(interface{ copyDB() string }); ok && c.kind() == "postgres" {
			if err := e.dst.Exec(ctx, db.copyDB(), "VACUUM ANALYZE"); err != nil {
				return fmt.Errorf("vacuum %s's copy: %w", c.name(), err)
			}
		}
	}
	began := time.Now()
	var note string
	switch name {
	case "insert":
		err = e.src.Exec(ctx, db, fmt.Sprintf(`DO $$ BEGIN FOR i IN 0..%d LOOP
			INSERT INTO bench_t SELECT %s FROM generate_series(i * %d + 1, (i + 1) * %d) g; COMMIT; END LOOP; END $$`,
			cfg.rows/cfg.txnRows-1, benchRow, cfg.txnRows, cfg.txnRows))
		note = fmt.Sprintf("%d rows in %d-row transactions", cfg.rows, cfg.txnRows)
	case "update":
		err = e.src.Exec(ctx, db, fmt.Sprintf(`DO $$ BEGIN FOR i IN 0..%d LOOP
			UPDATE bench_t SET n = n + 1, s = md5(s) WHERE id BETWEEN i * %d + 1 AND (i + 1) * %d; COMMIT; END LOOP; END $$`,
			cfg.updateRows/cfg.txnRows-1, cfg.txnRows, cfg.txnRows))
		note = fmt.Sprintf("%d rows updated in %d-row transactions", cfg.updateRows, cfg.txnRows)
	case "bigtx":
		err = e.src.Exec(ctx, db, fmt.Sprintf(`INSERT INTO bench_t SELECT %s FROM generate_series(1, %d) g`, benchRow, cfg.bigTxRows))
		note = fmt.Sprintf("%d rows in one transaction", cfg.bigTxRows)
	case "pgbench":
		var tps float64
		tps, err = runPgbench(ctx, pgbench, srcDSN, cfg.pgbenchClients, cfg.pgbenchSeconds, 0)
		e.report.maxTPS = tps
		note = fmt.Sprintf("pgbench TPC-B, scale %d, %d clients, %d s: %.0f tps", cfg.pgbenchScale, cfg.pgbenchClients, cfg.pgbenchSeconds, tps)
	}
	if err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	stop, err := e.marker(ctx, db)
	if err != nil {
		return err
	}
	if err := e.src.Exec(ctx, db, "VACUUM ANALYZE"); err != nil {
		return err
	}
	walBytes, _ := e.walBetween(ctx, db)
	log.Printf("  workload took %v; WAL to catch up: %.0f MB", time.Since(began).Round(time.Millisecond), float64(walBytes)/1e6)
	e.report.addWorkload(name, note+fmt.Sprintf(" (%.0f MB WAL)", float64(walBytes)/1e6))

	// Each consumer catches up alone.
	want, err := e.aggregates(ctx, "source", srcDSN, checks)
	if err != nil {
		return err
	}
	if _, err := warm.catchUp(ctx, stop); err != nil {
		return fmt.Errorf("warm-up pass: %w", err)
	}
	for _, c := range cons {
		res, err := c.catchUp(ctx, stop)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name(), err)
		}
		res.workload, res.consumer = name, c.name()
		if c.target() != "" {
			got, err := e.aggregates(ctx, c.kind(), c.target(), checks)
			res.equal = err == nil && got == want
			if !res.equal {
				res.detail = fmt.Sprintf("source %s, copy %s %v", want, got, err)
			}
		} else {
			res.equal = true
		}
		log.Printf("  %-18s %8.2fs  rss %6.1f MB  cpu %6.2fs  equal=%v %s", c.name(), res.wall.Seconds(), res.rssMB, res.cpu.Seconds(), res.equal, res.detail)
		e.report.add(res)
	}
	return e.dropSlots(ctx, db, cons)
}

// dropSlots frees the workload's slots so finished workloads pin no WAL.
func (e *env) dropSlots(ctx context.Context, db string, cons []consumer) error {
	for _, c := range cons {
		if b, ok := c.(*builtin); ok {
			if err := b.drop(ctx); err != nil {
				return err
			}
		}
	}
	return e.src.Exec(ctx, db, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
		WHERE database = current_database() AND NOT active`)
}

// marker commits a last transaction after the workload and returns the WAL
// position that covers it: where every consumer stops.
func (e *env) marker(ctx context.Context, db string) (lsn.LSN, error) {
	if err := e.src.Exec(ctx, db, `INSERT INTO bench_marker VALUES (DEFAULT)`); err != nil {
		return 0, err
	}
	conn, err := pgx.Connect(ctx, e.src.DSN(db))
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var text string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&text); err != nil {
		return 0, err
	}
	return lsn.Parse(text)
}

// walBetween reports how much WAL the slowest slot must read (for the report).
func (e *env) walBetween(ctx context.Context, db string) (int64, error) {
	conn, err := pgx.Connect(ctx, e.src.DSN(db))
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, `SELECT coalesce(max(pg_current_wal_insert_lsn() - confirmed_flush_lsn), 0)::bigint
		FROM pg_replication_slots WHERE database = current_database()`).Scan(&n)
	return n, err
}

func (e *env) pgbenchInit(ctx context.Context, dsn string, scale int) error {
	cmd := exec.CommandContext(ctx, filepath.Join(testenv.BinDir(), "pgbench"), "-i", "-q", "-s", strconv.Itoa(scale), dsn)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i: %v\n%s", err, out)
	}
	return nil
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+)`)

// runPgbench runs TPC-B; rate > 0 throttles it (pgbench -R).
func runPgbench(ctx context.Context, pgbench, dsn string, clients, seconds int, rate float64) (float64, error) {
	args := []string{"-n", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(clients), "-T", strconv.Itoa(seconds), "-M", "prepared"}
	if rate > 0 {
		args = append(args, "-R", strconv.FormatFloat(rate, 'f', 0, 64))
	}
	out, err := exec.CommandContext(ctx, pgbench, append(args, dsn)...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pgbench: %v\n%s", err, out)
	}
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench printed no tps:\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
