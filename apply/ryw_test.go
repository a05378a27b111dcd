package apply_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/sinks/duckdb"
	"github.com/walmirror/walmirror/sinks/memory"
	"github.com/walmirror/walmirror/sinks/postgres"
	"github.com/walmirror/walmirror/sinks/sqlite"
	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/testenv"
)

// rywTarget opens a sink and reads one row of public.ryw back from the
// copy, from outside the apply path (its own connection where the target
// has them).
type rywTarget struct {
	name string
	open func(t *testing.T) (sink apply.Sink, read func(id int) (string, bool))
}

func rywTargets() []rywTarget {
	mem := memory.New()
	return []rywTarget{
		{"sqlite", func(t *testing.T) (apply.Sink, func(int) (string, bool)) {
			path := filepath.Join(t.TempDir(), "copy.db")
			s, err := sqlite.Open(t.Context(), path, nil)
			if err != nil {
				t.Fatal(err)
			}
			rd, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=10000")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rd.Close() })
			return s, func(id int) (string, bool) {
				return readSQL(t, rd, "SELECT v FROM "+sqlite.TableName("public", "ryw")+" WHERE id = ?", id)
			}
		}},
		{"duckdb", func(t *testing.T) (apply.Sink, func(int) (string, bool)) {
			s, err := duckdb.Open(t.Context(), filepath.Join(t.TempDir(), "copy.duckdb"), nil)
			if err != nil {
				t.Fatal(err)
			}
			return s, func(id int) (string, bool) {
				// The sink's own instance, on another pooled connection.
				return readSQL(t, s.DB(), "SELECT v FROM "+duckdb.TableName("public", "ryw")+" WHERE id = ?", id)
			}
		}},
		{"postgres", func(t *testing.T) (apply.Sink, func(int) (string, bool)) {
			db, err := server.CreateDatabase(t.Context(), "ryw_target")
			if err != nil {
				t.Fatal(err)
			}
			s, err := postgres.Open(t.Context(), server.DSN(db), nil, postgres.DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			rd, err := pgx.Connect(t.Context(), server.DSN(db))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rd.Close(context.Background()) })
			return s, func(id int) (string, bool) {
				var v string
				err := rd.QueryRow(t.Context(), `SELECT v FROM public.ryw WHERE id = $1`, id).Scan(&v)
				if errors.Is(err, pgx.ErrNoRows) {
					return "", false
				}
				if err != nil {
					t.Fatal(err)
				}
				return v, true
			}
		}},
		{"memory", func(t *testing.T) (apply.Sink, func(int) (string, bool)) {
			s, err := mem.Open() // the same DB on every open: a restart in the same process
			if err != nil {
				t.Fatal(err)
			}
			return s, func(id int) (string, bool) {
				r, ok := mem.Lookup("public", "ryw", map[string]string{"id": fmt.Sprint(id)})
				return r["v"].Text, ok
			}
		}},
	}
}

func readSQL(t *testing.T, db *sql.DB, q string, id int) (string, bool) {
	t.Helper()
	var v string
	err := db.QueryRowContext(t.Context(), q, id).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return v, true
}

// TestReadYourWrites: a row written on the source is in the copy as soon
// as Progress.WaitFor returns for the source's WAL position taken after
// the commit, on every target, many times under a concurrent pgbench
// load; on an idle source WaitFor returns for the current position (a
// keepalive carries it); a position not reached yet times out. The memory
// target is run twice on the same DB: the second run resumes exactly once.
func TestReadYourWrites(t *testing.T) {
	if server == nil {
		t.Skip("needs PostgreSQL (not in -short mode)")
	}
	pgbench := testenv.Tool("pgbench")
	for _, tg := range rywTargets() {
		t.Run(tg.name, func(t *testing.T) {
			ctx := t.Context()
			db, err := server.CreateDatabase(ctx, "ryw")
			if err != nil {
				t.Fatal(err)
			}
			dsn := server.DSN(db)
			if out, err := exec.CommandContext(ctx, pgbench, "-i", "-s", "1", "-q", dsn).CombinedOutput(); err != nil {
				t.Fatalf("pgbench -i: %v\n%s", err, out)
			}
			if err := server.Exec(ctx, db, `CREATE TABLE ryw (id int PRIMARY KEY, v text)`); err != nil {
				t.Fatal(err)
			}
			other, err := server.CreateDatabase(ctx, "ryw_other")
			if err != nil {
				t.Fatal(err)
			}
			if err := server.Exec(ctx, other, `CREATE TABLE noise (i int)`); err != nil {
				t.Fatal(err)
			}
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			currentLSN := func() lsn.LSN {
				t.Helper()
				var s string
				if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&s); err != nil {
					t.Fatal(err)
				}
				l, err := lsn.Parse(s)
				if err != nil {
					t.Fatal(err)
				}
				return l
			}
			rounds := 2
			if tg.name != "memory" {
				rounds = 1
			}
			next := 0
			for round := range rounds {
				sink, read := tg.open(t)
				var p apply.Progress
				cfg := apply.Config{
					Source: source.Config{DSN: dsn, Slot: "s_" + db},
					Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
				}
				p.Hook(&cfg)
				runCtx, stop := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- apply.Run(runCtx, sink, cfg) }()
				wait := func(l lsn.LSN, d time.Duration) error {
					wctx, cancel := context.WithTimeout(ctx, d)
					defer cancel()
					return p.WaitFor(wctx, l)
				}

				// Seeded (or resumed), then idle: the current position is
				// reached without a write.
				if err := wait(currentLSN(), time.Minute); err != nil {
					t.Fatalf("round %d: WaitFor the initial copy: %v", round, err)
				}
				time.Sleep(300 * time.Millisecond)
				idleAt := currentLSN()
				began := time.Now()
				if err := wait(idleAt, 30*time.Second); err != nil {
					t.Fatalf("round %d: WaitFor(%s) on an idle source: %v (applied %s)", round, idleAt, err, p.Applied())
				}
				t.Logf("round %d: idle source: WaitFor took %s", round, time.Since(began).Round(time.Millisecond))

				// WAL that holds nothing for this copy (another database's
				// writes): a keepalive carries the copy past it.
				if err := server.Exec(ctx, other, `INSERT INTO noise SELECT generate_series(1, 1000)`); err != nil {
					t.Fatal(err)
				}
				noiseAt := currentLSN()
				began = time.Now()
				if err := wait(noiseAt, 30*time.Second); err != nil {
					t.Fatalf("round %d: WaitFor(%s) past WAL with nothing for the copy: %v (applied %s)", round, noiseAt, err, p.Applied())
				}
				t.Logf("round %d: WAL with nothing for the copy: WaitFor took %s", round, time.Since(began).Round(time.Millisecond))

				// A position far ahead times out.
				if err := wait(idleAt+1<<30, 50*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("round %d: WaitFor a position not reached = %v, want a deadline error", round, err)
				}

				// Under load: write, take the position, wait, read.
				loadCtx, stopLoad := context.WithCancel(ctx)
				load := exec.CommandContext(loadCtx, pgbench, "-c", "2", "-T", "600", "-n", "-R", "200", dsn)
				if err := load.Start(); err != nil {
					t.Fatal(err)
				}
				var worst time.Duration
				const n = 40
				for range n {
					next++
					want := fmt.Sprintf("written %d", next)
					if _, err := conn.Exec(ctx, `INSERT INTO ryw VALUES ($1, $2)`, next, want); err != nil {
						t.Fatal(err)
					}
					at := currentLSN()
					began := time.Now()
					if err := wait(at, 30*time.Second); err != nil {
						t.Fatalf("round %d: WaitFor(%s) after writing row %d: %v (applied %s)", round, at, next, err, p.Applied())
					}
					worst = max(worst, time.Since(began))
					if got, ok := read(next); !ok || got != want {
						t.Fatalf("round %d: row %d read from the copy after WaitFor(%s) = %q, %v; want %q", round, next, at, got, ok, want)
					}
					time.Sleep(10 * time.Millisecond)
				}
				stopLoad()
				_ = load.Wait()
				t.Logf("round %d: %d writes read back under load; slowest wait %s", round, n, worst.Round(time.Millisecond))

				stop()
				if err := <-done; err != nil {
					t.Fatalf("round %d: Run: %v", round, err)
				}
				if err := sink.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
