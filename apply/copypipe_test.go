package apply_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/internal/mirrortest"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/duckdb"
	"github.com/walmirror/walmirror/sinks/postgres"
	"github.com/walmirror/walmirror/sinks/sqlite"
	"github.com/walmirror/walmirror/source"
)

// copySource is a source with a table every target copies from decoded
// rows or (PostgreSQL) from the binary COPY stream, one with an enum
// (decoded rows everywhere), and an empty one.
const copySource = `
CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE TABLE plain (id int PRIMARY KEY, v text, n bigint);
INSERT INTO plain SELECT g, 'row ' || g || E'\t\\', g::bigint * 1000003 FROM generate_series(1, 25000) g;
CREATE TABLE moody (id int PRIMARY KEY, m mood, v text);
INSERT INTO moody SELECT g, CASE WHEN g % 2 = 0 THEN 'ok' ELSE 'sad' END::mood, CASE WHEN g % 7 = 0 THEN NULL ELSE 'v' || g END
	FROM generate_series(1, 5000) g;
CREATE TABLE empty_t (id int PRIMARY KEY);`

// copyTarget opens a fresh target and reads a query's rows from it.
type copyTarget struct {
	name string
	open func(t *testing.T) (open func() apply.Sink, rows func(q string) []string)
}

func copyTargets() []copyTarget {
	file := func(t *testing.T, name string, openSink func(string) (apply.Sink, error), read func(context.Context, string, string) ([]string, error)) (func() apply.Sink, func(string) []string) {
		path := filepath.Join(t.TempDir(), name)
		return func() apply.Sink {
				s, err := openSink(path)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}, func(q string) []string {
				rows, err := read(t.Context(), path, q)
				if err != nil {
					t.Fatal(err)
				}
				return rows
			}
	}
	return []copyTarget{
		{"sqlite", func(t *testing.T) (func() apply.Sink, func(string) []string) {
			return file(t, "copy.db", func(p string) (apply.Sink, error) { return sqlite.Open(t.Context(), p, nil) }, mirrortest.SQLiteRows)
		}},
		{"duckdb", func(t *testing.T) (func() apply.Sink, func(string) []string) {
			return file(t, "copy.duckdb", func(p string) (apply.Sink, error) { return duckdb.Open(t.Context(), p, nil) }, mirrortest.DuckDBRows)
		}},
		{"postgres", func(t *testing.T) (func() apply.Sink, func(string) []string) {
			db, err := server.CreateDatabase(t.Context(), "copy_target")
			if err != nil {
				t.Fatal(err)
			}
			dsn := server.DSN(db)
			return func() apply.Sink {
					s, err := postgres.Open(t.Context(), dsn, nil, postgres.DefaultOptions())
					if err != nil {
						t.Fatal(err)
					}
					return s
				}, func(q string) []string {
					rows, err := mirrortest.SourceRows(t.Context(), dsn, q)
					if err != nil {
						t.Fatal(err)
					}
					return rows
				}
		}},
	}
}

// runCopy runs a single-transaction initial copy (and nothing after it)
// into sink.
func runCopy(t *testing.T, m *mirror, sink apply.Sink, onSnapshot func(apply.SnapshotProgress)) error {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	limits := apply.DefaultLimits()
	limits.ChunkRows = 1000 // many batches
	return apply.Run(ctx, sink, apply.Config{
		Source:      source.Config{DSN: m.dsn, Slot: m.slot, Publication: "walmirror"},
		Limits:      limits,
		StopAtNow:   true,
		InitialCopy: "single",
		OnSnapshot:  onSnapshot,
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
}

// TestInitialCopyPipeline: the tables read and written at once arrive
// whole in every target, with progress that only grows.
func TestInitialCopyPipeline(t *testing.T) {
	for _, tg := range copyTargets() {
		t.Run(tg.name, func(t *testing.T) {
			m := newMirror(t)
			m.exec(copySource)
			open, rows := tg.open(t)
			sink := open()
			defer sink.Close()
			var mu sync.Mutex
			var seen []apply.SnapshotProgress
			err := runCopy(t, m, sink, func(p apply.SnapshotProgress) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, p)
			})
			if err != nil {
				t.Fatal(err)
			}
			sink.Close()
			compareCopy(t, m, tg.name, rows)
			last := seen[len(seen)-1]
			if !last.Done || last.Rows != 30000 || last.TablesDone != 3 || last.Tables != 3 {
				t.Errorf("last progress %+v, want done, 30000 rows, 3 of 3 tables", last)
			}
			for i := 1; i < len(seen); i++ {
				if seen[i].Rows < seen[i-1].Rows || seen[i].TablesDone < seen[i-1].TablesDone {
					t.Fatalf("progress went back: %+v after %+v", seen[i], seen[i-1])
				}
			}
			if len(seen) < 10 {
				t.Errorf("%d progress reports for 30 batches", len(seen))
			}
		})
	}
}

func compareCopy(t *testing.T, m *mirror, target string, rows func(string) []string) {
	t.Helper()
	name := func(s string) string {
		if target == "sqlite" {
			return s
		}
		return "public." + s
	}
	for _, c := range []struct{ table, cols string }{{"plain", "id, v, n"}, {"moody", "id, m, v"}, {"empty_t", "id"}} {
		want, err := mirrortest.SourceRows(t.Context(), m.dsn, "SELECT "+c.cols+" FROM "+c.table)
		if err != nil {
			t.Fatal(err)
		}
		if d := mirrortest.Diff(want, rows("SELECT "+c.cols+" FROM "+name(c.table))); d != "" {
			t.Errorf("%s: %s", c.table, d)
		}
	}
}

// failingSink fails the initial copy's third batch.
type failingSink struct {
	shapedSink
	writes int
}

type shapedSink interface {
	apply.Sink
	apply.ShapeStore
}

var errInjected = errors.New("injected failure")

func (f *failingSink) Write(ctx context.Context, b *schema.Batch) error {
	if f.writes++; f.writes == 3 {
		return errInjected
	}
	return f.shapedSink.Write(ctx, b)
}

// failingBinary fails the binary load of table plain half-way through its
// stream.
type failingBinary struct{ *postgres.Sink }

func (f failingBinary) CopyBinary(ctx context.Context, t *schema.Table, r io.Reader) (int64, error) {
	if t.Name == "plain" {
		r = io.MultiReader(io.LimitReader(r, 100_000), errReader{})
	}
	return f.Sink.CopyBinary(ctx, t, r)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errInjected }

// TestInitialCopyTargetFails: a target failing in the middle of the copy
// stops it (the reader too), commits nothing, and the next run copies
// everything.
func TestInitialCopyTargetFails(t *testing.T) {
	for _, tg := range copyTargets() {
		t.Run(tg.name, func(t *testing.T) {
			m := newMirror(t)
			m.exec(copySource)
			open, rows := tg.open(t)
			sink := open()
			failing := apply.Sink(&failingSink{shapedSink: sink.(shapedSink)})
			if pg, ok := sink.(*postgres.Sink); ok {
				failing = failingBinary{pg}
			}
			err := runCopy(t, m, failing, nil)
			// The server's COPY error carries the reader's message only.
			if err == nil || !strings.Contains(err.Error(), errInjected.Error()) {
				t.Fatalf("run with a failing target: %v, want the injected failure", err)
			}
			if st, ok, err := sink.ReadState(t.Context()); err != nil || ok && st.Phase != schema.PhaseSnapshot {
				t.Fatalf("state after the failed copy: %+v, %v, %v", st, ok, err)
			}
			if err := runCopy(t, m, sink, nil); err != nil {
				t.Fatal(err)
			}
			sink.Close()
			compareCopy(t, m, tg.name, rows)
		})
	}
}

// TestAutoChunkedCopiesSmallTablesAtOnce: an automatic chunked initial
// copy (--initial-copy auto over its threshold) copies the tables too small
// for more than one chunk in its first transaction, from the slot's
// snapshot, and only the others online (an online copy costs a lock, a
// snapshot, a watermark and a commit per table: seconds for hundreds of
// small tables). Every value equal in every target, then after changes.
func TestAutoChunkedCopiesSmallTablesAtOnce(t *testing.T) {
	defer apply.SetAutoChunkedRows(10_000)()
	for _, tg := range copyTargets() {
		t.Run(tg.name, func(t *testing.T) {
			m := newMirror(t)
			// Estimates 25000, 5000, 0 and 100 (a partitioned table: copied
			// online all the same, its estimate may leave partitions out),
			// and 20000 for grown, analyzed at 10 rows and loaded since: its
			// reltuples says 10, the statistics system's live rows 20000.
			m.exec(copySource + `; CREATE TABLE parted (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
				CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (1000);
				INSERT INTO parted SELECT g, 'p' || g FROM generate_series(1, 100) g;
				CREATE TABLE grown (id int PRIMARY KEY, v text);
				INSERT INTO grown SELECT g, 'g' || g FROM generate_series(1, 10) g;
				ANALYZE plain, moody, empty_t, parted_1, grown`)
			m.exec(`INSERT INTO grown SELECT g, 'g' || g FROM generate_series(11, 20000) g`)
			m.waitLiveTuples("grown", 20000)
			open, rows := tg.open(t)
			var mu sync.Mutex
			var logged strings.Builder
			run := func() {
				t.Helper()
				sink := open()
				defer sink.Close()
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
				defer cancel()
				err := apply.Run(ctx, sink, apply.Config{
					Source:        source.Config{DSN: m.dsn, Slot: m.slot, Publication: "walmirror"},
					StopAtNow:     true,
					CopyChunkRows: 10_000,
					Logger: slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, writerFunc(func(p []byte) (int, error) {
						mu.Lock()
						defer mu.Unlock()
						return logged.Write(p)
					})), &slog.HandlerOptions{Level: slog.LevelInfo})),
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			run()
			mu.Lock()
			log := logged.String()
			mu.Unlock()
			for _, want := range []string{`msg="copied the small tables at once" tables=2 rows=5000`, `msg="initial copy will be made in chunks while streaming" tables=3 `,
				`msg="table copied online" table=public.plain rows=25000`, `msg="table copied online" table=public.parted rows=100`,
				`msg="table copied online" table=public.grown rows=20000`} {
				if !strings.Contains(log, want) {
					t.Errorf("the log does not say %s", want)
				}
			}
			for _, small := range []string{"public.moody", "public.empty_t"} {
				if strings.Contains(log, `msg="table copied online" table=`+small+" ") {
					t.Errorf("%s was copied online, not in the first transaction", small)
				}
			}
			same := func() {
				t.Helper()
				compareCopy(t, m, tg.name, rows)
				for _, table := range []string{"parted", "grown"} {
					want, err := mirrortest.SourceRows(t.Context(), m.dsn, "SELECT id, v FROM "+table)
					if err != nil {
						t.Fatal(err)
					}
					name := "public." + table
					if tg.name == "sqlite" {
						name = table
					}
					if d := mirrortest.Diff(want, rows("SELECT id, v FROM "+name)); d != "" {
						t.Errorf("%s: %s", table, d)
					}
				}
			}
			same()
			m.exec(`UPDATE moody SET v = 'changed' WHERE id % 10 = 0; DELETE FROM moody WHERE id % 13 = 0; INSERT INTO empty_t VALUES (1), (2);
				UPDATE plain SET n = -n WHERE id % 11 = 0; UPDATE parted SET v = 'q' WHERE id % 3 = 0; DELETE FROM grown WHERE id % 7 = 0`)
			run()
			same()
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
