package postgres_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/postgres"
)

// TestApplyCost measures what the bench's insert and update workloads cost
// the sink, with the engine's default chunk size and about its commit size:
// CPU seconds of the target's backend (from /proc, so other load on the
// machine barely matters), of this process, and wall time. Opt-in:
// WALMIRROR_PERF=rows (e.g. 1000000); WALMIRROR_PERF_EXPLAIN=1 also logs the
// plans of slow statements (auto_explain) to /tmp/perf-postgres.log;
// WALMIRROR_PERF_TEXT=1 copies in text only; WALMIRROR_PERF_LOADER=n sets
// Options.LoaderRows (0: no loader session). The loader session's CPU is
// reported apart.
func TestApplyCost(t *testing.T) {
	total, _ := strconv.Atoi(os.Getenv("WALMIRROR_PERF"))
	if total == 0 {
		t.Skip("set WALMIRROR_PERF=rows to measure")
	}
	const chunk, commit = 20_000, 60_000
	if os.Getenv("WALMIRROR_PERF_TEXT") != "" {
		postgres.SetBinaryCopy(false) // text COPY, to compare
		defer postgres.SetBinaryCopy(true)
	}
	dsn := newDB(t, "perf")
	if os.Getenv("WALMIRROR_PERF_EXPLAIN") != "" {
		c := connect(t, dsn)
		for _, set := range []string{"session_preload_libraries = 'auto_explain'", "auto_explain.log_min_duration = '30ms'",
			"auto_explain.log_analyze = on", "auto_explain.log_buffers = on", "log_min_duration_statement = '30ms'"} {
			exec(t, c, "ALTER DATABASE "+qident(c.Config().Database)+" SET "+set)
		}
		c.Close(context.Background())
		defer func() {
			b, _ := os.ReadFile(filepath.Join(filepath.Dir(srv.DataDir()), "postgres.log"))
			os.WriteFile("/tmp/perf-postgres.log", b, 0o644)
		}()
	}
	opts := postgres.DefaultOptions()
	if v := os.Getenv("WALMIRROR_PERF_LOADER"); v != "" {
		opts.LoaderRows, _ = strconv.Atoi(v)
	}
	s := open(t, dsn, opts)
	defer s.Close()
	tbl := perfTable()
	tx(t, s, func(ctx context.Context) error { return s.EnsureTable(ctx, tbl) })
	conn := connect(t, dsn)
	loaderCPU := func() time.Duration { // since the loader session started: it starts on first use
		pids := query(t, conn, "SELECT pid FROM pg_stat_activity WHERE application_name = 'walmirror loader' AND datname = current_database()")
		if len(pids) == 0 {
			return 0
		}
		return backendCPU(t, string(pids[0][0]))
	}
	pids := query(t, conn, "SELECT pid FROM pg_stat_activity WHERE application_name = 'walmirror' AND datname = current_database()")
	if len(pids) != 1 {
		t.Fatalf("walmirror backends: %d", len(pids))
	}
	pid := string(pids[0][0])
	run := func(name string, round int, batch func(rows []schema.Tuple) *schema.Batch) {
		rows := make([]schema.Tuple, chunk)
		var mine syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &mine)
		self0 := time.Duration(mine.Utime.Nano() + mine.Stime.Nano())
		back0, load0 := backendCPU(t, pid), loaderCPU()
		began := time.Now()
		for first := 1; first <= total; first += commit {
			tx(t, s, func(ctx context.Context) error {
				for c := first; c < first+commit && c <= total; c += chunk {
					rows = rows[:0]
					for g := c; g < c+chunk && g <= total; g++ {
						rows = append(rows, perfRow(g, round))
					}
					if err := s.Write(ctx, batch(rows)); err != nil {
						return err
					}
				}
				return nil
			})
		}
		wall := time.Since(began)
		syscall.Getrusage(syscall.RUSAGE_SELF, &mine)
		self := time.Duration(mine.Utime.Nano()+mine.Stime.Nano()) - self0
		t.Logf("RESULT %s: %d rows: backend CPU %.2fs, loader backend %.2fs, walmirror-side CPU %.2fs (incl. row generation), wall %.2fs",
			name, total, (backendCPU(t, pid) - back0).Seconds(), (loaderCPU() - load0).Seconds(), self.Seconds(), wall.Seconds())
	}
	run("insert", 0, func(rows []schema.Tuple) *schema.Batch { return &schema.Batch{Table: tbl, Inserts: rows} })
	exec(t, conn, "VACUUM ANALYZE bench_t")
	run("update", 1, func(rows []schema.Tuple) *schema.Batch { return &schema.Batch{Table: tbl, Updates: rows} })
	got := query(t, conn, "SELECT count(*), sum(n) FROM bench_t")
	t.Logf("count %s sum(n) %s", got[0][0], got[0][1])
}

// backendCPU is a server process's user+system CPU time.
func backendCPU(t *testing.T, pid string) time.Duration {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// TestChunkCost times single 20k-row chunks (insert; update of existing
// rows), rolled back after each, alternating text and binary COPY; the
// minimum of many tries is robust against other load on the machine.
// Opt-in: WALMIRROR_PERF_CHUNK=tries.
func TestChunkCost(t *testing.T) {
	tries, _ := strconv.Atoi(os.Getenv("WALMIRROR_PERF_CHUNK"))
	if tries == 0 {
		t.Skip("set WALMIRROR_PERF_CHUNK=tries to measure")
	}
	const chunk = 20_000
	dsn := newDB(t, "perfchunk")
	s := open(t, dsn, postgres.DefaultOptions())
	defer s.Close()
	tbl := perfTable()
	tx(t, s, func(ctx context.Context) error { return s.EnsureTable(ctx, tbl) })
	pre := make([]schema.Tuple, 0, 200_000)
	for g := 1; g <= 200_000; g++ {
		pre = append(pre, perfRow(g, 0))
	}
	tx(t, s, func(ctx context.Context) error { return s.Write(ctx, &schema.Batch{Table: tbl, Inserts: pre}) })
	conn := connect(t, dsn)
	exec(t, conn, "VACUUM ANALYZE bench_t")
	ins := make([]schema.Tuple, 0, chunk)
	upd := make([]schema.Tuple, 0, chunk)
	for g := 1; g <= chunk; g++ {
		ins = append(ins, perfRow(300_000+g, 0))
		upd = append(upd, perfRow(50_000+g, 1))
	}
	pids := query(t, conn, "SELECT pid FROM pg_stat_activity WHERE application_name = 'walmirror' AND datname = current_database()")
	pid := string(pids[0][0])
	selfCPU := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	ctx := context.Background()
	best := map[string]time.Duration{}
	backend := map[string]time.Duration{}
	self := map[string]time.Duration{}
	for try := range tries {
		for _, mode := range []string{"text", "binary"} {
			postgres.SetBinaryCopy(mode == "binary")
			for _, w := range []struct {
				name string
				b    *schema.Batch
			}{{"insert", &schema.Batch{Table: tbl, Inserts: ins}}, {"update", &schema.Batch{Table: tbl, Updates: upd}}} {
				if err := s.Begin(ctx); err != nil {
					t.Fatal(err)
				}
				b0, s0 := backendCPU(t, pid), selfCPU()
				began := time.Now()
				if err := s.Write(ctx, w.b); err != nil {
					t.Fatal(err)
				}
				d := time.Since(began)
				backend[w.name+" "+mode] += backendCPU(t, pid) - b0
				self[w.name+" "+mode] += selfCPU() - s0
				if err := s.Rollback(ctx); err != nil {
					t.Fatal(err)
				}
				k := w.name + " " + mode
				if b, ok := best[k]; !ok || d < b {
					best[k] = d
				}
			}
		}
		if try%5 == 4 {
			exec(t, conn, "VACUUM bench_t")
		}
	}
	postgres.SetBinaryCopy(true)
	for _, k := range []string{"insert text", "insert binary", "update text", "update binary"} {
		t.Logf("RESULT %s: min %.1f ms per %d rows; mean CPU: backend %.1f ms, walmirror %.1f ms", k, best[k].Seconds()*1000, chunk,
			backend[k].Seconds()*1000/float64(tries), self[k].Seconds()*1000/float64(tries))
	}
}

func perfTable() *schema.Table {
	return schema.NewTable(1, "public", "bench_t", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt8, Typmod: -1, Key: true},
		{Name: "n", TypeID: schema.OIDInt4, Typmod: -1},
		{Name: "s", TypeID: schema.OIDText, Typmod: -1},
		{Name: "at", TypeID: schema.OIDTimestampTZ, Typmod: -1},
		{Name: "amount", TypeID: schema.OIDNumeric, Typmod: (12<<16 | 2) + 4},
		{Name: "doc", TypeID: schema.OIDJSONB, Typmod: -1},
	})
}

var perfBase = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// perfRow is a bench_t row as the source prints it (bench/workloads.go).
func perfRow(g, round int) schema.Tuple {
	txt := func(b []byte) schema.Datum { return schema.Datum{State: schema.Text, Data: b} }
	return schema.Tuple{
		txt(strconv.AppendInt(nil, int64(g), 10)),
		txt(strconv.AppendInt(nil, int64(g%1000+round), 10)),
		txt(fmt.Appendf(nil, "%032x", uint64(g)*2654435761+uint64(round))),
		txt([]byte(perfBase.Add(time.Duration(g)*time.Second).Format("2006-01-02 15:04:05") + "+00")),
		txt(fmt.Appendf(nil, "%d.%02d", g/100, g%100)),
		txt(fmt.Appendf(nil, `{"g": %d, "tag": "x"}`, g)),
	}
}
