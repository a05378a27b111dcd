package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/internal/observe"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/verify"
)

// observeFlags are run's flags for watching it: metrics and health
// endpoints, progress lines, slot polling.
type observeFlags struct {
	metricsAddr      string
	readyMaxLag      time.Duration
	progressInterval time.Duration
	slotPollInterval time.Duration
	maxRetainedWAL   string
	maxRetained      int64
}

func (o *observeFlags) register(fs *flagSet) {
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve /metrics (Prometheus), /healthz, /readyz, /wait?lsn=X/Y&timeout=2s and POST /verify (walmirror verify --sidecar) on HOST:PORT")
	durationFlag(fs, &o.readyMaxLag, "ready-max-lag", time.Minute, "/readyz answers 200 once the initial copy is complete and the lag is at most this")
	durationFlag(fs, &o.progressInterval, "progress-interval", 30*time.Second, "log a progress line (rates, lag) this often; 0: never")
	durationFlag(fs, &o.slotPollInterval, "slot-poll-interval", 15*time.Second, "how often the slot's retained WAL and wal_status, and the source's WAL end, are read for metrics, --max-retained-wal and the progress lines' lag (on a catalog connection of its own)")
	fs.StringVar(&o.maxRetainedWAL, "max-retained-wal", "", "warn when the slot retains more WAL than this on the source (e.g. 10GB)")
}

func (o *observeFlags) validate() error {
	if o.progressInterval < 0 || o.slotPollInterval <= 0 || o.readyMaxLag <= 0 {
		return fmt.Errorf("--progress-interval must not be negative, --slot-poll-interval and --ready-max-lag must be positive")
	}
	if o.maxRetainedWAL != "" {
		n, err := parseSize(o.maxRetainedWAL)
		if err != nil || n <= 0 {
			return fmt.Errorf("--max-retained-wal %q: want a size like 512MB or 10GB", o.maxRetainedWAL)
		}
		o.maxRetained = n
	}
	return nil
}

// start wires a monitor to cfg's hooks and starts what the flags ask for;
// stop ends it and logs the run's summary. POST /verify, on --metrics-addr
// and on the control socket, verifies the copy in sink (target names it)
// through cfg.Pause.
// storedAt is when the target's state was last stored (zero if never).
func (o *observeFlags) start(ctx context.Context, cfg *apply.Config, log *slog.Logger, sink apply.Sink, target string, storedAt time.Time) (stop func(), err error) {
	mon := observe.New(versionString())
	mon.Resumed(storedAt)
	mon.Hook(cfg)
	// POST /verify, on --metrics-addr and on the control socket.
	cfg.Pause = &apply.Pauser{}
	src, pause := cfg.Source, cfg.Pause
	mon.SetVerify(func(ctx context.Context, req observe.VerifyRequest) (*verify.Report, error) {
		log.Info("verify: requested", "tables", strings.Join(req.Tables, ","))
		if !mon.Summary().CopyComplete {
			return nil, errors.New("the running walmirror is not streaming yet (starting, or its initial copy is not complete): verify once it streams (/readyz)")
		}
		vcfg := verify.Config{Source: src, Tables: req.Tables, Options: verify.Options{Examples: req.Examples}, Logger: log, SnapshotWait: req.SnapshotWait}
		if req.Repair {
			vcfg.Options.Keys = req.RepairRows
		}
		live := verify.Live{Pause: pause, Open: copyReader(sink, target), CatchUp: req.CatchUp}
		rep, err := verify.RunLive(ctx, vcfg, live)
		if err != nil {
			log.Warn("verify: could not verify", "err", err)
			return nil, err
		}
		log.Info("verify: done", "lsn", rep.LSN, "equal", rep.Equal(), "different", rep.Different(), "tables", len(rep.Tables), "took", rep.Took.Round(time.Millisecond))
		if req.Repair && rep.TablesDiffer() {
			rp, err := verify.RepairLive(ctx, vcfg, live, mon.Progress(), rep)
			if err != nil {
				log.Warn("verify: repair did not finish", "err", err)
				rp.Err = oneLine(err.Error())
			}
			rep.Repair = rp
		}
		return rep, nil
	})
	bg, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	control := &controlServer{handler: controlHandler(mon.Handler(o.readyMaxLag), target), log: log, ctx: bg}
	if st, found, err := sink.ReadState(ctx); err == nil && found {
		control.start(st.SystemID, st.Slot)
	}
	prevReady := cfg.OnReady
	cfg.OnReady = func(st schema.State) {
		if prevReady != nil {
			prevReady(st)
		}
		control.start(st.SystemID, st.Slot)
	}
	stopServer := func() {}
	if o.metricsAddr != "" {
		addr, stopSrv, err := observe.Serve(bg, o.metricsAddr, mon.Handler(o.readyMaxLag), log)
		if err != nil {
			cancel()
			return nil, err
		}
		stopServer = stopSrv
		log.Info("serving metrics", "addr", addr, "endpoints", "/metrics /healthz /readyz /wait POST /verify")
	}
	// Progress lines need the source's WAL end too: keepalives say only how
	// far the walsender has read, and while it reads WAL that holds nothing
	// for the publication the copy looked caught up, lag 0, gigabytes behind
	// (helper-106). For them alone the first read waits an interval, so a
	// short bounded run opens no session for it.
	if poll := o.metricsAddr != "" || o.maxRetained > 0; poll || o.progressInterval > 0 {
		var wait time.Duration
		if !poll {
			wait = min(o.slotPollInterval, o.progressInterval)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-bg.Done():
				return
			case <-time.After(wait):
			}
			mon.PollSlot(bg, cfg.Source, o.slotPollInterval, o.maxRetained, log)
		}()
	}
	if o.progressInterval > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); mon.LogProgress(bg, o.progressInterval, log) }()
	}
	return func() {
		cancel()
		wg.Wait()
		stopServer()
		control.stop()
		mon.LogSummary(log)
	}, nil
}

// parseSize reads a byte count: 1048576, 512kB, 64MB, 10GB, 1TB (powers of
// 1024, as PostgreSQL's memory settings).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, err
	}
	return n * mult, nil
}
