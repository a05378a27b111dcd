package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // "duckdb" database/sql driver, for the report
	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/internal/pgserver"
	"github.com/walmirror/walmirror/sinks/sqlite"
	"github.com/walmirror/walmirror/source"
)

const demoSchema = `
CREATE TABLE customers (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL,
    email      text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
    id          bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers,
    amount      numeric(12,2) NOT NULL,
    status      text NOT NULL,
    details     jsonb,
    placed_at   timestamptz NOT NULL DEFAULT now()
);
-- No primary key: rows are matched on all their values.
CREATE TABLE page_views (path text, viewed_at timestamptz);
ALTER TABLE page_views REPLICA IDENTITY FULL;

INSERT INTO customers (name, email)
    SELECT 'customer ' || i, 'c' || i || '@example.com' FROM generate_series(1, 1000) i;
INSERT INTO orders (customer_id, amount, status, details)
    SELECT 1 + i % 1000, (i * 7.31)::numeric(12,2), 'new', jsonb_build_object('items', i % 5 + 1)
    FROM generate_series(1, 5000) i;
`

// The demo's workload: a little of everything walmirror must get right.
const demoTick = `
INSERT INTO orders (customer_id, amount, status, details)
    SELECT 1 + (random() * 999)::int, (random() * 500)::numeric(12,2), 'new', '{"items": 1}'
    FROM generate_series(1, 20);
UPDATE orders SET status = 'shipped' WHERE id IN (SELECT id FROM orders WHERE status = 'new' ORDER BY random() LIMIT 10);
DELETE FROM orders WHERE id IN (SELECT id FROM orders WHERE status = 'shipped' ORDER BY random() LIMIT 3);
INSERT INTO page_views VALUES ('/home', now()), ('/home', now()), ('/cart', now());
DELETE FROM page_views WHERE ctid IN (SELECT ctid FROM page_views WHERE path = '/cart' LIMIT 1);
`

// demoSlot marks the demo's copies: the only ones it replaces.
const demoSlot = "walmirror_demo"

// givenOnCommandLine reports whether args set the flag name.
func givenOnCommandLine(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		if n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && n == name {
			return true
		}
	}
	return false
}

// describeState names what a target holds, for an error.
func describeState(ts targetState) string {
	if !ts.Found {
		return "none"
	}
	return fmt.Sprintf("slot %q at %s", ts.State.Slot, ts.State.LSN)
}

func cmdDemo(ctx context.Context, args []string) error {
	fs := newFlagSet("demo", "[--target duckdb:PATH|sqlite:PATH] [--duration 10s]")
	target := "duckdb:walmirror-demo.duckdb"
	var duration time.Duration
	fs.StringVar(&target, "target", target, "where the copy goes (an existing demo copy is replaced; taken from the command line only)")
	durationFlag(fs, &duration, "duration", 10*time.Second, "how long the sample workload runs while walmirror follows it")
	log, err := fs.parse(args)
	if err != nil {
		return err
	}
	if !givenOnCommandLine(args, "target") {
		// WALMIRROR_TARGET and --config name the real copy, which the demo
		// would replace.
		target = "duckdb:walmirror-demo.duckdb"
	}
	kind, path, _ := strings.Cut(target, ":")
	if kind != "duckdb" && kind != "sqlite" || path == "" {
		return fmt.Errorf("--target %q: the demo writes to duckdb:PATH or sqlite:PATH", target)
	}
	if ts, err := readTargetState(ctx, target); err != nil {
		return fmt.Errorf("%w: the demo replaces only a copy it made; pass another --target", err)
	} else if ts.Exists && !(ts.Found && ts.State.Slot == demoSlot) {
		return fmt.Errorf("--target %q: %s exists and is not a copy the demo made (walmirror state: %s): pass another --target, or remove it yourself", target, path, describeState(ts))
	}
	for _, suffix := range []string{"", "-wal", "-shm", ".wal"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}

	fmt.Println("starting a throwaway PostgreSQL (wal_level=logical) ...")
	srv, err := pgserver.Start(ctx, pgserver.Options{})
	if err != nil {
		return fmt.Errorf("start demo PostgreSQL: %w", err)
	}
	defer srv.Close()
	if err := srv.Exec(ctx, "postgres", demoSchema); err != nil {
		return fmt.Errorf("load sample schema: %w", err)
	}
	dsn := srv.DSN("postgres")
	fmt.Printf("source: %s  (tables customers, orders, page_views)\n", source.Describe(dsn))

	sink, err := openTarget(ctx, target, log, false, defaultTargetOptions())
	if err != nil {
		return err
	}
	closeSink := sync.OnceValue(sink.Close)
	defer closeSink()
	var lastPrint time.Time
	cfg := apply.Config{
		Source: source.Config{DSN: dsn, Slot: demoSlot, Publication: "walmirror"},
		Logger: log,
		OnCommit: func(c apply.CommitInfo) {
			if time.Since(lastPrint) >= time.Second {
				lastPrint = time.Now()
				lag := c.At.Sub(c.Stats.LastCommitTime).Round(time.Millisecond)
				fmt.Printf("  applied %6d transactions, %7d row changes  position %s  lag %v\n", c.Stats.Transactions, c.Stats.Rows, c.State.LSN, lag)
			}
		},
	}

	// Follow the workload live, then catch up to the source's position and stop.
	fmt.Printf("replicating into %s while a workload runs for %v ...\n", path, duration)
	live, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var runErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		runErr = apply.Run(live, sink, cfg)
	}()
	werr := demoWorkload(ctx, srv, duration)
	cancel()
	wg.Wait()
	if err := errors.Join(werr, runErr); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	cfg.StopAtNow = true
	if err := apply.Run(ctx, sink, cfg); err != nil {
		return err
	}
	if err := closeSink(); err != nil { // DuckDB: let the report open the file
		return err
	}
	return demoReport(ctx, dsn, kind, path)
}

func demoWorkload(ctx context.Context, srv *pgserver.Server, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if err := srv.Exec(ctx, "postgres", demoTick); err != nil && ctx.Err() == nil {
			return fmt.Errorf("demo workload: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// demoReport compares what arrived with the source.
func demoReport(ctx context.Context, dsn, kind, path string) error {
	pg, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer pg.Close(context.WithoutCancel(ctx))
	table := func(t string) string { return `"` + sqlite.TableName("public", t) + `"` }
	var db *sql.DB
	if kind == "duckdb" {
		table = func(t string) string { return `public."` + t + `"` }
		db, err = openDuckDBReadOnly(ctx, path)
	} else {
		db, err = sql.Open("sqlite3", "file:"+path+"?mode=ro")
	}
	if err != nil {
		return err
	}
	defer db.Close()
	abs, _ := filepath.Abs(path)
	fmt.Printf("\nwhat arrived in %s:\n", abs)
	fmt.Printf("  %-12s %10s %10s\n", "table", "source", "copy")
	same := true
	for _, t := range []string{"customers", "orders", "page_views"} {
		var want, got int64
		if err := pg.QueryRow(ctx, "SELECT count(*) FROM "+t).Scan(&want); err != nil {
			return err
		}
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+table(t)).Scan(&got); err != nil {
			return err
		}
		same = same && want == got
		fmt.Printf("  %-12s %10d %10d\n", t, want, got)
	}
	if !same {
		return errors.New("the copy differs from the source")
	}
	fmt.Printf("\nthe copy equals the source. Look inside:\n")
	if kind == "duckdb" {
		fmt.Printf("  duckdb %s \"SELECT status, count(*), sum(amount) FROM public.orders GROUP BY 1\"   (the DuckDB CLI, if installed)\n", path)
	} else {
		fmt.Printf("  sqlite3 %s 'SELECT status, count(*), sum(amount) FROM orders GROUP BY 1'\n", path)
	}
	self := "walmirror"
	if strings.Contains(os.Args[0], "go-build") { // go run (make demo)
		self = "go run ./cmd/walmirror"
	}
	fmt.Printf("  %s status --target %s:%s\n", self, kind, path)
	return nil
}
