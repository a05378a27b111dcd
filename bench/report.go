package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

type report struct {
	machine    []string
	workloads  []string
	notes      map[string]string
	results    []result
	resumes    []resumeResult
	verifies   []verifyResult
	publishes  []publishResult
	verifyLoad [2]string // load average when the verify workload began and ended
	maxTPS     float64
	began      time.Time
}

func newReport() *report { return &report{notes: map[string]string{}, began: time.Now()} }

func (r *report) addWorkload(name, note string) {
	r.workloads = append(r.workloads, name)
	r.notes[name] = note
}

func (r *report) add(res result) { r.results = append(r.results, res) }

func (r *report) describeMachine(ctx context.Context, e *env) error {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1] + " kB RAM"
	}
	conn, err := pgx.Connect(ctx, e.src.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var pg string
	if err := conn.QueryRow(ctx, `SHOW server_version`).Scan(&pg); err != nil {
		return err
	}
	commit, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	dirty, _ := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output()
	rev := strings.TrimSpace(string(commit))
	if len(bytes.TrimSpace(dirty)) > 0 {
		rev += " (with uncommitted changes)"
	}
	r.machine = []string{
		fmt.Sprintf("%d cores (%s), %s", runtime.NumCPU(), cpu, mem),
		"PostgreSQL " + pg + " (source and target on this machine; fsync=off, synchronous_commit=on)",
		runtime.Version() + ", walmirror " + rev,
		"date " + time.Now().UTC().Format("2006-01-02 15:04 MST"),
	}
	return nil
}

func (r *report) find(workload, consumer string) *result {
	for i := range r.results {
		if r.results[i].workload == workload && r.results[i].consumer == consumer {
			return &r.results[i]
		}
	}
	return nil
}

// special says whether workload w has a table of its own rather than
// catch-up times.
func special(w string) bool {
	return w == "lag" || w == "ryw" || w == "verify" || w == "stream" || w == "publish"
}

func (r *report) markdown(cfg config) string {
	var b strings.Builder
	b.WriteString("## walmirror benchmark\n\n")
	for _, m := range r.machine {
		b.WriteString("- " + m + "\n")
	}
	fmt.Fprintf(&b, "- command: `go run ./bench %s`\n\n", strings.Join(os.Args[1:], " "))
	catchUp := false
	for _, w := range r.workloads {
		catchUp = catchUp || !special(w)
	}
	if catchUp {
		b.WriteString("Catch-up time of each consumer alone, after the workload ran with every consumer stopped (each has its own slot, created before the workload). Ratios are against the decode-only consumer (the source's decoding limit) and PostgreSQL's built-in subscriber (`binary = true, streaming = on`) measured in the same run. RSS and CPU are the walmirror process's. \"equal\" is a row-count-and-sums check of the copy against the source.\n\n")
		b.WriteString("| workload | consumer | time (s) | / decode-only | / built-in | peak RSS (MB) | CPU (s) | equal |\n")
		b.WriteString("|---|---|---:|---:|---:|---:|---:|---|\n")
		for _, w := range r.workloads {
			if special(w) {
				continue
			}
			dec, blt := r.find(w, "decode-only"), r.find(w, "built-in")
			for _, res := range r.results {
				if res.workload != w {
					continue
				}
				ratio := func(ref *result) string {
					if ref == nil || ref.wall == 0 {
						return "—"
					}
					return fmt.Sprintf("%.2f", res.wall.Seconds()/ref.wall.Seconds())
				}
				rss, cpu := usageCells(res)
				eq := equalCell(res.equal, res.detail)
				fmt.Fprintf(&b, "| %s | %s | %.2f | %s | %s | %s | %s | %s |\n", w, res.consumer, res.wall.Seconds(), ratio(dec), ratio(blt), rss, cpu, eq)
			}
		}
	}
	b.WriteString("\nWorkloads:\n")
	for _, w := range r.workloads {
		fmt.Fprintf(&b, "- **%s**: %s\n", w, r.notes[w])
	}
	if r.notes["lag"] != "" {
		b.WriteString("\nLag is source commit → target commit; \"witness\" is a decode-only consumer of its own slot following the source during the same run (source commit → its Commit message received): the part of the lag that is the server's and the machine's, which no consumer avoids.\n")
		b.WriteString("\n| lag workload | consumer | p50 (ms) | p99 (ms) | max (ms) | witness p50 (ms) | witness p99 (ms) | target commits | COMMIT p50 / p99 (ms) | transactions | peak RSS (MB) | CPU (s) | equal |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
		for _, res := range r.results {
			if res.workload != "lag" || res.lag == nil {
				continue
			}
			eq := equalCell(res.equal, res.detail)
			wit := LagReport{P50Ms: math.NaN(), P99Ms: math.NaN()}
			if res.witness != nil {
				wit = *res.witness
			}
			fmt.Fprintf(&b, "| lag | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %d | %.1f / %.1f | %d | %.0f | %.1f | %s |\n", res.consumer, res.lag.P50Ms, res.lag.P99Ms, res.lag.MaxMs,
				wit.P50Ms, wit.P99Ms, res.lag.Commits, res.lag.CommitP50Ms, res.lag.CommitP99Ms, res.lag.N, res.rssMB, res.cpu.Seconds(), eq)
		}
	}
	if r.notes["ryw"] != "" {
		b.WriteString("\nRead-your-writes (**ryw**): \"round trip\" is from the start of the client's INSERT to the row read back from the copy (SQLite and PostgreSQL, read while walmirror writes) or, for DuckDB, to `/wait` answering 200 (no other process may open a DuckDB file while walmirror writes it); \"commit → visible\" starts when the INSERT's commit returned. \"stale\" counts reads that missed the row after `/wait` said 200.\n\n")
		b.WriteString("| ryw workload | consumer | round trip p50 (ms) | p99 (ms) | max (ms) | commit → visible p50 (ms) | p99 (ms) | samples | stale | read from copy | equal |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
		for _, res := range r.results {
			if res.workload != "ryw" || res.ryw == nil {
				continue
			}
			eq := equalCell(res.equal, res.detail)
			read := "yes"
			if !res.ryw.ReadsFromCopy {
				read = "no: until /wait = 200"
			}
			q := res.ryw
			fmt.Fprintf(&b, "| ryw | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %d | %d | %s | %s |\n", res.consumer, q.P50Ms, q.P99Ms, q.MaxMs, q.WaitP50Ms, q.WaitP99Ms, q.N, q.Stale, read, eq)
		}
	}
	if r.notes["stream"] != "" {
		r.streamTable(&b)
	}
	r.chunkTable(&b)
	if len(r.resumes) > 0 {
		b.WriteString("\nResumed chunked initial copy (**resume**): the copy killed with SIGKILL once its log showed the chunks below, then restarted to completion; \"total\" is the killed run plus the restart, against an uninterrupted chunked copy and copy_data of the same table in the same run. \"resumed after\" is what the restart logged (`resuming online copy after its last committed chunk`). \"equal\": row count and sums of both copies, and `walmirror verify` (every value) of the resumed one.\n\n")
		b.WriteString("| consumer | uninterrupted (s) | killed at (s) | chunks seen | resumed after | restart (s) | total (s) | total / uninterrupted | total / copy_data | equal |\n")
		b.WriteString("|---|---:|---:|---:|---|---:|---:|---:|---:|---|\n")
		blt := r.find("resume", "built-in")
		for _, rr := range r.resumes {
			total := rr.killedAfter + rr.restart
			vsBuiltin := "—"
			if blt != nil && blt.wall > 0 {
				vsBuiltin = fmt.Sprintf("%.2f", total.Seconds()/blt.wall.Seconds())
			}
			resumed := "**no resume line**"
			if rr.chunksDone >= 0 {
				resumed = fmt.Sprintf("%d chunks, %d rows (uninterrupted: %d chunks)", rr.chunksDone, rr.rowsDone, rr.chunks)
			}
			eq := "yes; verify " + rr.verified
			if !rr.equal || rr.detail != "" || !strings.HasPrefix(rr.verified, "equal") {
				eq = "**NO**: " + rr.detail + "; verify " + rr.verified
			}
			fmt.Fprintf(&b, "| %s | %.2f | %.2f | %d | %s | %.2f | %.2f | %.2f | %s | %s |\n", rr.consumer, rr.uninterrupted.Seconds(),
				rr.killedAfter.Seconds(), rr.chunksSeen, resumed, rr.restart.Seconds(), total.Seconds(),
				total.Seconds()/rr.uninterrupted.Seconds(), vsBuiltin, eq)
		}
		if blt != nil {
			fmt.Fprintf(&b, "\ncopy_data of the same table: %.2f s.\n", blt.wall.Seconds())
		}
	}
	if len(r.verifies) > 0 {
		r.verifyTable(&b)
	}
	if len(r.publishes) > 0 {
		r.publishTable(&b)
	}
	fmt.Fprintf(&b, "\nWhole run: %v.\n", time.Since(r.began).Round(time.Second))
	return b.String()
}

// streamTable reports the stream workload: per transaction size, each
// consumer's commit-to-visible time against decode-only and built-in.
func (r *report) streamTable(b *strings.Builder) {
	b.WriteString("\nLarge transactions (**stream**): \"commit → visible\" is from the source's COMMIT returning to the transaction visible in the copy: walmirror's `/wait` for a position before the commit record answering 200; the built-in subscriber's copy showing the last row (polled every 5 ms); decode-only, the Stream Commit message arriving. \"of which the server's\" is until walmirror received the Stream Commit (its debug log), the rest is walmirror's: reading its spill file back, applying and committing. spill_bytes is the slot's (`pg_stat_replication_slots`); RSS and CPU are the walmirror process's over the whole transaction.\n\n")
	b.WriteString("| rows | consumer | source txn (s) | commit → visible (s) | of which the server's (s) | / decode-only | / built-in | spill_bytes | stream_txns | peak RSS (MB) | CPU (s) | equal |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	ref := func(rows int, consumer string) *StreamReport {
		for _, res := range r.results {
			if res.workload == "stream" && res.stream != nil && res.stream.Rows == rows && res.consumer == consumer {
				return res.stream
			}
		}
		return nil
	}
	for _, res := range r.results {
		s := res.stream
		if res.workload != "stream" || s == nil {
			continue
		}
		ratio := func(o *StreamReport) string {
			if o == nil || o.Visible == 0 {
				return "—"
			}
			return fmt.Sprintf("%.2f", s.Visible.Seconds()/o.Visible.Seconds())
		}
		rss, cpu := usageCells(res)
		eq := equalCell(res.equal, res.detail)
		server := "—"
		if s.CommitReceived > 0 {
			server = fmt.Sprintf("%.2f", s.CommitReceived.Seconds())
		}
		fmt.Fprintf(b, "| %d | %s | %.2f | %.2f | %s | %s | %s | %d | %d | %s | %s | %s |\n", s.Rows, res.consumer, s.SourceTxn.Seconds(), s.Visible.Seconds(),
			server, ratio(ref(s.Rows, "decode-only")), ratio(ref(s.Rows, "built-in")), s.SpillBytes, s.StreamTxns, rss, cpu, eq)
	}
}

// equalCell is a table's "equal" column: yes, or NO with why.
func equalCell(equal bool, detail string) string {
	if equal {
		return "yes"
	}
	return "**NO**: " + detail
}

// usageCells are a walmirror process's peak RSS and CPU, or dashes for a
// consumer that is not one.
func usageCells(res result) (rss, cpu string) {
	if res.rssMB <= 0 {
		return "—", "—"
	}
	return fmt.Sprintf("%.0f", res.rssMB), fmt.Sprintf("%.1f", res.cpu.Seconds())
}
