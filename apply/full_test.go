package apply_test

import (
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/internal/mirrortest"
	"github.com/walmirror/walmirror/sinks/duckdb"
	"github.com/walmirror/walmirror/sinks/sqlite"
	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/testenv"
)

// TestTargetFullError: a SQLite or DuckDB copy on a disk that fills up,
// in the initial copy and in the stream: Run's error is ErrTargetFull for
// errors.Is (before, only its text said so, and only for some calls), and
// says what to do. After the disk grows, the next Run completes the copy.
// PostgreSQL's disk_full is TestTargetDiskFull's (cmd/walmirror) and
// TestDiskFull's (sinks/postgres).
func TestTargetFullError(t *testing.T) {
	for _, kind := range []string{"sqlite", "duckdb"} {
		t.Run(kind, func(t *testing.T) {
			for _, phase := range []string{"copy", "stream"} {
				t.Run(phase, func(t *testing.T) {
					m := newMirror(t)
					dir := testenv.SmallDisk(t, "2M")
					path := filepath.Join(dir, "copy."+kind)
					ctx := context.Background()
					run := func() error {
						ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
						defer cancel()
						var sink apply.Sink
						var err error
						if kind == "sqlite" {
							sink, err = sqlite.Open(ctx, path, nil)
						} else {
							sink, err = duckdb.Open(ctx, path, nil)
						}
						if err != nil {
							t.Fatal(err)
						}
						defer sink.Close()
						return apply.Run(ctx, sink, apply.Config{
							Source:    source.Config{DSN: m.dsn, Slot: m.slot},
							Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
							StopAtNow: true,
						})
					}
					m.exec(`CREATE TABLE big (id int PRIMARY KEY, pad text)`)
					fill := `INSERT INTO big SELECT i, repeat(md5(i::text), 16) FROM generate_series(1, 20000) i`
					if phase == "copy" {
						m.exec(fill)
					} else {
						if err := run(); err != nil {
							t.Fatal(err)
						}
						m.exec(fill)
					}
					err := run()
					if !errors.Is(err, apply.ErrTargetFull) || !strings.Contains(err.Error(), "free space, then run walmirror again") {
						t.Fatalf("Run on a full disk = %v, want ErrTargetFull saying what to do", err)
					}
					t.Log(err)
					if out, err := exec.Command("mount", "-o", "remount,size=64M", dir).CombinedOutput(); err != nil {
						t.Fatalf("remount: %v %s", err, out)
					}
					if err := run(); err != nil {
						t.Fatalf("Run after the disk grew: %v", err)
					}
					q := `SELECT id, pad FROM big ORDER BY id`
					want, err := mirrortest.SourceRows(ctx, m.dsn, q)
					if err != nil {
						t.Fatal(err)
					}
					var got []string
					if kind == "sqlite" {
						got, err = mirrortest.SQLiteRows(ctx, path, q)
					} else {
						got, err = mirrortest.DuckDBRows(ctx, path, strings.Replace(q, "FROM ", "FROM public.", 1))
					}
					if err != nil {
						t.Fatal(err)
					}
					if d := mirrortest.Diff(want, got); d != "" {
						t.Fatalf("copy differs from the source:\n%s", d)
					}
				})
			}
		})
	}
}
