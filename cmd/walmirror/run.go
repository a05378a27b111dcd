package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/duckdb"
	"github.com/walmirror/walmirror/source"
)

func cmdRun(ctx context.Context, args []string) (err error) {
	fs := newFlagSet("run", "--source DSN --target TARGET [flags]")
	fs.strictConfig = true
	var (
		cfg            apply.Config
		target, tables string
		stopAt         string
		cpuProfile     string
		lagReport      string
		publishCopy    string
		publishEvery   time.Duration
		obs            observeFlags
	)
	lim := apply.DefaultLimits()
	topts := defaultTargetOptions()
	fs.StringVar(&cfg.Source.DSN, "source", "", sourceHelp)
	fs.StringVar(&target, "target", "", "where the copy lives: "+targetForms)
	fs.StringVar(&cfg.Source.Slot, "slot", "walmirror", "replication slot (created, with an initial snapshot, when missing)")
	fs.StringVar(&cfg.Source.Publication, "publication", "walmirror", "publication (created when missing: FOR ALL TABLES, or FOR TABLE --tables)")
	fs.StringVar(&tables, "tables", "", "comma-separated schema.table list for a new publication (default: all tables)")
	fs.StringVar(&stopAt, "stop-at-lsn", "", "apply everything committed up to this LSN (X/XXXXXXXX) or 'now', then exit 0")
	fs.IntVar(&lim.CommitRows, "commit-rows", lim.CommitRows, "commit the target transaction after this many changes (at a source commit)")
	fs.IntVar(&lim.CommitBytes, "commit-bytes", lim.CommitBytes, "... or after this many bytes of changes")
	durationFlag(fs, &lim.CommitInterval, "commit-interval", lim.CommitInterval, "commit the target transaction at least this often while changes flow")
	fs.IntVar(&lim.ChunkRows, "chunk-rows", lim.ChunkRows, "write buffered changes to the open target transaction after this many")
	fs.IntVar(&lim.ChunkBytes, "chunk-bytes", lim.ChunkBytes, "... or after this many bytes: bounds memory for huge source transactions")
	fs.BoolVar(&cfg.Pipeline, "pipeline", false, "experimental: apply each chunk to the target while the next one is received")
	fs.BoolVar(&cfg.StopOnDivergence, "stop-on-divergence", false, "stop when a change finds the copy differing from the source (a row the source inserted is there already, one it updated is missing: written by someone else) instead of copying that table again online")
	fs.BoolVar(&cfg.Resync, "resync", false, "if the slot the target follows is gone or invalidated, create it again and copy every table afresh (instead of stopping)")
	fs.StringVar(&cfg.InitialCopy, "initial-copy", "auto", "how a new copy takes the existing rows: single (one target transaction: readers never see a partial table), chunked (committed chunk by chunk while streaming: a restart resumes), auto (chunked from 5M estimated rows)")
	fs.IntVar(&cfg.CopyChunkRows, "copy-chunk-rows", apply.DefaultCopyChunkRows, "rows of the first chunk when tables are copied online (chunked initial copy, tables joining the publication, resync --table); later chunks grow or shrink within 1/8 and 16 times it to take about --copy-chunk-time")
	fs.DurationVar(&cfg.CopyChunkTime, "copy-chunk-time", apply.DefaultCopyChunkTime, "how long one chunk of an online copy should take, read to commit (the stream waits while it is read and written; a crash redoes it); negative (-1s): every chunk reads --copy-chunk-rows rows")
	durationFlag(fs, &cfg.PollInterval, "poll-interval", apply.DefaultPollInterval, "how often to look for tables that joined the publication (their existing rows are then copied online)")
	durationFlag(fs, &cfg.MaxBackoff, "max-backoff", 0, "longest wait between reconnects after a connection loss (default 30s)")
	durationFlag(fs, &cfg.SlotBusyWait, "slot-busy-wait", apply.DefaultSlotBusyWait, "at start, how long to wait for a slot another connection holds (a lingering previous walmirror) before exiting with an error naming it")
	durationFlag(fs, &cfg.Source.Timeout, "source-timeout", source.DefaultTimeout, "how long the source may stay silent (connecting, answering, streaming) before walmirror reconnects")
	fs.IntVar(&cfg.Source.Protocol, "protocol", 0, "pgoutput protocol version, 1 to 4 (default: the highest the source speaks: 2 on PostgreSQL 14, 3 on 15, 4 on 16+; 2+ streams large transactions while they run, 1 waits for their commit)")
	fs.BoolVar(&topts.pg.ReplicaRole, "pg-replica-role", topts.pg.ReplicaRole, "PostgreSQL target: apply with session_replication_role = replica (triggers and foreign keys do not fire)")
	fs.StringVar(&topts.pg.Origin, "pg-origin", topts.pg.Origin, "PostgreSQL target: tag writes with this replication origin, so a target that publishes does not echo them")
	fs.IntVar(&topts.pg.LoaderRows, "pg-loader-rows", topts.pg.LoaderRows, "PostgreSQL target: batches of at least this many updates, deletes and patches are staged through a second connection, in parallel with the first (0: never)")
	fs.BoolVar(&topts.dropColumns, "drop-columns", false, "drop a target column when the source drops it (default: keep it with its data; new rows get NULL there)")
	fs.BoolVar(&topts.adopt, "adopt-tables", false, "take over existing, empty target tables walmirror did not create (a pre-created schema) instead of stopping")
	fs.StringVar(&topts.duckMemoryLimit, "duckdb-memory-limit", "", "DuckDB target: cap DuckDB's memory (e.g. 1GB; default 80% of RAM); it spills beside the file")
	fs.Int64Var(&topts.duckIndexRows, "duckdb-index-rows", topts.duckIndexRows, "DuckDB target: index a keyed table's key once it holds this many rows and rows of it are updated or deleted, so those stop scanning it (0: never)")
	fs.StringVar(&publishCopy, "publish-copy", "", "DuckDB target: keep a consistent read-only copy of the file at this path, replaced atomically, for other processes to query")
	durationFlag(fs, &publishEvery, "publish-interval", time.Minute, "DuckDB target: how often --publish-copy is refreshed")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	fs.StringVar(&lagReport, "lag-report", "", "at exit, write source-commit-to-target-commit latency percentiles (JSON) to this file")
	obs.register(fs)
	log, err := fs.parse(args)
	if err != nil {
		return err
	}
	cfg.Logger, cfg.Limits = log, lim
	if tables != "" {
		cfg.Source.Tables = append(cfg.Source.Tables, source.SplitTableNames(tables)...)
	}
	switch stopAt {
	case "":
	case "now":
		cfg.StopAtNow = true
	default:
		l, err := lsn.Parse(stopAt)
		if err != nil || l == 0 {
			return fmt.Errorf("--stop-at-lsn %q: want an LSN like 0/16B3748, or now", stopAt)
		}
		cfg.StopAt = l
	}
	if err := validateConfig(&cfg); err != nil {
		return err
	}
	if err := obs.validate(); err != nil {
		return err
	}
	if cpuProfile != "" {
		stop, err := startCPUProfile(cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	var lags lagRecorder
	if lagReport != "" {
		// Written at exit: a path that cannot be written fails now, not
		// after the run's work (helper-139).
		if err := writable(lagReport); err != nil {
			return fmt.Errorf("--lag-report: %w", err)
		}
		cfg.OnCommit = lags.observe
	}
	storedAt, err := preflight(ctx, cfg.Source, target, topts.adopt)
	if err != nil {
		return err
	}
	newFile := newTargetFile(target)
	sink, err := openTarget(ctx, target, log, false, topts)
	if err != nil {
		if ctx.Err() != nil {
			// SIGINT/SIGTERM while the target was opening (a PostgreSQL
			// target slow to answer, a DuckDB file replaying its WAL):
			// nothing was written; stop as a signal stops a run, exit 0.
			log.Info("stopped before the target was open")
			return nil
		}
		return err
	}
	var runState *runStateWriter
	if kind, path, _ := parseTarget(target); kind == "duckdb" {
		// What status reads while this run holds the file: removed once
		// the file is closed (deferred before the close, so run after it).
		runState = &runStateWriter{path: runStatePath(path), log: log.Warn}
		defer runState.remove()
	}
	closeSink := sync.OnceValue(sink.Close)
	defer closeSink()
	if newFile != "" {
		// A start that fails before anything was committed (a wrong
		// password, an unreachable host) leaves no new file behind.
		defer func() {
			if err == nil {
				return
			}
			if _, found, rerr := sink.ReadState(context.WithoutCancel(ctx)); rerr == nil && !found {
				closeSink()
				removeTargetFile(newFile)
			}
		}()
	}
	if err := storedPublication(ctx, sink, &cfg, flagGiven(fs.FlagSet, "publication"), flagGiven(fs.FlagSet, "slot"), log); err != nil {
		return err
	}
	if lagReport != "" {
		defer func() {
			if werr := lags.write(lagReport); werr != nil && err == nil {
				err = werr
			}
		}()
	}
	if publishCopy != "" {
		pub, ok := sink.(copyPublisher)
		if !ok || publishEvery <= 0 {
			return fmt.Errorf("--publish-copy needs a duckdb:PATH target and a positive --publish-interval")
		}
		if rs, err := readRunState(publishCopy); err == nil {
			// Held by that run, so the sink cannot look into it.
			return fmt.Errorf("--publish-copy %q: that is the live file of a running walmirror (PID %d), which publishing would replace: give another path", publishCopy, rs.PID)
		}
		switch err := pub.CheckPublishPath(ctx, publishCopy); {
		case errors.Is(err, duckdb.ErrPublishHeld):
			// Replication goes on; each publish tries again.
			log.Warn("not publishing the read-only copy for now", "path", publishCopy, "err", err)
		case err != nil:
			return fmt.Errorf("--publish-copy %q: %w", publishCopy, err)
		}
		stop := publishCopies(ctx, pub, publishCopy, publishEvery, log)
		defer stop()
	}
	log.Info("starting", "source", source.Describe(cfg.Source.DSN), "target", redactTarget(target),
		"slot", cfg.Source.Slot, "publication", cfg.Source.Publication, "version", versionString())
	stopObserving, err := obs.start(ctx, &cfg, log, sink, target, storedAt)
	if err != nil {
		return err
	}
	defer stopObserving()
	if runState != nil {
		if st, found, err := sink.ReadState(ctx); err == nil && found {
			runState.stored(st, storedAt)
		}
		prevStored := cfg.OnStored
		cfg.OnStored = func(st schema.State) {
			if prevStored != nil {
				prevStored(st)
			}
			runState.stored(st, time.Now())
		}
	}
	return apply.Run(ctx, sink, cfg)
}

// preflight refuses a target that is the source's own database, and
// (unless adopting) one whose tables walmirror would take over. The checks
// only read, each on connections of its own: they run at once, so a run
// waits for the slower rather than for both. It returns when the target's
// state was last stored (zero when it has none, or could not be read).
func preflight(ctx context.Context, src source.Config, target string, adopt bool) (storedAt time.Time, err error) {
	var same bool
	var foreign error
	var wg sync.WaitGroup
	if kind, _, err := parseTarget(target); err == nil && kind == "postgres" {
		wg.Go(func() { same = sameDatabase(ctx, src.DSN, target) })
	}
	wg.Go(func() {
		ts, err := readTargetState(ctx, target)
		if err != nil {
			return // the run opens the target and says what is wrong
		}
		if ts.Found {
			storedAt = ts.UpdatedAt
		}
		foreign = refuseForeignTables(ctx, src, target, ts, adopt)
	})
	wg.Wait()
	if same {
		return storedAt, errors.New(sameDatabaseText(target))
	}
	return storedAt, foreign
}

// storedPublication makes a run of a complete copy without --publication
// follow the publication the copy is made from, and refuses another before
// the source is opened, which would create it (helper-76: a run with the
// default publication made a FOR ALL TABLES one on the source, then
// refused). Without --slot it follows the copy's slot likewise (helper-86:
// the publication was followed, the slot refused).
func storedPublication(ctx context.Context, sink apply.Sink, cfg *apply.Config, given, slotGiven bool, log *slog.Logger) error {
	st, found, err := sink.ReadState(ctx)
	if err != nil || !found {
		return nil // apply.Run reads the state again and says what is wrong
	}
	if !slotGiven && st.Slot != "" && st.Slot != cfg.Source.Slot {
		cfg.Source.Slot = st.Slot
		log.Info("following the slot the copy is made from", "slot", st.Slot)
	}
	adopted, err := followPublication(st, &cfg.Source.Publication, given)
	if adopted {
		log.Info("following the publication the copy is made from", "publication", st.Publication)
	}
	return err
}

// writable says why path cannot be written, as os.WriteFile will at the
// end, leaving no file behind: an existing regular file is opened for
// writing (not truncated), a new one made and removed again; a device, a
// FIFO or a dangling symlink is left to the write.
func writable(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("%s is a directory", path)
	case err == nil && !fi.Mode().IsRegular():
		return nil
	case err == nil:
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		return f.Close()
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	if _, err := os.Lstat(path); err == nil {
		return nil // a symlink to a file not there yet
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil // made meanwhile
	}
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(path)
}
