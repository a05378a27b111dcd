package sim

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/internal/mirrortest"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/sinks/duckdb"
	"github.com/walmirror/walmirror/sinks/postgres"
	"github.com/walmirror/walmirror/sinks/sqlite"
	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/testenv"
)

var server *testenv.Server

// TestMain starts the simulation's server. Its WAL writer runs every 20 ms
// (WALMIRROR_SIM_WAL_WRITER_DELAY; PostgreSQL's default is 200ms): an
// online copy's watermark is a non-transactional message nothing flushes
// before PostgreSQL 17, so on a quiet source each chunk waits for the WAL
// writer, and the simulation copies in chunks of a few rows.
func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	delay := cmp.Or(os.Getenv("WALMIRROR_SIM_WAL_WRITER_DELAY"), "20ms")
	s, err := testenv.Start(context.Background(), testenv.Options{Settings: map[string]string{"wal_writer_delay": delay}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start PostgreSQL:", err)
		os.Exit(1)
	}
	server = s
	code := m.Run()
	s.Close()
	os.Exit(code)
}

// params are everything besides the seed that shapes a run; a failure
// prints them all, since the transactions depend on them too.
type params struct {
	seed    uint64
	txns    int // transactions per round
	rounds  int // rounds after the initial snapshot
	bigRows int // rows a big transaction changes
	ddl     int // percentage of transactions that change a table's shape
	avoid   map[string]bool
	// copy are the online-copy features the seed uses (copyModes); nil:
	// the seed picks them.
	copy map[string]bool
}

// The online-copy features a seed can use (WALMIRROR_SIM_COPY, SIM_COPY):
//   - list: the publication lists some tables, the others are added
//     mid-stream (ALTER PUBLICATION ... ADD TABLE) with the rows they hold;
//   - resync: transactions request resyncs of tables (the message
//     walmirror resync --table writes);
//   - chunked: the initial copy is made by online copies (--initial-copy
//     chunked);
//   - live: about half the rounds after the first are replicated while
//     they are generated, by runs killed and restarted at random moments,
//     so online copies interleave with the stream (otherwise walmirror
//     catches up first and copies a quiet source).
//
// Every seed with one of them copies with small chunks (--copy-chunk-rows
// 3 to 50).
var copyModes = []string{"list", "resync", "chunked", "live"}

func (p params) copyList() string {
	m := slices.Sorted(maps.Keys(p.copy))
	if len(m) == 0 {
		return "none"
	}
	return strings.Join(m, ",")
}

func (p params) repro() string {
	avoid := slices.Sorted(maps.Keys(p.avoid))
	if len(avoid) == 0 {
		avoid = []string{"none"}
	}
	return fmt.Sprintf("make sim SEED=%d SIM_TXNS=%d SIM_ROUNDS=%d SIM_BIG=%d SIM_DDL=%d SIM_AVOID=%s SIM_COPY=%s",
		p.seed, p.txns, p.rounds, p.bigRows, p.ddl, strings.Join(avoid, ","), p.copyList())
}

// parseCopy reads a WALMIRROR_SIM_COPY list: "none", "all" or modes.
func parseCopy(t *testing.T, s string) map[string]bool {
	out := map[string]bool{}
	for _, m := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		switch {
		case m == "none":
		case m == "all":
			for _, c := range copyModes {
				out[c] = true
			}
		case slices.Contains(copyModes, m):
			out[m] = true
		default:
			t.Fatalf("WALMIRROR_SIM_COPY: %q is none of %q (or all, none)", m, copyModes)
		}
	}
	return out
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, s)
	}
	return n
}

// TestSim runs the simulation. By default (make test) it is short: a fixed
// seed and a random one, a few dozen transactions each. make sim sets
// WALMIRROR_SIM_LONG and the sizes; WALMIRROR_SIM_SEED picks one seed,
// WALMIRROR_SIM_SEEDS=k runs k random seeds and reports how many passed.
func TestSim(t *testing.T) {
	if server == nil {
		t.Skip("needs PostgreSQL (not in -short mode)")
	}
	long := os.Getenv("WALMIRROR_SIM_LONG") != ""
	// The short run makes schema changes more often, to see a few of each
	// kind in its 50 transactions.
	base := params{txns: 25, rounds: 2, bigRows: 300, ddl: 25}
	if long {
		base = params{txns: 300, rounds: 4, bigRows: 3000, ddl: 6}
	}
	base.txns = envInt(t, "WALMIRROR_SIM_TXNS", base.txns)
	base.rounds = envInt(t, "WALMIRROR_SIM_ROUNDS", base.rounds)
	base.bigRows = envInt(t, "WALMIRROR_SIM_BIG", base.bigRows)
	base.ddl = envInt(t, "WALMIRROR_SIM_DDL", base.ddl)
	// The generator steers clear of known walmirror bugs (KnownBugs) unless
	// WALMIRROR_SIM_AVOID names the ones to avoid ("none": run them all).
	base.avoid = map[string]bool{}
	avoid := KnownBugs
	if a := os.Getenv("WALMIRROR_SIM_AVOID"); a != "" {
		avoid = strings.FieldsFunc(a, func(r rune) bool { return r == ',' || r == ' ' })
	}
	for _, b := range avoid {
		if b == "none" {
			continue
		}
		if !slices.Contains(KnownBugs, b) {
			t.Fatalf("WALMIRROR_SIM_AVOID: %q is none of %q", b, KnownBugs)
		}
		base.avoid[b] = true
	}

	// The online-copy features: WALMIRROR_SIM_COPY, or each seed picks.
	var copyFixed map[string]bool
	if c := os.Getenv("WALMIRROR_SIM_COPY"); c != "" {
		copyFixed = parseCopy(t, c)
	}

	var seeds []uint64
	switch s, k := os.Getenv("WALMIRROR_SIM_SEED"), envInt(t, "WALMIRROR_SIM_SEEDS", 0); {
	case s != "":
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WALMIRROR_SIM_SEED=%q: %v", s, err)
		}
		seeds = []uint64{seed}
	case k > 0:
		for range k {
			seeds = append(seeds, rand.Uint64N(1<<53))
		}
	case long:
		seeds = []uint64{rand.Uint64N(1 << 53)}
	default:
		seeds = []uint64{1, rand.Uint64N(1 << 53)}
	}
	var failed []string
	for i, seed := range seeds {
		p := base
		p.seed = seed
		p.copy = copyFixed
		if p.copy == nil && !long && i == 0 {
			// The short run's fixed seed uses every online-copy feature.
			p.copy = parseCopy(t, "all")
		}
		if p.copy == nil {
			r := rand.New(rand.NewPCG(seed, 0xc0b1))
			p.copy = map[string]bool{}
			for _, m := range copyModes {
				if r.IntN(2) == 0 {
					p.copy[m] = true
				}
			}
		}
		if !t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runSim(t, p) }) {
			failed = append(failed, p.repro())
		}
	}
	t.Logf("simulation: %d of %d seeds passed (%d transactions × %d rounds each)", len(seeds)-len(failed), len(seeds), base.txns, base.rounds)
	for _, f := range failed {
		t.Logf("reproduce: %s", f)
	}
}

// target is one copy walmirror maintains, each with its own slot.
type target struct {
	kind string // sqlite, duckdb, postgres
	path string // file targets
	dsn  string // postgres target
	slot string
	log  syncBuffer

	loaderRows int // postgres target
}

func (tg *target) open(ctx context.Context) (apply.Sink, error) {
	log := slog.New(slog.NewTextHandler(&tg.log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	switch tg.kind {
	case "sqlite":
		return sqlite.Open(ctx, tg.path, log)
	case "duckdb":
		return duckdb.Open(ctx, tg.path, log)
	}
	opts := postgres.DefaultOptions()
	opts.LoaderRows = tg.loaderRows
	return postgres.Open(ctx, tg.dsn, log, opts)
}

// sim is one seeded run.
type sim struct {
	t       *testing.T
	p       params
	srcDSN  string
	src     *pgx.Conn
	gen     *Gen
	orch    *rand.Rand // run-time choices (limits, stop points), apart from the transactions
	limits  apply.Limits
	targets []*target
	sqlLog  *os.File // every transaction, for reproducing by hand
	txCount int
	cut     atomic.Int64 // interrupted runs cancelled before they finished
	// Online copies (see copyModes).
	copyRNG   *rand.Rand // their run-time choices, apart from orch
	copyRows  int        // Config.CopyChunkRows
	poll      time.Duration
	skipped   atomic.Int64 // part-way checks skipped: copies in progress or past the stop
	liveCount int
}

// config is how every run of tg is configured, without a stop position.
func (s *sim) config(tg *target) apply.Config {
	cfg := apply.Config{
		Source:        source.Config{DSN: s.srcDSN, Slot: tg.slot, Publication: Publication},
		Limits:        s.limits,
		Logger:        slog.New(slog.NewTextHandler(&tg.log, &slog.HandlerOptions{Level: slog.LevelInfo})),
		CopyChunkRows: s.copyRows,
		PollInterval:  s.poll,
		// A divergence is walmirror's own bug here: stop at it rather
		// than copy the table again.
		StopOnDivergence: true,
	}
	if s.p.copy["chunked"] {
		cfg.InitialCopy = "chunked"
	} else {
		cfg.InitialCopy = "single"
	}
	return cfg
}

// partway is a stop part-way through a round: its position, the model
// then, and the tables the part-way comparison leaves out (added to the
// publication in the round: whether walmirror has noticed one by the stop
// depends on when it polled).
type partway struct {
	lsn  lsn.LSN
	snap Snapshot
	skip []bool
}

func runSim(t *testing.T, p params) {
	ctx := context.Background()
	start := time.Now()
	s := &sim{t: t, p: p, gen: NewGen(p.seed, p.bigRows), orch: rand.New(rand.NewPCG(p.seed, 0x0c4e))}
	s.gen.DDL = p.ddl
	s.gen.Avoid = p.avoid
	s.limits = pickLimits(s.orch)
	s.copyRNG = rand.New(rand.NewPCG(p.seed, 0xc0b2))
	s.copyRows = apply.DefaultCopyChunkRows
	s.poll = apply.DefaultPollInterval
	if len(p.copy) > 0 {
		s.copyRows = []int{3, 5, 10, 25, 50}[s.copyRNG.IntN(5)]
		s.poll = []time.Duration{10 * time.Millisecond, 100 * time.Millisecond, time.Second, -1}[s.copyRNG.IntN(4)]
	}
	s.gen.Copies.List = p.copy["list"]
	s.gen.Copies.AddEvery = max(2, p.txns*p.rounds/len(s.gen.M.Tables))
	if p.copy["resync"] {
		s.gen.Copies.ResyncPct = 4
	}
	t.Logf("seed %d; limits %+v; online copies: %s, chunk rows %d, poll %v; reproduce with: %s", p.seed, s.limits, p.copyList(), s.copyRows, s.poll, p.repro())
	defer func() {
		if t.Failed() {
			t.Logf("FAILED seed %d: reproduce with: %s", p.seed, p.repro())
			if s.sqlLog != nil {
				t.Logf("the source transactions are in %s", s.sqlLog.Name())
			}
			for _, tg := range s.targets {
				t.Logf("%s log (tail):\n%s", tg.kind, tail(tg.log.String(), 3000))
			}
		} else {
			if os.Getenv("WALMIRROR_SIM_LOGS") != "" {
				for _, tg := range s.targets {
					t.Logf("%s log:\n%s", tg.kind, tg.log.String())
				}
			}
			if s.sqlLog != nil {
				os.Remove(s.sqlLog.Name())
			}
		}
	}()

	srcDB, err := server.CreateDatabase(ctx, "sim")
	if err != nil {
		t.Fatal(err)
	}
	tgtDB, err := server.CreateDatabase(ctx, "simtarget")
	if err != nil {
		t.Fatal(err)
	}
	s.srcDSN = server.DSN(srcDB)
	if p.seed%2 == 0 {
		// Even seeds: the server streams transactions larger than 64kB
		// while they run (protocol v2+), which walmirror spills and
		// applies at their commit.
		if err := server.Exec(ctx, srcDB, `ALTER DATABASE "`+srcDB+`" SET logical_decoding_work_mem = '64kB'`); err != nil {
			t.Fatal(err)
		}
		t.Logf("large transactions streamed while in progress (logical_decoding_work_mem = 64kB)")
	}
	if s.sqlLog, err = os.CreateTemp("", fmt.Sprintf("walmirror-sim-%d-*.sql", p.seed)); err != nil {
		t.Fatal(err)
	}
	defer s.sqlLog.Close()
	var ddl []string
	for _, tb := range s.gen.M.Tables {
		ddl = append(ddl, tb.CreateSQL())
	}
	ddl = append(ddl, s.gen.PublicationSQL())
	s.logSQL(strings.Join(ddl, "\n"))
	if err := server.Exec(ctx, srcDB, strings.Join(ddl, "\n")); err != nil {
		t.Fatalf("create source tables: %v", err)
	}
	cfg, err := pgx.ParseConfig(s.srcDSN)
	if err != nil {
		t.Fatal(err)
	}
	if s.src, err = pgx.ConnectConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	defer s.src.Close(ctx)

	// Slots pin WAL and the server has 20: many seeds must not run out.
	t.Cleanup(func() { s.dropSlots(srcDB, tgtDB) })

	dir := t.TempDir()
	s.targets = []*target{
		{kind: "sqlite", path: filepath.Join(dir, "copy.sqlite"), slot: "s_sqlite_" + srcDB},
		{kind: "duckdb", path: filepath.Join(dir, "copy.duckdb"), slot: "s_duckdb_" + srcDB},
		// The loader session takes every staged batch, those of 50 rows
		// and more, or (the default) of 4000 and more.
		{kind: "postgres", dsn: server.DSN(tgtDB), slot: "s_pg_" + srcDB, loaderRows: []int{1, 50, 4000}[s.orch.IntN(3)]},
	}
	t.Logf("PostgreSQL target: loader rows %d", s.targets[2].loaderRows)
	if p.copy["resync"] {
		for _, tg := range s.targets {
			s.gen.Copies.Slots = append(s.gen.Copies.Slots, tg.slot)
		}
	}

	// Round 0: rows that exist before the slots do, copied by the initial snapshot.
	s.exec(s.gen.Initial())
	s.checkSource(ctx)
	s.checkToasted(ctx)
	s.replicate(ctx, nil)

	for round := 1; round <= p.rounds && !t.Failed(); round++ {
		// Stop part-way once per round, at a transaction the seed picks:
		// the next run resumes from there.
		mid := s.orch.IntN(p.txns)
		var pw *partway
		rows, rolledBack := 0, 0
		s.gen.Round()
		ddlBefore := maps.Clone(s.gen.DDLCount)
		published := slices.Clone(s.gen.M.Published)
		var stopLive func() error
		if p.copy["live"] && s.copyRNG.IntN(2) == 0 {
			stopLive = s.live(ctx)
			s.liveCount++
		}
		for i := range p.txns {
			tx := s.gen.Next()
			s.exec(tx)
			rows += tx.Rows
			if !tx.Commit {
				rolledBack++
			}
			if i == p.txns-1 {
				// Tables just added to the publication get their write.
				if tx, ok := s.gen.Pending(); ok {
					s.exec(tx)
				}
			}
			if i == mid {
				pw = &partway{lsn: s.currentLSN(ctx), snap: s.gen.M.Snapshot()}
				for ti, p := range s.gen.M.Published {
					pw.skip = append(pw.skip, p && !published[ti])
				}
			}
			if stopLive != nil {
				time.Sleep(time.Duration(s.copyRNG.IntN(4)) * time.Millisecond)
			}
		}
		if stopLive != nil {
			if err := stopLive(); err != nil {
				t.Fatalf("round %d, replicated live: %v", round, err)
			}
		}
		var ddl []string
		for _, k := range slices.Sorted(maps.Keys(s.gen.DDLCount)) {
			if n := s.gen.DDLCount[k] - ddlBefore[k]; n > 0 {
				ddl = append(ddl, fmt.Sprintf("%s %d", k, n))
			}
		}
		how := ""
		if stopLive != nil {
			how = " (replicated live meanwhile)"
		}
		t.Logf("round %d%s: %d transactions (%d rolled back), %d row changes, schema changes: %s; stop part-way after transaction %d",
			round, how, p.txns, rolledBack, rows, strings.Join(ddl, ", "), mid+1)
		s.checkSource(ctx)
		began := time.Now()
		s.replicate(ctx, pw)
		t.Logf("round %d: replicated and compared in %v", round, time.Since(began).Round(time.Millisecond))
	}
	streamed := "no"
	if conn, err := pgx.Connect(ctx, s.srcDSN); err == nil {
		// The slots' counters: transactions the server streamed in progress.
		var n int64
		if err := conn.QueryRow(ctx, `SELECT coalesce(sum(stream_txns), 0) FROM pg_stat_replication_slots WHERE slot_name LIKE '%' || current_database()`).Scan(&n); err == nil {
			streamed = strconv.FormatInt(n, 10)
		}
		conn.Close(ctx)
	}
	t.Logf("seed %d: %d transactions in %v; %d runs interrupted mid-way; %d rounds replicated live; %d part-way checks skipped (copies in progress or past the stop); %s transactions streamed in progress",
		p.seed, s.txCount, time.Since(start).Round(time.Millisecond), s.cut.Load(), s.liveCount, s.skipped.Load(), streamed)
}

// dropSlots removes the run's slots (retrying while a walsender still
// holds one) and its databases.
func (s *sim) dropSlots(srcDB, tgtDB string) {
	ctx := context.Background()
	for _, tg := range s.targets {
		q := fmt.Sprintf("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '%s'", tg.slot)
		for try := 0; ; try++ {
			err := server.Exec(ctx, "postgres", q)
			if err == nil {
				break
			}
			if try == 50 {
				s.t.Logf("drop slot %s: %v", tg.slot, err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, db := range []string{srcDB, tgtDB} {
		if err := server.Exec(ctx, "postgres", `DROP DATABASE "`+db+`" WITH (FORCE)`); err != nil {
			s.t.Logf("drop database %s: %v", db, err)
		}
	}
}

// pickLimits moves chunk and group-commit boundaries with the seed: tiny
// limits make every source transaction span chunks and target commits,
// large ones group many source transactions into one target commit.
func pickLimits(r *rand.Rand) apply.Limits {
	pick := func(xs ...int) int { return xs[r.IntN(len(xs))] }
	return apply.Limits{
		CommitRows:     pick(1, 10, 500, 100_000),
		CommitBytes:    pick(16<<10, 64<<20),
		CommitInterval: time.Duration(pick(0, 50, 60_000)) * time.Millisecond,
		ChunkRows:      pick(2, 16, 500, 20_000), // 1 makes a long run take minutes
		ChunkBytes:     pick(8<<10, 1<<20, 16<<20),
	}
}

func (s *sim) logSQL(q string) {
	fmt.Fprintf(s.sqlLog, "%s\n\n", q)
}

func (s *sim) exec(tx Txn) {
	s.t.Helper()
	s.txCount++
	q := tx.SQL()
	s.logSQL(fmt.Sprintf("-- transaction %d\n%s", s.txCount, q))
	if _, err := s.src.PgConn().Exec(context.Background(), q).ReadAll(); err != nil {
		s.t.Fatalf("transaction %d failed on the source (a generator bug): %v\n%.2000s", s.txCount, err, q)
	}
}

func (s *sim) currentLSN(ctx context.Context) lsn.LSN {
	s.t.Helper()
	var text string
	if err := s.src.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&text); err != nil {
		s.t.Fatal(err)
	}
	l, err := lsn.Parse(text)
	if err != nil {
		s.t.Fatal(err)
	}
	return l
}

// replicate brings every target up to date, in parallel, checking each
// against the model: first up to a part-way stop (when given), then
// everything against the model's current state.
func (s *sim) replicate(ctx context.Context, mid *partway) {
	final := s.gen.M.Snapshot()
	var wg sync.WaitGroup
	errs := make([]error, len(s.targets))
	for i, tg := range s.targets {
		// Half the time a first run is cut short, as by SIGINT, after a
		// delay the seed picks (what it has applied by then depends on
		// timing: the one part of a run a seed does not fix).
		var interrupt time.Duration
		if s.orch.IntN(2) == 0 {
			interrupt = time.Duration(1+s.orch.IntN(500)) * time.Millisecond
		}
		wg.Go(func() { errs[i] = s.replicateOne(ctx, tg, interrupt, mid, final) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			s.t.Errorf("%s: %v", s.targets[i].kind, err)
		}
	}
	if s.t.Failed() {
		s.t.FailNow()
	}
}

func (s *sim) replicateOne(ctx context.Context, tg *target, interrupt time.Duration, mid *partway, final Snapshot) (err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cfg := s.config(tg)
	if mid != nil {
		cfg.StopAt = mid.lsn // never past what the part-way check expects
	} else {
		cfg.StopAtNow = true
	}
	if interrupt > 0 {
		if err := s.interrupted(ctx, tg, cfg, interrupt); err != nil {
			return err
		}
	}
	cfg.StopAt, cfg.StopAtNow = 0, false

	sink, err := tg.open(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := sink.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close sink: %w", cerr)
		}
	}()
	if mid != nil {
		c := cfg
		c.StopAt = mid.lsn
		if err := apply.Run(ctx, sink, c); err != nil {
			return fmt.Errorf("run to %s: %w", mid.lsn, err)
		}
		// A bounded run goes on past its stop until the online copies in
		// progress are complete, and a live round may have gone past it
		// before: the copy is as of the stop only when the stored state
		// holds no copies and is not past it.
		st, _, err := sink.ReadState(ctx)
		if err != nil {
			return fmt.Errorf("read the state after a run to %s: %w", mid.lsn, err)
		}
		switch {
		case len(st.Copies) > 0:
			s.skipped.Add(1)
			s.t.Logf("%s: part-way check at %s skipped: %d online copies in progress", tg.kind, mid.lsn, len(st.Copies))
		case st.LSN > mid.lsn:
			s.skipped.Add(1)
			s.t.Logf("%s: part-way check at %s skipped: the copy is at %s, past it", tg.kind, mid.lsn, st.LSN)
		default:
			if err := s.compare(ctx, tg, sink, mid.snap, mid.skip); err != nil {
				return fmt.Errorf("stopped part-way at %s: %w", mid.lsn, err)
			}
		}
	}
	cfg.StopAtNow = true
	if err := apply.Run(ctx, sink, cfg); err != nil {
		return fmt.Errorf("run to now: %w", err)
	}
	if st, _, err := sink.ReadState(ctx); err != nil {
		return fmt.Errorf("read the state after a run to now: %w", err)
	} else if len(st.Copies) > 0 {
		return fmt.Errorf("a run to now ended with online copies in progress: %+v", st.Copies)
	}
	return s.compare(ctx, tg, sink, final, nil)
}

// live replicates into every target while the caller generates a round:
// runs cut short at random moments (as by SIGINT) and started again, until
// the returned stop is called, which reports the first failure.
func (s *sim) live(ctx context.Context) (stop func() error) {
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	errs := make([]error, len(s.targets))
	for i, tg := range s.targets {
		// Timing only: what a live run applies depends on it anyway.
		r := rand.New(rand.NewPCG(rand.Uint64(), 0))
		wg.Go(func() {
			for lctx.Err() == nil {
				d := time.Duration(20+r.IntN(1500)) * time.Millisecond
				if err := s.interrupted(lctx, tg, s.config(tg), d); err != nil && lctx.Err() == nil {
					errs[i] = fmt.Errorf("%s: %w", tg.kind, err)
					return
				}
			}
		})
	}
	return func() error {
		cancel()
		wg.Wait()
		return errors.Join(errs...)
	}
}

// interrupted runs walmirror on its own sink and cancels it after d, like
// SIGINT to the binary; the sink is closed as the binary would on exit.
func (s *sim) interrupted(ctx context.Context, tg *target, cfg apply.Config, d time.Duration) error {
	sink, err := tg.open(ctx)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	deadline := time.Now().Add(d)
	// A dial can time out on the deadline a moment before the context
	// reports it: past the deadline, any error is the interruption's.
	if err := apply.Run(rctx, sink, cfg); err != nil && rctx.Err() == nil && time.Now().Before(deadline) {
		sink.Close()
		return fmt.Errorf("run interrupted after %v: %w", d, err)
	}
	if rctx.Err() != nil || !time.Now().Before(deadline) {
		s.cut.Add(1)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("close sink after an interrupted run: %w", err)
	}
	return nil
}

// compare checks every published table of a target against want (model
// renderings), reading each table under its name then and only the columns
// the source had then (a target keeps dropped columns); skip (nil: none)
// leaves tables out.
func (s *sim) compare(ctx context.Context, tg *target, sink apply.Sink, want Snapshot, skip []bool) error {
	var errs []error
	for ti, sh := range want.Shapes {
		if !want.Published[ti] || skip != nil && skip[ti] {
			continue
		}
		got, err := readTarget(ctx, tg, sink, sh)
		if err != nil {
			return fmt.Errorf("read %s: %w", sh.Name, err)
		}
		if d := mirrortest.Diff(want.Rows[ti], got); d != "" {
			errs = append(errs, fmt.Errorf("%s (columns %s) differs from the model: %s", sh.Name, sh.ColList(), d))
		}
	}
	return errors.Join(errs...)
}

// checkSource checks the source against the model: a difference here is a
// bug in the simulation itself, not in walmirror.
func (s *sim) checkSource(ctx context.Context) {
	s.t.Helper()
	for ti, tb := range s.gen.M.Tables {
		// The shape first: names, order and types of the live columns, and
		// the partitions.
		var want []string
		for _, c := range tb.Cols {
			want = append(want, c.Name+" "+formatType(c.Type))
		}
		var got []string
		rows, err := s.src.Query(ctx, `SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_attribute
			WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, "public."+QuoteIdent(tb.Name))
		if err == nil {
			got, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil {
			s.t.Fatalf("columns of source table %s: %v", tb.Name, err)
		}
		if !slices.Equal(want, got) {
			s.t.Fatalf("source table %s has columns %q, the model %q (a simulation bug)", tb.Name, got, want)
		}
		if tb.Partitioned {
			var n int
			if err := s.src.QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = $1::regclass`, "public."+QuoteIdent(tb.Name)).Scan(&n); err != nil {
				s.t.Fatal(err)
			}
			if n != tb.Parts {
				s.t.Fatalf("source table %s has %d partitions, the model %d (a simulation bug)", tb.Name, n, tb.Parts)
			}
		}
		got, err = readPostgres(ctx, s.srcDSN, tb.Shape())
		if err != nil {
			s.t.Fatal(err)
		}
		if d := mirrortest.Diff(s.gen.M.Rows(ti), got); d != "" {
			s.t.Fatalf("source table %s differs from the model (a simulation bug): %s", tb.Name, d)
		}
	}
}

// formatType is the model's type name as PostgreSQL's format_type spells it.
func formatType(typ string) string {
	name, args := typeArgs(typ)
	long := map[string]string{"int": "integer", "float8": "double precision", "bool": "boolean",
		"timestamptz": "timestamp with time zone", "varchar": "character varying"}[name]
	if long == "" {
		return typ
	}
	if len(args) > 0 {
		return fmt.Sprintf("%s(%d)", long, args[0])
	}
	return long
}

// checkToasted makes sure docs bodies really live out of line, so updates
// that leave them alone send them as unchanged TOAST.
func (s *sim) checkToasted(ctx context.Context) {
	s.t.Helper()
	var toast string
	if err := s.src.QueryRow(ctx, "SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 'public.docs'::regclass").Scan(&toast); err != nil {
		s.t.Fatal(err)
	}
	var n int
	if err := s.src.QueryRow(ctx, "SELECT count(DISTINCT chunk_id) FROM "+toast).Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	if n == 0 {
		s.t.Fatal("no docs body was stored out of line: the unchanged-TOAST path goes untested")
	}
}

func readTarget(ctx context.Context, tg *target, sink apply.Sink, tb Shape) ([]string, error) {
	switch tg.kind {
	case "postgres":
		return readPostgres(ctx, tg.dsn, tb)
	case "sqlite":
		db, err := sql.Open("sqlite3", "file:"+tg.path+"?mode=ro")
		if err != nil {
			return nil, err
		}
		defer db.Close()
		return readSQL(ctx, db, tb, "SELECT "+tb.ColList()+" FROM "+QuoteIdent(sqlite.TableName("public", tb.Name)))
	case "duckdb":
		// The sink's own handle: DuckDB lets no other process (or
		// instance) open a file it writes.
		var cols []string
		for _, c := range tb.Cols {
			if c.Kind == Bytea {
				cols = append(cols, c.Quoted())
			} else {
				cols = append(cols, "CAST("+c.Quoted()+" AS VARCHAR)")
			}
		}
		return readSQL(ctx, sink.(*duckdb.Sink).DB(), tb, "SELECT "+strings.Join(cols, ", ")+" FROM public."+QuoteIdent(tb.Name))
	}
	return nil, fmt.Errorf("unknown target kind %q", tg.kind)
}

// readPostgres reads a table in PostgreSQL's text form, under UTC.
func readPostgres(ctx context.Context, dsn string, tb Shape) ([]string, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["TimeZone"] = "UTC"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "SELECT "+tb.ColList()+" FROM public."+QuoteIdent(tb.Name), pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", tb.Name, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		raw := rows.RawValues()
		r := make(Row, len(raw))
		for i, v := range raw {
			if v == nil {
				r[i] = Val{Null: true}
				continue
			}
			if r[i].S, err = Normalize(tb.Cols[i].Kind, string(v)); err != nil {
				return nil, fmt.Errorf("%s.%s: %w", tb.Name, tb.Cols[i].Name, err)
			}
		}
		out = append(out, r.Encode())
	}
	slices.Sort(out)
	return out, rows.Err()
}

func readSQL(ctx context.Context, db *sql.DB, tb Shape, query string) ([]string, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", query, err)
	}
	defer rows.Close()
	var out []string
	vals := make([]any, len(tb.Cols))
	ptrs := make([]any, len(tb.Cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		r := make(Row, len(vals))
		for i, v := range vals {
			if v == nil {
				r[i] = Val{Null: true}
				continue
			}
			if r[i].S, err = Normalize(tb.Cols[i].Kind, mirrortest.Render(v)); err != nil {
				return nil, fmt.Errorf("%s.%s: %w", tb.Name, tb.Cols[i].Name, err)
			}
		}
		out = append(out, r.Encode())
	}
	slices.Sort(out)
	return out, rows.Err()
}

// syncBuffer collects a target's log from the goroutine running it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
