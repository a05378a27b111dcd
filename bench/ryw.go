package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/mattn/go-sqlite3" // the "sqlite3" driver, to read SQLite copies

	"github.com/walmirror/walmirror/testenv"
)

// rywDDL is the table the read-your-writes client writes (one new row per
// sample), beside the pgbench tables that carry the load.
const rywDDL = `CREATE TABLE bench_ryw (id bigint PRIMARY KEY, v text NOT NULL)`

var rywChecks = []check{{"bench_ryw", "count(*), sum(id)"}}

// RYWReport is one target's read-your-writes round trips.
type RYWReport struct {
	N             int     // samples
	Stale         int     // reads that did not find the row after /wait said 200 (must be 0)
	P50Ms, P99Ms  float64 // write start → row visible in the copy
	WaitP50Ms     float64 // commit returned → visible: what waiting costs
	WaitP99Ms     float64
	MaxMs         float64
	ReadsFromCopy bool // false: measured until /wait answered 200 (DuckDB: no other process may open the file)
}

// rywWorkload runs pgbench at half the measured maximum rate while each
// walmirror target follows live with --metrics-addr, and one client
// repeatedly: inserts a row on the source (autocommit), takes
// pg_current_wal_lsn() after the commit, GETs /wait?lsn=... from walmirror
// and reads the row from the copy. SQLite and PostgreSQL copies are read
// while walmirror writes them; a DuckDB file cannot be opened by another
// process meanwhile, so for DuckDB the round trip ends when /wait answers 200.
func (e *env) rywWorkload(ctx context.Context, db string, checks []check) error {
	pgbench := filepath.Join(testenv.BinDir(), "pgbench")
	rate, how, err := e.lagRate(ctx, db)
	if err != nil {
		return err
	}
	e.report.addWorkload("ryw", fmt.Sprintf("read-your-writes under pgbench TPC-B at %.0f tps (%s), %d s: one client inserts a row, takes pg_current_wal_lsn() after its commit, GETs walmirror's /wait?lsn= and reads the row from the copy", rate, how, e.cfg.lagSeconds))
	src, err := pgx.Connect(ctx, e.src.DSN(db))
	if err != nil {
		return err
	}
	defer src.Close(context.WithoutCancel(ctx))
	var nextID int64
	for _, c := range e.cfg.consumers {
		if c == "decode" || c == "builtin" {
			continue
		}
		w := e.walmirror(db, c, "ryw_"+c+"_"+db)
		if err := w.prepare(ctx); err != nil {
			return err
		}
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		args := w.args("--metrics-addr", addr)
		if e.cfg.profileDir != "" {
			args = append(args, "--cpuprofile", filepath.Join(e.cfg.profileDir, "ryw-"+w.slot+".pprof"))
		}
		cmd := exec.CommandContext(ctx, e.binary, args...)
		cmd.Stdout, cmd.Stderr = e.logs, e.logs
		began := time.Now()
		if err := cmd.Start(); err != nil {
			return err
		}
		kill := func() { cmd.Process.Kill(); cmd.Wait() }
		reader, err := openReader(ctx, w)
		if err != nil {
			kill()
			return err
		}
		client := &rywClient{src: src, base: "http://" + addr, read: reader}
		// Ready once a /wait for the current position answers.
		if err := client.waitReady(ctx); err != nil {
			reader.close()
			kill()
			return fmt.Errorf("walmirror (ryw, %s): %w", c, err)
		}
		load := make(chan error, 1)
		lctx, stopLoad := context.WithCancel(ctx)
		go func() {
			_, err := runPgbench(lctx, pgbench, e.src.DSN(db), e.cfg.pgbenchClients, e.cfg.lagSeconds, rate)
			load <- err
		}()
		var rr RYWReport
		var total, waited []time.Duration
		var loadErr error
	loop:
		for {
			select {
			case loadErr = <-load:
				break loop
			default:
			}
			nextID++
			t, wt, found, err := client.sample(ctx, nextID)
			if err != nil {
				stopLoad()
				<-load
				reader.close()
				kill()
				return fmt.Errorf("ryw sample (%s): %w", c, err)
			}
			if !found {
				rr.Stale++
			}
			total, waited = append(total, t), append(waited, wt)
			time.Sleep(2 * time.Millisecond) // one client, not a second load
		}
		stopLoad()
		reader.close()
		if loadErr != nil {
			kill()
			return loadErr
		}
		if err := e.waitCaughtUp(ctx, db, w.slot); err != nil {
			kill()
			return err
		}
		cmd.Process.Signal(syscall.SIGINT)
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("walmirror (ryw, %s): %w", c, err)
		}
		res := usage(cmd, time.Since(began))
		res.workload, res.consumer = "ryw", w.name()
		rr.N, rr.ReadsFromCopy = len(total), reader.reads
		rr.P50Ms, rr.P99Ms, rr.MaxMs = percentiles(total)
		rr.WaitP50Ms, rr.WaitP99Ms, _ = percentiles(waited)
		res.ryw = &rr
		want, err := e.aggregates(ctx, "source", e.src.DSN(db), checks)
		if err != nil {
			return err
		}
		got, err := e.aggregates(ctx, w.kind(), w.target(), checks)
		res.equal = err == nil && got == want && rr.Stale == 0
		if !res.equal {
			res.detail = fmt.Sprintf("source %s, copy %s %v; stale reads %d", want, got, err, rr.Stale)
		}
		log.Printf("  %-18s ryw p50 %.1f ms p99 %.1f ms (commit→visible p50 %.1f p99 %.1f; n=%d, stale %d) equal=%v %s",
			res.consumer, rr.P50Ms, rr.P99Ms, rr.WaitP50Ms, rr.WaitP99Ms, rr.N, rr.Stale, res.equal, res.detail)
		e.report.add(res)
	}
	return nil
}

// maxRate is the maximum pgbench rate: measured by the pgbench workload
// in this run, or here (5 s).
func (e *env) maxRate(ctx context.Context, db string) (float64, error) {
	if e.report.maxTPS > 0 {
		return e.report.maxTPS, nil
	}
	tps, err := runPgbench(ctx, filepath.Join(testenv.BinDir(), "pgbench"), e.src.DSN(db), e.cfg.pgbenchClients, 5, 0)
	if err != nil {
		return 0, err
	}
	e.report.maxTPS = tps
	return tps, nil
}

func percentiles(s []time.Duration) (p50, p99, max float64) {
	if len(s) == 0 {
		return 0, 0, 0
	}
	s = slices.Clone(s)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	n := len(s)
	return ms(s[n/2]), ms(s[min(n-1, n*99/100)]), ms(s[n-1])
}

// freeAddr picks a free local port for walmirror's --metrics-addr.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

type rywClient struct {
	src  *pgx.Conn
	base string // http://host:port of walmirror's metrics server
	read *copyReader
	http http.Client
}

// waitReady waits (up to a minute) until walmirror's /wait answers 200 for
// the source's current position.
func (c *rywClient) waitReady(ctx context.Context) error {
	var pos string
	if err := c.src.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&pos); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		code, err := c.wait(ctx, pos, "1s")
		if err == nil && code == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("/wait not ready after a minute: %d %v", code, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *rywClient) wait(ctx context.Context, pos, timeout string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/wait?lsn="+url.QueryEscape(pos)+"&timeout="+timeout, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// sample writes row id, waits for it and reads it back. total is write
// start → visible, waited is commit returned → visible.
func (c *rywClient) sample(ctx context.Context, id int64) (total, waited time.Duration, found bool, err error) {
	v := "ryw-" + strconv.FormatInt(id, 10)
	t0 := time.Now()
	if _, err := c.src.Exec(ctx, `INSERT INTO bench_ryw (id, v) VALUES ($1, $2)`, id, v); err != nil {
		return 0, 0, false, err
	}
	t1 := time.Now()
	var pos string
	if err := c.src.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&pos); err != nil {
		return 0, 0, false, err
	}
	code, err := c.wait(ctx, pos, "10s")
	if err != nil {
		return 0, 0, false, err
	}
	if code != http.StatusOK {
		return 0, 0, false, fmt.Errorf("/wait?lsn=%s = %d", pos, code)
	}
	found, err = c.read.has(ctx, id, v)
	if err != nil {
		return 0, 0, false, err
	}
	t2 := time.Now()
	return t2.Sub(t0), t2.Sub(t1), found, nil
}

// copyReader reads a row from a copy while walmirror writes it; for DuckDB
// it reads nothing (reads is false).
type copyReader struct {
	reads bool
	db    *sql.DB   // SQLite
	pg    *pgx.Conn // PostgreSQL
}

func openReader(ctx context.Context, w *walmirrorRun) (*copyReader, error) {
	switch w.kind() {
	case "sqlite":
		db, err := sql.Open("sqlite3", "file:"+w.target()+"?mode=ro")
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		return &copyReader{reads: true, db: db}, nil
	case "postgres":
		conn, err := pgx.Connect(ctx, w.target())
		if err != nil {
			return nil, err
		}
		return &copyReader{reads: true, pg: conn}, nil
	}
	return &copyReader{}, nil
}

func (r *copyReader) has(ctx context.Context, id int64, want string) (bool, error) {
	var got string
	var err error
	switch {
	case r.db != nil:
		err = r.db.QueryRowContext(ctx, `SELECT v FROM bench_ryw WHERE id = ?`, id).Scan(&got)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		}
	case r.pg != nil:
		err = r.pg.QueryRow(ctx, `SELECT v FROM public.bench_ryw WHERE id = $1`, id).Scan(&got)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
	default:
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the copy: %w", err)
	}
	return got == want, nil
}

func (r *copyReader) close() {
	if r.db != nil {
		r.db.Close()
	}
	if r.pg != nil {
		r.pg.Close(context.Background())
	}
}
