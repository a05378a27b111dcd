package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/internal/mirrortest"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/testenv"
)

// result is one consumer catching up on one workload.
type result struct {
	workload, consumer string
	wall, cpu          time.Duration
	rssMB              float64 // 0: not measured (not a walmirror process)
	equal              bool
	detail             string
	lag                *LagReport
	witness            *LagReport // the lag workload's decode-only witness (server's part)
	ryw                *RYWReport
	stream             *StreamReport
	log                string      // walmirror's stderr (runBinary)
	chunks             *chunkTimes // a chunked copy's, from its debug log
}

type consumer interface {
	name() string
	kind() string   // how to read the copy: sqlite, duckdb, postgres; "" for none
	target() string // the copy: file path or DSN
	prepare(ctx context.Context) error
	catchUp(ctx context.Context, stop lsn.LSN) (result, error)
}

func (e *env) consumers(db string) []consumer {
	var out []consumer
	for _, c := range e.cfg.consumers {
		switch c {
		case "decode":
			out = append(out, &decodeOnly{e: e, db: db, slot: "decode_" + db})
		case "builtin":
			out = append(out, &builtin{e: e, db: db})
		default:
			out = append(out, e.walmirror(db, c, "wm_"+c+"_"+db))
		}
	}
	return out
}

// ---- walmirror ----

type walmirrorRun struct {
	e            *env
	db, k, slot  string
	variant      string   // "KIND+FLAG": the name as given
	suffix       string   // added to the name in the report (" single")
	flags        []string // --FLAG for each +FLAG
	dst          string   // target argument
	check        string   // where aggregates are read
	workloadName string
}

func (e *env) walmirror(db, spec, slot string) *walmirrorRun {
	parts := strings.Split(spec, "+")
	kind := parts[0]
	// A slot name is a-z, 0-9 and _: "duckdb+duckdb-index-rows=0" too.
	slot = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, strings.ToLower(slot))
	w := &walmirrorRun{e: e, db: db, k: kind, variant: spec, slot: slot, workloadName: db}
	for _, f := range parts[1:] {
		w.flags = append(w.flags, "--"+f)
	}
	switch kind {
	case "sqlite":
		w.check = filepath.Join(e.work, db+"-"+slot+".sqlite")
		w.dst = "sqlite:" + w.check
	case "duckdb":
		w.check = filepath.Join(e.work, db+"-"+slot+".duckdb")
		w.dst = "duckdb:" + w.check
	case "postgres":
		w.check = e.dst.DSN(w.copyDB())
		w.dst = w.check
	}
	return w
}

func (w *walmirrorRun) name() string   { return "walmirror-" + w.variant + w.suffix }
func (w *walmirrorRun) kind() string   { return w.k }
func (w *walmirrorRun) target() string { return w.check }

func (w *walmirrorRun) args(extra ...string) []string {
	args := append([]string{"run", "--source", w.e.src.DSN(w.db), "--target", w.dst, "--slot", w.slot,
		"--publication", "bench", "--log-level", "warn"}, w.e.cfg.walmirrorArgs...)
	args = append(args, w.flags...)
	return append(args, extra...)
}

func (w *walmirrorRun) prepare(ctx context.Context) error {
	if err := w.createTarget(ctx); err != nil {
		return err
	}
	_, err := w.e.runBinary(ctx, w.args("--stop-at-lsn", "now"), "")
	return err
}

// createTarget creates the target database a PostgreSQL copy goes into.
func (w *walmirrorRun) createTarget(ctx context.Context) error {
	if w.k != "postgres" {
		return nil
	}
	return w.e.dst.Exec(ctx, "postgres", "CREATE DATABASE "+quoteIdent(w.copyDB()))
}

func (w *walmirrorRun) copyDB() string { return strings.ReplaceAll(w.db+"_"+w.slot, "-", "_") }

func (w *walmirrorRun) catchUp(ctx context.Context, stop lsn.LSN) (result, error) {
	profile := ""
	if w.e.cfg.profileDir != "" {
		profile = filepath.Join(w.e.cfg.profileDir, w.db+"-"+w.slot+".pprof")
	}
	return w.e.runBinary(ctx, w.args("--stop-at-lsn", stop.String()), profile)
}

// runBinary runs walmirror to completion and measures it.
func (e *env) runBinary(ctx context.Context, args []string, profile string) (result, error) {
	if profile != "" {
		if err := os.MkdirAll(filepath.Dir(profile), 0o755); err != nil {
			return result{}, err
		}
		args = append(args, "--cpuprofile", profile)
	}
	cmd := exec.CommandContext(ctx, e.binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = e.logs
	began := time.Now()
	err := cmd.Run()
	wall := time.Since(began)
	fmt.Fprintf(e.logs, "walmirror %s\n%s", strings.Join(args[:5], " "), stderr.String())
	if err != nil {
		return result{}, fmt.Errorf("walmirror: %v: %s", err, lastLine(stderr.String()))
	}
	res := usage(cmd, wall)
	res.log = stderr.String()
	return res, nil
}

func usage(cmd *exec.Cmd, wall time.Duration) result {
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return result{wall: wall, cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), rssMB: float64(ru.Maxrss) / 1024}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// ---- decode-only: the source's limit ----

type decodeOnly struct {
	e        *env
	db, slot string
}

func (d *decodeOnly) name() string   { return "decode-only" }
func (d *decodeOnly) kind() string   { return "" }
func (d *decodeOnly) target() string { return "" }

func (d *decodeOnly) prepare(ctx context.Context) error {
	return d.e.src.Exec(ctx, d.db, fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput')`, d.slot))
}

// catchUp receives and decodes (pglogrepl) every message, discarding it,
// until the server's decoder has passed stop.
func (d *decodeOnly) catchUp(ctx context.Context, stop lsn.LSN) (result, error) {
	began := time.Now()
	conn, err := d.e.replicate(ctx, d.db, d.slot)
	if err != nil {
		return result{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = follow(ctx, conn,
		func(ka pglogrepl.PrimaryKeepaliveMessage) (bool, error) { return lsn.LSN(ka.ServerWALEnd) >= stop, nil },
		func(wal []byte) error { _, err := pglogrepl.Parse(wal); return err })
	if err != nil {
		return result{}, err
	}
	return result{wall: time.Since(began)}, nil
}

// ---- PostgreSQL's built-in subscriber: the PG→PG reference ----

type builtin struct {
	e        *env
	db       string
	targetDB string
}

func (b *builtin) name() string   { return "built-in" }
func (b *builtin) kind() string   { return "postgres" }
func (b *builtin) target() string { return b.e.dst.DSN(b.targetDB) }
func (b *builtin) copyDB() string { return b.targetDB }

// prepare creates the same tables on the target, then a subscription with
// its own slot that copies the initial data, and disables it once in sync.
func (b *builtin) prepare(ctx context.Context) error {
	b.targetDB = strings.ReplaceAll(b.db, "-", "_") + "_builtin"
	if err := b.e.dst.Exec(ctx, "postgres", "CREATE DATABASE "+quoteIdent(b.targetDB)); err != nil {
		return err
	}
	if err := b.e.copySchema(ctx, b.db, b.targetDB); err != nil {
		return err
	}
	return b.subscribe(ctx, true)
}

func (b *builtin) subscribe(ctx context.Context, thenDisable bool) error {
	create := fmt.Sprintf(`CREATE SUBSCRIPTION builtin CONNECTION '%s' PUBLICATION bench
		WITH (slot_name = 'builtin_%s', binary = true, streaming = on, copy_data = true)`,
		strings.ReplaceAll(b.e.src.DSN(b.db), "'", "''"), strings.ReplaceAll(b.db, "-", "_"))
	if err := b.e.dst.Exec(ctx, b.targetDB, create); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, b.e.dst.DSN(b.targetDB))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if err := waitFor(ctx, conn, `SELECT count(*) = 0 FROM pg_subscription_rel WHERE srsubstate <> 'r'`); err != nil {
		return fmt.Errorf("wait for initial sync: %w", err)
	}
	if !thenDisable {
		return nil
	}
	if _, err := conn.Exec(ctx, `ALTER SUBSCRIPTION builtin DISABLE`); err != nil {
		return err
	}
	return waitFor(ctx, conn, `SELECT count(*) = 0 FROM pg_stat_subscription s JOIN pg_subscription p ON p.oid = s.subid
		WHERE s.pid IS NOT NULL AND p.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`)
}

// drop removes the subscription (its slot goes with it).
func (b *builtin) drop(ctx context.Context) error {
	if b.targetDB == "" {
		return nil
	}
	return b.e.dst.Exec(ctx, b.targetDB, `DROP SUBSCRIPTION IF EXISTS builtin`)
}

func (b *builtin) catchUp(ctx context.Context, stop lsn.LSN) (result, error) {
	conn, err := pgx.Connect(ctx, b.e.dst.DSN(b.targetDB))
	if err != nil {
		return result{}, err
	}
	defer conn.Close(ctx)
	began := time.Now()
	if _, err := conn.Exec(ctx, `ALTER SUBSCRIPTION builtin ENABLE`); err != nil {
		return result{}, err
	}
	if err := waitFor(ctx, conn, `SELECT count(*) = 1 FROM bench_marker`); err != nil {
		return result{}, err
	}
	return result{wall: time.Since(began)}, nil
}

// waitFor polls a boolean query every 10 ms (up to an hour).
func waitFor(ctx context.Context, conn *pgx.Conn, q string) error {
	deadline := time.Now().Add(time.Hour)
	nag := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if time.Now().After(nag) {
			log.Printf("  still waiting for: %s", q)
			nag = time.Now().Add(time.Minute)
		}
		var ok bool
		if err := conn.QueryRow(ctx, q).Scan(&ok); err != nil {
			return err
		}
		if ok {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("timed out waiting for: %s", q)
}

// copySchema recreates the source's tables (no data) on the target with pg_dump.
func (e *env) copySchema(ctx context.Context, srcDB, dstDB string) error {
	dump := exec.CommandContext(ctx, filepath.Join(testenv.BinDir(), "pg_dump"), "--schema-only", "--no-publications", "--no-subscriptions", e.src.DSN(srcDB))
	out, err := dump.Output()
	if err != nil {
		return fmt.Errorf("pg_dump: %w", err)
	}
	// Recent pg_dump versions emit psql meta-commands (\restrict): drop them.
	var sqlText strings.Builder
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "\\") {
			sqlText.WriteString(line + "\n")
		}
	}
	return e.dst.Exec(ctx, dstDB, sqlText.String())
}

// ---- comparing copies with the source ----

// aggregates renders the checks' results on one database.
func (e *env) aggregates(ctx context.Context, kind, target string, checks []check) (string, error) {
	var parts []string
	for _, c := range checks {
		var rows []string
		var err error
		q := "SELECT " + c.exprs + " FROM public." + quoteIdent(c.table)
		switch kind {
		case "source", "postgres":
			rows, err = mirrortest.SourceRows(ctx, target, q)
		case "sqlite":
			q = "SELECT " + c.exprs + " FROM " + quoteIdent(c.table)
			rows, err = mirrortest.SQLiteRows(ctx, target, q)
		case "duckdb":
			rows, err = mirrortest.DuckDBRows(ctx, target, q)
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", q, err)
		}
		parts = append(parts, c.table+"("+strings.Join(rows, ",")+")")
	}
	return strings.Join(parts, " "), nil
}
