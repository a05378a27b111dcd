package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The verify workload: how long walmirror verify takes on a 1M-row typed
// table in each target, beside a full initial copy of the same table into
// the same target in the same run: offline (verify brings the copy to the
// comparison's position itself) and through a running walmirror (verify
// --sidecar: that process pauses its copy at the position and compares).

// verifyResult is one target's figures.
type verifyResult struct {
	consumer    string
	key         string          // bench_t's key (allVerifyKeys)
	copyWall    time.Duration   // walmirror run --initial-copy single --stop-at-lsn now
	offline     []verifyFigures // walmirror verify, repeated
	sidecar     []verifyFigures // walmirror verify --sidecar, repeated
	sidecarNote string          // why there is no sidecar figure
}

// verifyFigures is one verification: the verify process's wall time, CPU
// and peak RSS (for --sidecar, the CPU and RSS are the running walmirror's
// whole run: copy and verifications), and what it found.
type verifyFigures struct {
	wall, cpu time.Duration
	rssMB     float64
	outcome   string // "equal (N rows; how compared)", or what went wrong
}

func (f verifyFigures) ok() bool { return strings.HasPrefix(f.outcome, "equal") }

// verifyRounds is how many times each verification is timed.
const verifyRounds = 2

// allVerifyKeys are the keys the verify workload can give bench_t:
// bigint (its own primary key, id), text (s, md5 text), composite (n, s:
// int and text) and none (REPLICA IDENTITY FULL).
var allVerifyKeys = []string{"bigint", "text", "composite", "none"}

// verifyKeyDDL changes bench_t's key on the source to key.
var verifyKeyDDL = map[string]string{
	"bigint":    `ALTER TABLE bench_t DROP CONSTRAINT IF EXISTS bench_t_pkey, REPLICA IDENTITY DEFAULT; ALTER TABLE bench_t ADD PRIMARY KEY (id)`,
	"text":      `ALTER TABLE bench_t DROP CONSTRAINT IF EXISTS bench_t_pkey, REPLICA IDENTITY DEFAULT; ALTER TABLE bench_t ADD PRIMARY KEY (s)`,
	"composite": `ALTER TABLE bench_t DROP CONSTRAINT IF EXISTS bench_t_pkey, REPLICA IDENTITY DEFAULT; ALTER TABLE bench_t ADD PRIMARY KEY (n, s)`,
	"none":      `ALTER TABLE bench_t DROP CONSTRAINT IF EXISTS bench_t_pkey, REPLICA IDENTITY FULL`,
}

func (e *env) verifyWorkload(ctx context.Context, db string) error {
	if err := e.src.Exec(ctx, db, `CREATE PUBLICATION bench FOR ALL TABLES`); err != nil {
		return err
	}
	e.report.verifyLoad[0] = loadAverage()
	defer func() { e.report.verifyLoad[1] = loadAverage() }()
	e.report.addWorkload("verify", fmt.Sprintf("walmirror verify of a %d-row table (int, text, timestamptz, numeric, jsonb; keyed by %s) in each target, beside walmirror's full initial copy (--initial-copy single) of it into the same target", e.cfg.typedRows, strings.Join(e.cfg.verifyKeys, ", then ")))
	for _, key := range e.cfg.verifyKeys {
		if key != "bigint" || len(e.cfg.verifyKeys) > 1 {
			if err := e.src.Exec(ctx, db, verifyKeyDDL[key]); err != nil {
				return err
			}
			if err := e.src.Exec(ctx, db, `VACUUM ANALYZE bench_t`); err != nil {
				return err
			}
		}
		for _, c := range e.cfg.consumers {
			if c == "decode" || c == "builtin" {
				continue
			}
			prefix := "verify"
			if key != "bigint" {
				prefix += "-" + key
			}
			w := e.copyRun(db, c, "single", prefix)
			w.suffix = ""
			vr := verifyResult{consumer: w.name(), key: key}
			if err := w.createTarget(ctx); err != nil {
				return err
			}
			res, err := e.runBinary(ctx, w.args("--stop-at-lsn", "now"), "")
			if err != nil {
				return fmt.Errorf("%s copy: %w", w.name(), err)
			}
			vr.copyWall = res.wall
			for range verifyRounds {
				vr.offline = append(vr.offline, e.timeVerify(ctx, []string{"verify", "--source", e.src.DSN(db), "--target", w.dst, "--publication", "bench", "--json"}))
			}
			if err := e.sidecarVerify(ctx, w, &vr); err != nil {
				vr.sidecarNote = err.Error()
			}
			log.Printf("  %-26s %-9s key: copy %.2fs; verify %s; --sidecar %s %s", vr.consumer, key, vr.copyWall.Seconds(), figures(vr.offline), figures(vr.sidecar), vr.sidecarNote)
			e.report.verifies = append(e.report.verifies, vr)
		}
	}
	return nil
}

// sidecarVerify starts walmirror run with --metrics-addr on the copy and
// times walmirror verify --sidecar through it.
func (e *env) sidecarVerify(ctx context.Context, w *walmirrorRun, vr *verifyResult) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	run := exec.CommandContext(rctx, e.binary, w.args("--metrics-addr", addr, "--progress-interval", "0")...)
	run.Stdout, run.Stderr = e.logs, e.logs
	run.Cancel = func() error { return run.Process.Signal(syscall.SIGTERM) }
	if err := run.Start(); err != nil {
		return err
	}
	defer func() { cancel(); _ = run.Wait() }()
	base := "http://" + addr
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the running walmirror was not ready after a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range verifyRounds {
		vr.sidecar = append(vr.sidecar, e.timeVerify(ctx, []string{"verify", "--sidecar", base, "--json"}))
	}
	return nil
}

// timeVerify runs walmirror verify and measures it.
func (e *env) timeVerify(ctx context.Context, args []string) verifyFigures {
	cmd := exec.CommandContext(ctx, e.binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	wall := time.Since(began)
	fmt.Fprintf(e.logs, "walmirror %s\n%s\n%s", strings.Join(args, " "), stdout.String(), stderr.String())
	f := verifyFigures{wall: wall}
	if cmd.ProcessState != nil {
		u := usage(cmd, wall)
		f.cpu, f.rssMB = u.cpu, u.rssMB
	}
	var rep struct {
		Equal  bool   `json:"equal"`
		Error  string `json:"error"`
		Tables []struct {
			TargetRows int64  `json:"target_rows"`
			Method     string `json:"method"`
		} `json:"tables"`
	}
	switch jerr := json.Unmarshal(stdout.Bytes(), &rep); {
	case jerr != nil:
		f.outcome = fmt.Sprintf("not verified (%v: %s)", err, lastLine(stderr.String()))
	case rep.Error != "":
		f.outcome = "not verified: " + rep.Error
	case !rep.Equal || err != nil:
		f.outcome = fmt.Sprintf("**DIFFERENT** (%v)", err)
	default:
		rows := int64(0)
		var methods []string // how the tables with rows were compared
		for _, t := range rep.Tables {
			rows += t.TargetRows
			if t.TargetRows > 0 && !slices.Contains(methods, t.Method) {
				methods = append(methods, t.Method)
			}
		}
		f.outcome = fmt.Sprintf("equal (%d rows; %s)", rows, strings.Join(methods, ", "))
	}
	return f
}

// loadAverage is the machine's 1-minute load average ("" if unknown): other
// work on the machine shows in every figure.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.Fields(string(b))[0]
}

// figures shows repeated timings as a range of seconds.
func figures(fs []verifyFigures) string {
	if len(fs) == 0 {
		return "—"
	}
	lo, hi := fs[0].wall, fs[0].wall
	for _, f := range fs {
		lo, hi = min(lo, f.wall), max(hi, f.wall)
	}
	if hi-lo < 5*time.Millisecond {
		return fmt.Sprintf("%.2f", lo.Seconds())
	}
	return fmt.Sprintf("%.2f-%.2f", lo.Seconds(), hi.Seconds())
}

// verifyTable writes the verify workload's table.
func (r *report) verifyTable(b *strings.Builder) {
	b.WriteString("\nVerifying a copy (**verify**): `walmirror verify` of the table in each target (offline: it brings the copy to the comparison's position itself), and `walmirror verify --sidecar` through a `walmirror run --metrics-addr` replicating into the copy (the running process pauses its copy at the position and compares), each timed ")
	fmt.Fprintf(b, "%d times (range), beside walmirror's full initial copy of the same table into the same target in this run. CPU and peak RSS are the verify process's (offline; the largest of the runs); with --sidecar the work is done in the running walmirror, whose figures include its copy, so they are not shown.\n\n", verifyRounds)
	if r.verifyLoad[0] != "" {
		fmt.Fprintf(b, "Load average (1 min) of the machine: %s when the workload began, %s when it ended (2 cores: above 2, other work competed for them).\n\n", r.verifyLoad[0], r.verifyLoad[1])
	}
	b.WriteString("| target | key | full copy (s) | verify (s) | verify / copy | verify CPU (s) | verify peak RSS (MB) | verify --sidecar (s) | --sidecar / copy | result |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, v := range r.verifies {
		var cpu time.Duration
		var rss float64
		outcome := "equal"
		var worst, best time.Duration
		for _, f := range v.offline {
			cpu, rss = max(cpu, f.cpu), max(rss, f.rssMB)
			worst = max(worst, f.wall)
			if best == 0 || f.wall < best {
				best = f.wall
			}
			if !f.ok() {
				outcome = "**NO**: " + f.outcome
			}
		}
		ratio := func(fs []verifyFigures) string {
			if len(fs) == 0 || v.copyWall == 0 {
				return "—"
			}
			lo, hi := fs[0].wall, fs[0].wall
			for _, f := range fs {
				lo, hi = min(lo, f.wall), max(hi, f.wall)
			}
			a, z := lo.Seconds()/v.copyWall.Seconds(), hi.Seconds()/v.copyWall.Seconds()
			if fmt.Sprintf("%.2f", a) == fmt.Sprintf("%.2f", z) {
				return fmt.Sprintf("%.2f", a)
			}
			return fmt.Sprintf("%.2f-%.2f", a, z)
		}
		for _, f := range v.sidecar {
			if !f.ok() && strings.HasPrefix(outcome, "equal") {
				outcome = "**NO** (--sidecar): " + f.outcome
			}
		}
		if v.sidecarNote != "" {
			outcome += "; --sidecar not measured: " + v.sidecarNote
		}
		if strings.HasPrefix(outcome, "equal") && len(v.offline) > 0 {
			outcome = v.offline[0].outcome
		}
		fmt.Fprintf(b, "| %s | %s | %.2f | %s | %s | %.1f | %.0f | %s | %s | %s |\n", v.consumer, v.key, v.copyWall.Seconds(), figures(v.offline), ratio(v.offline),
			cpu.Seconds(), rss, figures(v.sidecar), ratio(v.sidecar), outcome)
	}
}
