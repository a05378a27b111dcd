// Command bench measures walmirror against the references that matter, in the
// same run on the same machine: a decode-only consumer of the same slot data
// (the source's limit) and PostgreSQL's built-in subscriber (binary = true,
// streaming = on). Every consumer gets its own slot, created before the
// workload; the workload runs while all are stopped; then each catches up
// alone and is timed. Each target is checked against the source afterwards,
// so a fast wrong answer cannot pass for a result.
//
//	go run ./bench                         # everything, full sizes
//	go run ./bench -quick                  # small sizes, a few minutes
//	go run ./bench -workloads insert -consumers decode,sqlite
//	go run ./bench -workloads update -consumers decode,postgres,postgres+pipeline
//	go run ./bench -workloads snapshot,snapshot-typed,resume   # initial copies only
//
// A consumer written KIND+FLAG runs walmirror into KIND with --FLAG added, so
// two settings are compared on the same workload in the same run.
//
// The initial-copy workloads (snapshot: pgbench tables; snapshot-typed: a
// typed 1M-row table) time walmirror's copy with --initial-copy single and
// chunked into each target beside the built-in subscriber's copy_data;
// resume kills a chunked copy of pgbench_accounts half-way (SIGKILL) and
// times the restart to a complete copy.
//
// verify times walmirror verify of the typed 1M-row table in each target
// (offline, and --sidecar through a running walmirror) beside a full
// initial copy of it into the same target in the same run.
//
//	go run ./bench -workloads verify -consumers sqlite,duckdb,postgres
//
// stream commits one 1M-row and one 5M-row transaction (-stream-rows) while
// each consumer follows live and times the source's COMMIT to the rows
// visible in the copy, beside a decode-only streaming consumer and the
// built-in subscriber (streaming = on, parallel on 16+); it reports the
// slots' spill_bytes and walmirror's peak RSS.
//
//	go run ./bench -workloads stream
//
// lag runs pgbench at half the measured maximum rate while each target
// follows live and reports source-commit-to-target-commit latency; ryw does
// the same and times a client's read-your-writes round trip (insert, take
// pg_current_wal_lsn(), GET walmirror's /wait, read the row from the copy).
//
//	go run ./bench -workloads lag,ryw -consumers sqlite,duckdb,postgres
//
// publish measures walmirror's CPU while it follows pgbench at a fixed 40
// transactions/s beside a big table nothing writes, on each target and on
// DuckDB also with --publish-copy every 10 s.
//
//	go run ./bench -workloads publish -consumers sqlite,duckdb,postgres
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/walmirror/walmirror/testenv"
)

type config struct {
	workloads, consumers []string
	rows, txnRows        int
	updateRows           int
	pgbenchSeconds       int
	pgbenchScale         int
	pgbenchClients       int
	bigTxRows            int
	snapshotScale        int
	typedRows            int
	verifyKeys           []string // keys of the table the verify workload verifies (verify.go)
	copyChunkRows        int
	lagSeconds           int
	lagRate              float64
	coldRows             int
	streamRows           []int
	profileDir           string
	out                  string
	keep                 bool
	walmirrorArgs        []string
}

var allWorkloads = []string{"insert", "update", "pgbench", "bigtx", "snapshot", "snapshot-typed", "resume", "verify", "lag", "ryw", "stream", "publish"}
var allConsumers = []string{"decode", "builtin", "sqlite", "duckdb", "postgres"}

func main() {
	var cfg config
	var workloads, consumers string
	quick := flag.Bool("quick", false, "small sizes: a run of a few minutes")
	flag.StringVar(&workloads, "workloads", strings.Join(allWorkloads, ","), "which workloads")
	flag.StringVar(&consumers, "consumers", strings.Join(allConsumers, ","), "which consumers (decode and builtin are the references)")
	flag.IntVar(&cfg.rows, "rows", 1_000_000, "rows inserted by the insert workload")
	flag.IntVar(&cfg.updateRows, "update-rows", 1_000_000, "rows updated by the update workload")
	flag.IntVar(&cfg.txnRows, "txn-rows", 1000, "rows per source transaction (insert, update)")
	flag.IntVar(&cfg.pgbenchSeconds, "pgbench-seconds", 20, "pgbench TPC-B duration")
	flag.IntVar(&cfg.pgbenchClients, "pgbench-clients", 4, "pgbench clients")
	flag.IntVar(&cfg.pgbenchScale, "pgbench-scale", 1, "pgbench scale for the TPC-B workload")
	flag.IntVar(&cfg.bigTxRows, "bigtx-rows", 5_000_000, "rows in the single-transaction workload")
	flag.IntVar(&cfg.snapshotScale, "snapshot-scale", 10, "pgbench scale copied by the snapshot and resume workloads")
	flag.IntVar(&cfg.typedRows, "typed-rows", 1_000_000, "rows of the typed table copied by the snapshot-typed workload and verified by the verify workload")
	verifyKeys := flag.String("verify-keys", "bigint", "keys the verify workload gives its table, one copy and verification each: "+strings.Join(allVerifyKeys, ", "))
	flag.IntVar(&cfg.copyChunkRows, "copy-chunk-rows", 0, "walmirror --copy-chunk-rows for the chunked initial copies (0: walmirror's default)")
	flag.IntVar(&cfg.lagSeconds, "lag-seconds", 20, "duration of the fixed-rate lag workload (the publish workload runs three times as long)")
	flag.Float64Var(&cfg.lagRate, "lag-rate", 0, "pgbench rate (tps) of the lag and ryw workloads; 0: half the maximum measured at the start (a fixed rate keeps alternating runs comparable on a machine whose load changes)")
	flag.IntVar(&cfg.coldRows, "cold-rows", 2_000_000, "rows of the table nothing writes in the publish workload")
	flag.StringVar(&cfg.profileDir, "profile", "", "write a CPU profile of each walmirror run into this directory")
	flag.StringVar(&cfg.out, "out", "", "also write the Markdown report to this file")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work directory (targets, logs)")
	streamRows := flag.String("stream-rows", "1000000,5000000", "rows of the single transactions of the stream workload, comma-separated")
	extra := flag.String("walmirror-args", "", "extra flags for every walmirror run, space-separated (e.g. \"--chunk-rows 50000\")")
	flag.Parse()
	if *quick {
		cfg.rows, cfg.updateRows, cfg.bigTxRows = 100_000, 100_000, 500_000
		cfg.pgbenchSeconds, cfg.snapshotScale, cfg.lagSeconds = 5, 2, 5
		cfg.typedRows = 200_000
		cfg.coldRows = 100_000
		*streamRows = "100000,500000"
	}
	for _, f := range strings.Split(*streamRows, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			log.Fatalf("bench: -stream-rows: %q is not a row count", f)
		}
		cfg.streamRows = append(cfg.streamRows, n)
	}
	cfg.walmirrorArgs = strings.Fields(*extra)
	cfg.verifyKeys = splitList(*verifyKeys, allVerifyKeys)
	cfg.workloads = splitList(workloads, allWorkloads)
	cfg.consumers = splitList(consumers, allConsumers)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

func splitList(s string, valid []string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		base, _, _ := strings.Cut(p, "+")
		ok := false
		for _, v := range valid {
			ok = ok || v == p || v == base
		}
		if !ok {
			log.Fatalf("bench: unknown %q (want some of %s)", p, strings.Join(valid, ","))
		}
		out = append(out, p)
	}
	return out
}

// env is what every workload shares: servers, the binary, a work directory.
type env struct {
	cfg      config
	src, dst *testenv.Server
	binary   string
	work     string
	logs     io.Writer
	report   *report
}

func run(ctx context.Context, cfg config) error {
	work, err := os.MkdirTemp("", "walmirror-bench-")
	if err != nil {
		return err
	}
	if cfg.keep {
		log.Printf("work directory: %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	binary := filepath.Join(work, "walmirror")
	log.Printf("building walmirror")
	if out, err := exec.Command("go", "build", "-o", binary, "./cmd/walmirror").CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, out)
	}
	logFile, err := os.Create(filepath.Join(work, "bench.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	serverSettings := map[string]string{
		"max_wal_size": "8GB", "checkpoint_timeout": "30min", "shared_buffers": "512MB",
		"max_replication_slots": "30", "max_wal_senders": "30", "max_logical_replication_workers": "8",
		"max_worker_processes": "16", "wal_sender_timeout": "5min", "wal_receiver_timeout": "5min",
		// The launcher otherwise waits up to 5 s before restarting a re-enabled subscription's worker.
		"wal_retrieve_retry_interval": "50ms",
		// Commits are flushed (cheaply: fsync is off) before the walsender may
		// send them; with asynchronous commit the WAL writer's 200 ms delay
		// would dominate every lag figure.
		"synchronous_commit": "on",
		// Vacuum runs where the bench says (workloads.go), not at random
		// moments during one consumer's timed run.
		"autovacuum": "off",
	}
	log.Printf("starting source and target PostgreSQL")
	src, err := testenv.Start(ctx, testenv.Options{Settings: serverSettings})
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := testenv.Start(ctx, testenv.Options{Settings: serverSettings})
	if err != nil {
		return err
	}
	defer dst.Close()
	e := &env{cfg: cfg, src: src, dst: dst, binary: binary, work: work, logs: logFile, report: newReport()}
	if err := e.report.describeMachine(ctx, e); err != nil {
		return err
	}
	for _, w := range cfg.workloads {
		log.Printf("workload %s", w)
		if err := e.runWorkload(ctx, w); err != nil {
			return fmt.Errorf("workload %s: %w", w, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	md := e.report.markdown(cfg)
	fmt.Print(md)
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, []byte(md), 0o644); err != nil {
			return err
		}
		log.Printf("report written to %s", cfg.out)
	}
	return nil
}
