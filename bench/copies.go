package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/walmirror/walmirror/apply"
)

// The initial-copy workloads: how long a new copy takes to get the rows a
// source already has, walmirror (--initial-copy single and chunked, per
// target) beside the built-in subscriber's copy_data in the same run, and
// how long a chunked copy killed half-way takes to complete after a restart.

// copyModes are the walmirror --initial-copy modes the copy workloads time.
var copyModes = []string{"single", "chunked"}

var typedChecks = []check{{"bench_t", "count(*), sum(id), sum(n), sum(length(s))"}}

// slotName joins parts into a valid replication slot name ([a-z0-9_]).
func slotName(parts ...string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.Join(parts, "_")) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// chunkRows is the --copy-chunk-rows the chunked runs use.
func (e *env) chunkRows() int {
	if e.cfg.copyChunkRows > 0 {
		return e.cfg.copyChunkRows
	}
	return apply.DefaultCopyChunkRows
}

// copyRun is walmirror making a new copy of db with --initial-copy mode.
func (e *env) copyRun(db, kind, mode, prefix string) *walmirrorRun {
	w := e.walmirror(db, kind, slotName(prefix, mode, kind, db))
	level := "info"
	if mode == "chunked" {
		level = "debug" // its "copied chunk" lines say where each chunk's time went
	}
	w.flags = append(w.flags, "--initial-copy", mode, "--log-level", level)
	if mode == "chunked" && e.cfg.copyChunkRows > 0 {
		w.flags = append(w.flags, "--copy-chunk-rows", strconv.Itoa(e.cfg.copyChunkRows))
	}
	w.suffix = " " + mode
	return w
}

// copyData times the built-in subscriber's initial copy (copy_data) of the
// publication bench of db into a fresh database with the same schema.
func (e *env) copyData(ctx context.Context, db string) (result, *builtin, error) {
	b := &builtin{e: e, db: db, targetDB: strings.ReplaceAll(db, "-", "_") + "_builtin"}
	if err := e.dst.Exec(ctx, "postgres", "CREATE DATABASE "+quoteIdent(b.targetDB)); err != nil {
		return result{}, nil, err
	}
	if err := e.copySchema(ctx, db, b.targetDB); err != nil {
		return result{}, nil, err
	}
	began := time.Now()
	if err := b.subscribe(ctx, false); err != nil {
		return result{}, nil, err
	}
	res := result{wall: time.Since(began), consumer: "built-in"}
	// Its slot and worker are not needed any more.
	return res, b, b.drop(ctx)
}

// checkCopy compares the copy's aggregates with want.
func (e *env) checkCopy(ctx context.Context, res *result, kind, target, want string, checks []check) {
	got, err := e.aggregates(ctx, kind, target, checks)
	res.equal = err == nil && got == want
	if !res.equal {
		res.detail = fmt.Sprintf("source %s, copy %s %v", want, got, err)
	}
}

// copyWorkload times each consumer's initial copy of the tables published
// in db: the built-in subscriber's copy_data, and walmirror in each of
// copyModes into each target.
func (e *env) copyWorkload(ctx context.Context, db, name, note string, checks []check) error {
	if err := e.src.Exec(ctx, db, `CREATE PUBLICATION bench FOR ALL TABLES`); err != nil {
		return err
	}
	e.report.addWorkload(name, note)
	want, err := e.aggregates(ctx, "source", e.src.DSN(db), checks)
	if err != nil {
		return err
	}
	for _, c := range e.cfg.consumers {
		switch c {
		case "decode":
			continue
		case "builtin":
			res, b, err := e.copyData(ctx, db)
			if err != nil {
				return fmt.Errorf("copy_data: %w", err)
			}
			res.workload = name
			e.checkCopy(ctx, &res, "postgres", b.target(), want, checks)
			log.Printf("  %-26s %8.2fs  equal=%v %s", res.consumer, res.wall.Seconds(), res.equal, res.detail)
			e.report.add(res)
			continue
		}
		for _, mode := range copyModes {
			w := e.copyRun(db, c, mode, "snap")
			if err := w.createTarget(ctx); err != nil {
				return err
			}
			profile := ""
			if e.cfg.profileDir != "" {
				profile = filepath.Join(e.cfg.profileDir, name+"-"+w.slot+".pprof")
			}
			res, err := e.runBinary(ctx, w.args("--stop-at-lsn", "now"), profile)
			if err != nil {
				return fmt.Errorf("%s: %w", w.name(), err)
			}
			res.workload, res.consumer = name, w.name()
			e.checkCopy(ctx, &res, w.kind(), w.target(), want, checks)
			if err := copyLogSays(res.log, mode); err != nil && res.equal {
				res.equal, res.detail = false, err.Error()
			}
			if mode == "chunked" {
				res.chunks = chunkTimesOf(res.log)
			}
			log.Printf("  %-26s %8.2fs  rss %6.1f MB  equal=%v %s", res.consumer, res.wall.Seconds(), res.rssMB, res.equal, res.detail)
			e.report.add(res)
		}
	}
	return nil
}

// copyLogSays checks that walmirror's log shows the initial copy mode asked
// for, completed.
func copyLogSays(logText, mode string) error {
	switch mode {
	case "single":
		if !strings.Contains(logText, "initial snapshot complete") {
			return errors.New("the log does not say \"initial snapshot complete\"")
		}
	case "chunked":
		if !strings.Contains(logText, "initial copy will be made in chunks while streaming") {
			return errors.New("the log does not say the copy was made in chunks")
		}
		if !strings.Contains(logText, "table copied online") {
			return errors.New("the log does not say \"table copied online\"")
		}
	}
	return nil
}

// chunkTimes is where a chunked copy's time went, from its "copied chunk"
// debug lines (apply/backfill.go: begin, rows with write, end, wait, commit).
type chunkTimes struct {
	chunks  int
	rows    int64
	ms      map[string]float64 // per phase, summed over the chunks
	maxRows int
}

var (
	chunkLineRe = regexp.MustCompile(`msg="copied chunk".* rows=(\d+) `)
	chunkMsRe   = regexp.MustCompile(`(\w+)_ms=([0-9.]+)`)
)

// chunkPhases are the phases of a chunk in the order they happen.
var chunkPhases = []string{"begin", "rows", "write", "end", "wait", "commit"}

func chunkTimesOf(logText string) *chunkTimes {
	ct := &chunkTimes{ms: map[string]float64{}}
	for _, line := range strings.Split(logText, "\n") {
		m := chunkLineRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		ct.chunks++
		ct.rows += int64(n)
		ct.maxRows = max(ct.maxRows, n)
		for _, f := range chunkMsRe.FindAllStringSubmatch(line, -1) {
			v, _ := strconv.ParseFloat(f[2], 64)
			ct.ms[f[1]] += v
		}
	}
	if ct.chunks == 0 {
		return nil
	}
	return ct
}

// chunkTable reports where the chunked copies' time went.
func (r *report) chunkTable(b *strings.Builder) {
	any := false
	for _, res := range r.results {
		any = any || res.chunks != nil
	}
	if !any {
		return
	}
	b.WriteString("\nChunked copies, where the time went (walmirror's `copied chunk` debug lines, summed over the chunks, in seconds): " +
		"**begin** opens the chunk (lock, snapshot, describe); **rows** reads its rows from the source and writes them, of which **write** is the target's writes; " +
		"**end** writes the watermark; **wait** is until the stream delivers it; **commit** is the target commit.\n\n")
	b.WriteString("| workload | consumer | time (s) | chunks | largest chunk (rows) | begin | rows | (write) | end | wait | commit |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, res := range r.results {
		ct := res.chunks
		if ct == nil {
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %.2f | %d | %d |", res.workload, res.consumer, res.wall.Seconds(), ct.chunks, ct.maxRows)
		for _, p := range chunkPhases {
			fmt.Fprintf(b, " %.2f |", ct.ms[p]/1000)
		}
		b.WriteString("\n")
	}
}

// resumeResult is one target's chunked initial copy killed half-way and
// restarted, beside an uninterrupted chunked copy of the same table.
type resumeResult struct {
	consumer          string
	uninterrupted     time.Duration
	killedAfter       time.Duration
	chunksSeen        int // "copied chunk" lines before the kill
	chunks            int // chunks of the uninterrupted copy
	restart           time.Duration
	chunksDone        int    // from the restart's resume line; -1: no resume line
	rowsDone          int64  // ditto
	equal             bool   // row counts and sums, both copies
	verified          string // walmirror verify of the resumed copy: "equal", or why not
	detail            string
	rssMB, restartCPU float64
}

var (
	chunksDoneRe = regexp.MustCompile(`chunks_done=(\d+)`)
	rowsDoneRe   = regexp.MustCompile(`rows_done=(\d+)`)
	copiedRe     = regexp.MustCompile(`msg="table copied online".* rows=(\d+) chunks=(\d+)`)
)

// resumeWorkload copies pgbench_accounts in chunks into each target twice:
// once uninterrupted, once killed (SIGKILL) when half of its rows have
// been copied and then restarted. It reports the total time to a complete
// copy, checks that the restart logged the resume line, and compares the
// resumed copy with the source (aggregates and walmirror verify).
func (e *env) resumeWorkload(ctx context.Context, db string) error {
	if err := e.src.Exec(ctx, db, `CREATE PUBLICATION bench FOR TABLE pgbench_accounts`); err != nil {
		return err
	}
	accounts := e.cfg.snapshotScale * 100_000
	killAt := int64(accounts / 2)
	e.report.addWorkload("resume", fmt.Sprintf("chunked initial copy of pgbench_accounts (scale %d, %d rows, first chunk %d rows), killed with SIGKILL once the log shows %d rows copied, then restarted; beside the same copy uninterrupted",
		e.cfg.snapshotScale, accounts, e.chunkRows(), killAt))
	checks := pgbenchChecks[:1]
	want, err := e.aggregates(ctx, "source", e.src.DSN(db), checks)
	if err != nil {
		return err
	}
	for _, c := range e.cfg.consumers {
		switch c {
		case "decode":
			continue
		case "builtin":
			res, b, err := e.copyData(ctx, db)
			if err != nil {
				return fmt.Errorf("copy_data: %w", err)
			}
			res.workload = "resume"
			e.checkCopy(ctx, &res, "postgres", b.target(), want, checks)
			log.Printf("  %-26s %8.2fs  equal=%v %s", res.consumer, res.wall.Seconds(), res.equal, res.detail)
			e.report.add(res)
			continue
		}
		rr := resumeResult{chunksDone: -1}

		full := e.copyRun(db, c, "chunked", "full")
		rr.consumer = "walmirror-" + full.variant
		if err := full.createTarget(ctx); err != nil {
			return err
		}
		res, err := e.runBinary(ctx, full.args("--stop-at-lsn", "now"), "")
		if err != nil {
			return fmt.Errorf("%s uninterrupted: %w", full.name(), err)
		}
		rr.uninterrupted = res.wall
		if m := copiedRe.FindStringSubmatch(res.log); m != nil {
			rr.chunks, _ = strconv.Atoi(m[2])
		}
		e.checkCopy(ctx, &res, full.kind(), full.target(), want, checks)
		if !res.equal {
			rr.detail = "uninterrupted copy: " + res.detail
		}

		w := e.copyRun(db, c, "chunked", "kill")
		if err := w.createTarget(ctx); err != nil {
			return err
		}
		rr.chunksSeen, rr.killedAfter, err = e.killAfterRows(ctx, w.args("--stop-at-lsn", "now", "--log-level", "debug"), "public.pgbench_accounts", killAt)
		if err != nil {
			return fmt.Errorf("%s killed: %w", w.name(), err)
		}
		res2, err := e.runBinary(ctx, w.args("--stop-at-lsn", "now"), "")
		if err != nil {
			return fmt.Errorf("%s restart: %w", w.name(), err)
		}
		rr.restart, rr.rssMB, rr.restartCPU = res2.wall, res2.rssMB, res2.cpu.Seconds()
		if m := chunksDoneRe.FindStringSubmatch(res2.log); m != nil && strings.Contains(res2.log, "resuming online copy after its last committed chunk") {
			rr.chunksDone, _ = strconv.Atoi(m[1])
			if m := rowsDoneRe.FindStringSubmatch(res2.log); m != nil {
				rr.rowsDone, _ = strconv.ParseInt(m[1], 10, 64)
			}
		}
		if m := copiedRe.FindStringSubmatch(res2.log); m == nil {
			rr.detail += " the restart did not log \"table copied online\";"
		} else if n, _ := strconv.Atoi(m[1]); n != accounts {
			rr.detail += fmt.Sprintf(" the copy logged %s rows (expected %d);", m[1], accounts)
		}
		e.checkCopy(ctx, &res2, w.kind(), w.target(), want, checks)
		rr.equal = res.equal && res2.equal
		if !res2.equal {
			rr.detail += " resumed copy: " + res2.detail
		}
		rr.verified = e.verify(ctx, w)
		log.Printf("  %-26s uninterrupted %.2fs; killed after %.2fs (%d chunks seen), restart %.2fs (resumed after %d chunks), total %.2fs; equal=%v verify=%s %s",
			rr.consumer, rr.uninterrupted.Seconds(), rr.killedAfter.Seconds(), rr.chunksSeen, rr.restart.Seconds(), rr.chunksDone,
			(rr.killedAfter + rr.restart).Seconds(), rr.equal, rr.verified, rr.detail)
		e.report.resumes = append(e.report.resumes, rr)
	}
	return nil
}

// killAfterRows runs walmirror (at debug level) and kills it with SIGKILL
// as soon as its log shows n rows of table copied in chunks. It returns the
// chunks seen and the time the process ran.
func (e *env) killAfterRows(ctx context.Context, args []string, table string, n int64) (int, time.Duration, error) {
	cmd := exec.CommandContext(ctx, e.binary, args...)
	cmd.Stdout = e.logs
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, 0, err
	}
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	seen, killed := 0, false
	var rows int64
	var wall time.Duration
	var tail bytes.Buffer
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "keepalive") && !strings.Contains(line, `msg=committed`) {
			fmt.Fprintln(&tail, line)
		}
		m := chunkLineRe.FindStringSubmatch(line)
		if killed || m == nil || !strings.Contains(line, "table="+table+" ") {
			continue
		}
		k, _ := strconv.ParseInt(m[1], 10, 64)
		seen++
		if rows += k; rows >= n {
			if err := cmd.Process.Kill(); err != nil {
				return seen, 0, err
			}
			wall, killed = time.Since(began), true
		}
	}
	_, _ = io.Copy(io.Discard, stderr)
	werr := cmd.Wait()
	fmt.Fprintf(e.logs, "walmirror (killed after %d chunks) %s\n%s", seen, strings.Join(args[:5], " "), tail.String())
	if !killed {
		return seen, 0, fmt.Errorf("walmirror ended (%v) before the log showed %d rows of %s copied (saw %d in %d chunks): %s", werr, n, table, rows, seen, lastLine(tail.String()))
	}
	return seen, wall, nil
}

// verify runs walmirror verify on a copy and says "equal" or what it found.
func (e *env) verify(ctx context.Context, w *walmirrorRun) string {
	cmd := exec.CommandContext(ctx, e.binary, "verify", "--source", e.src.DSN(w.db), "--target", w.dst, "--publication", "bench", "--json")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	fmt.Fprintf(e.logs, "walmirror verify %s\n%s\n%s", w.dst, stdout.String(), stderr.String())
	var rep struct {
		Equal  bool   `json:"equal"`
		Error  string `json:"error"`
		Tables []struct {
			Table      string `json:"table"`
			Status     string `json:"status"`
			TargetRows int64  `json:"target_rows"`
			Missing    int64  `json:"missing"`
			Extra      int64  `json:"extra"`
			Changed    int64  `json:"changed"`
		} `json:"tables"`
	}
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		return fmt.Sprintf("not verified (%v: %s)", err, lastLine(stderr.String()))
	}
	if rep.Equal && err == nil {
		rows := int64(0)
		for _, t := range rep.Tables {
			rows += t.TargetRows
		}
		return fmt.Sprintf("equal (%d rows)", rows)
	}
	if rep.Error != "" {
		return "not verified: " + rep.Error
	}
	var parts []string
	for _, t := range rep.Tables {
		if t.Status != "equal" {
			parts = append(parts, fmt.Sprintf("%s %s: %d missing, %d extra, %d changed", t.Table, t.Status, t.Missing, t.Extra, t.Changed))
		}
	}
	return "**DIFFERENT**: " + strings.Join(parts, "; ")
}
