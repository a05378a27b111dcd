package duckdb_test

import (
	"context"
	"database/sql/driver"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	duckdbdrv "github.com/duckdb/duckdb-go/v2"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/sinks/duckdb"
)

const benchRows = 100_000

// benchTable: bigint key, int, text, timestamptz, numeric(12,2), jsonb.
func benchTable() *schema.Table {
	return schema.NewTable(1, "public", "bench", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt8, Typmod: -1, Key: true},
		{Name: "n", TypeID: schema.OIDInt4, Typmod: -1},
		{Name: "note", TypeID: schema.OIDText, Typmod: -1},
		{Name: "at", TypeID: schema.OIDTimestampTZ, Typmod: -1},
		{Name: "amount", TypeID: schema.OIDNumeric, Typmod: numericTypmod(12, 2)},
		{Name: "doc", TypeID: schema.OIDJSONB, Typmod: -1},
	})
}

// benchTuples builds rows in PostgreSQL text form; setKeys renumbers them.
type benchTuples struct {
	rows []schema.Tuple
	keys []byte
}

func newBenchTuples(n int) *benchTuples {
	bt := &benchTuples{rows: make([]schema.Tuple, n), keys: make([]byte, 0, n*20)}
	base := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range bt.rows {
		bt.rows[i] = schema.Tuple{
			{State: schema.Text},
			{State: schema.Text, Data: []byte(strconv.Itoa(i % 1000))},
			{State: schema.Text, Data: []byte("order note number " + strconv.Itoa(i) + ", shipped")},
			{State: schema.Text, Data: []byte(base.Add(time.Duration(i)*time.Millisecond).Format("2006-01-02 15:04:05.999999") + "+00")},
			{State: schema.Text, Data: []byte(strconv.Itoa(i) + "." + strconv.Itoa(10+i%90))},
			{State: schema.Text, Data: []byte(`{"sku": "A-` + strconv.Itoa(i%5000) + `", "qty": ` + strconv.Itoa(i%7) + `, "tags": ["x", "y"]}`)},
		}
	}
	bt.setKeys(0)
	return bt
}

func (bt *benchTuples) setKeys(first int64) {
	bt.keys = bt.keys[:0]
	for i := range bt.rows {
		start := len(bt.keys)
		bt.keys = strconv.AppendInt(bt.keys, first+int64(i), 10)
		bt.rows[i][0].Data = bt.keys[start:len(bt.keys):len(bt.keys)]
	}
}

func benchSink(b *testing.B) (*duckdb.Sink, *schema.Table) {
	b.Helper()
	s, err := duckdb.Open(b.Context(), filepath.Join(b.TempDir(), "bench.duckdb"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	t := benchTable()
	commit(b, s, func(ctx context.Context) error { return s.EnsureTable(ctx, t) })
	return s, t
}

func commit(b *testing.B, s *duckdb.Sink, fn func(ctx context.Context) error) {
	b.Helper()
	ctx := b.Context()
	if err := s.Begin(ctx); err != nil {
		b.Fatal(err)
	}
	if err := fn(ctx); err != nil {
		b.Fatal(err)
	}
	if err := s.Commit(ctx, schema.State{LSN: 0, Slot: "bench", SystemID: "1", Phase: schema.PhaseStreaming}); err != nil {
		b.Fatal(err)
	}
}

func reportRows(b *testing.B, rows int) {
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkAppendInserts: 100k new rows per transaction through Write's
// Inserts. "streaming" inserts into a table that holds earlier rows (each
// batch is checked against them); "snapshot" empties the table first, as
// the initial copy does (keys checked once at commit). "raw-appender" is the
// reference: DuckDB's appender fed ready Go values into a like table, with
// none of the sink's parsing or checks.
func BenchmarkAppendInserts(b *testing.B) {
	b.Run("streaming", func(b *testing.B) {
		s, t := benchSink(b)
		bt := newBenchTuples(benchRows)
		next := int64(0)
		for b.Loop() {
			b.StopTimer()
			bt.setKeys(next)
			next += benchRows
			b.StartTimer()
			commit(b, s, func(ctx context.Context) error {
				return s.Write(ctx, &schema.Batch{Table: t, Inserts: bt.rows})
			})
		}
		reportRows(b, b.N*benchRows)
	})
	b.Run("snapshot", func(b *testing.B) {
		s, t := benchSink(b)
		bt := newBenchTuples(benchRows)
		for b.Loop() {
			commit(b, s, func(ctx context.Context) error {
				if err := s.Truncate(ctx, []*schema.Table{t}); err != nil {
					return err
				}
				return s.Write(ctx, &schema.Batch{Table: t, Inserts: bt.rows})
			})
		}
		reportRows(b, b.N*benchRows)
	})
	b.Run("raw-appender", func(b *testing.B) {
		s, _ := benchSink(b)
		conn, err := s.DB().Conn(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(b.Context(), `CREATE TABLE raw (id BIGINT, n INTEGER, note VARCHAR, "at" TIMESTAMPTZ, amount DECIMAL(12,2), doc VARCHAR)`); err != nil {
			b.Fatal(err)
		}
		base := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
		note := []byte("order note number 12345, shipped")
		doc := []byte(`{"sku": "A-12", "qty": 3, "tags": ["x", "y"]}`)
		next := int64(0)
		for b.Loop() {
			if _, err := conn.ExecContext(b.Context(), "BEGIN"); err != nil {
				b.Fatal(err)
			}
			err := conn.Raw(func(dc any) error {
				a, err := duckdbdrv.NewAppenderFromConn(dc.(driver.Conn), "main", "raw")
				if err != nil {
					return err
				}
				for i := range benchRows {
					if err := a.AppendRow(next, int32(i%1000), note, base.Add(time.Duration(i)*time.Millisecond), int64(i*100+17), doc); err != nil {
						return err
					}
					next++
				}
				return a.Close()
			})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := conn.ExecContext(b.Context(), "COMMIT"); err != nil {
				b.Fatal(err)
			}
		}
		reportRows(b, b.N*benchRows)
	})
}

// BenchmarkUpdates: 100k complete rows per transaction replacing rows the
// table (200k rows) holds, as the engine now sends updates.
func BenchmarkUpdates(b *testing.B) {
	s, t := benchSink(b)
	bt := newBenchTuples(benchRows)
	for i := range int64(2) {
		bt.setKeys(i * benchRows)
		commit(b, s, func(ctx context.Context) error { return s.Write(ctx, &schema.Batch{Table: t, Inserts: bt.rows}) })
	}
	first := int64(0)
	for b.Loop() {
		b.StopTimer()
		bt.setKeys(first)
		first = (first + benchRows/2) % benchRows
		b.StartTimer()
		commit(b, s, func(ctx context.Context) error {
			return s.Write(ctx, &schema.Batch{Table: t, Updates: bt.rows})
		})
	}
	reportRows(b, b.N*benchRows)
}

// BenchmarkSmallCommits: what a target commit costs while walmirror
// follows pgbench TPC-B live (the lag workload): each commit carries a few
// source transactions, each an update of an account (100k rows), a teller
// and the branch, and a history row (no key). Reports the commit latency
// percentiles; the lag a reader sees is about one such commit plus the
// time its rows waited for the previous one.
// SerialSmallWrites (what the walmirror command sets) against the
// instance's own threads.
// The last case starts with 250,000 history rows (past two row groups, as
// after a few minutes of pgbench): its inserts still run on one thread.
//
// The big-accounts cases have 1M accounts (pgbench scale 10, as the lag
// workload), past what SerialSmallWrites runs on one thread, and 40
// accounts per commit: each commit needs the instance's threads for the
// accounts and one thread for the rest, unless the sink stays put.
func BenchmarkSmallCommits(b *testing.B) {
	b.Run("threads=instance", func(b *testing.B) { smallCommits(b, false, 0, 100_000, 4) })
	b.Run("serial-small-writes", func(b *testing.B) { smallCommits(b, true, 0, 100_000, 4) })
	b.Run("serial-small-writes-long-history", func(b *testing.B) { smallCommits(b, true, 250_000, 100_000, 4) })
	b.Run("threads=instance-big-accounts", func(b *testing.B) { smallCommits(b, false, 0, 1_000_000, 40) })
	b.Run("serial-small-writes-big-accounts", func(b *testing.B) { smallCommits(b, true, 0, 1_000_000, 40) })
	// The key index (keyindex.go) against a scan of the table, at pgbench
	// scale 10 and 50.
	b.Run("serial-small-writes-big-accounts-no-index", func(b *testing.B) { smallCommits(b, true, 0, 1_000_000, 40, noIndex) })
	b.Run("serial-small-writes-5M-accounts", func(b *testing.B) { smallCommits(b, true, 0, 5_000_000, 40) })
	b.Run("serial-small-writes-5M-accounts-no-index", func(b *testing.B) { smallCommits(b, true, 0, 5_000_000, 40, noIndex) })
	// The accounts' updates as patches (the filler unsent, as a TOASTed
	// value left alone is): a MERGE that fails on a missing row.
	b.Run("serial-small-writes-patches", func(b *testing.B) { smallCommits(b, true, 0, 100_000, 4, asPatches) })
	b.Run("serial-small-writes-big-accounts-patches", func(b *testing.B) { smallCommits(b, true, 0, 1_000_000, 40, asPatches) })
}

// smallRun is how smallCommits runs: its sink, and whether the accounts'
// updates go as patches.
type smallRun struct {
	sink    *duckdb.Sink
	patches bool
}

// noIndex makes smallCommits run without key indexes.
func noIndex(r *smallRun) { r.sink.KeyIndexRows = -1 }

// asPatches sends the accounts' updates with the filler unsent.
func asPatches(r *smallRun) { r.patches = true }

func smallCommits(b *testing.B, serial bool, historyRows, accounts, perCommit int, opts ...func(*smallRun)) {
	s, err := duckdb.Open(b.Context(), filepath.Join(b.TempDir(), "bench.duckdb"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	s.SerialSmallWrites = serial
	run := smallRun{sink: s}
	for _, o := range opts {
		o(&run)
	}
	filler := func(n int) []byte { return []byte(fmt.Sprintf("%-*s", n, "")) }
	keyed := func(id uint32, name string, fill int) *schema.Table {
		return schema.NewTable(id, "public", name, schema.IdentityDefault, []schema.Column{
			{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
			{Name: "bid", TypeID: schema.OIDInt4, Typmod: -1},
			{Name: "balance", TypeID: schema.OIDInt4, Typmod: -1},
			{Name: "filler", TypeID: schema.OIDBpchar, Typmod: int32(fill + 4)},
		})
	}
	acc, tel, br := keyed(1, "accounts", 84), keyed(2, "tellers", 84), keyed(3, "branches", 88)
	hist := schema.NewTable(4, "public", "history", schema.IdentityDefault, []schema.Column{
		{Name: "tid", TypeID: schema.OIDInt4, Typmod: -1},
		{Name: "bid", TypeID: schema.OIDInt4, Typmod: -1},
		{Name: "aid", TypeID: schema.OIDInt4, Typmod: -1},
		{Name: "delta", TypeID: schema.OIDInt4, Typmod: -1},
		{Name: "mtime", TypeID: schema.OIDTimestamp, Typmod: -1},
		{Name: "filler", TypeID: schema.OIDBpchar, Typmod: 22 + 4},
	})
	row := func(id, bal int, fill int) schema.Tuple {
		return schema.Tuple{{State: schema.Text, Data: []byte(strconv.Itoa(id))}, {State: schema.Text, Data: []byte("1")},
			{State: schema.Text, Data: []byte(strconv.Itoa(bal))}, {State: schema.Text, Data: filler(fill)}}
	}
	commit(b, s, func(ctx context.Context) error {
		for _, t := range []*schema.Table{acc, tel, br, hist} {
			if err := s.EnsureTable(ctx, t); err != nil {
				return err
			}
		}
		var rows []schema.Tuple
		for i := 1; i <= accounts; i++ {
			if rows = append(rows, row(i, 0, 84)); len(rows) == 100_000 || i == accounts {
				if err := s.Write(ctx, &schema.Batch{Table: acc, Inserts: rows}); err != nil {
					return err
				}
				rows = rows[:0]
			}
		}
		for i := 1; i <= 10; i++ {
			rows = append(rows, row(i, 0, 84))
		}
		if err := s.Write(ctx, &schema.Batch{Table: tel, Inserts: rows}); err != nil {
			return err
		}
		if err := s.Write(ctx, &schema.Batch{Table: br, Inserts: []schema.Tuple{row(1, 0, 88)}}); err != nil {
			return err
		}
		var hist0 []schema.Tuple
		for i := range historyRows {
			hist0 = append(hist0, schema.Tuple{{State: schema.Text, Data: []byte("1")}, {State: schema.Text, Data: []byte("1")},
				{State: schema.Text, Data: []byte(strconv.Itoa(1 + i%accounts))}, {State: schema.Text, Data: []byte("1")},
				{State: schema.Text, Data: []byte("2026-12-01 00:00:00")}, {State: schema.Null}})
		}
		return s.Write(ctx, &schema.Batch{Table: hist, Inserts: hist0})
	})
	// One update first: a table that gets a key index gets it at this
	// commit, not in the loop.
	commit(b, s, func(ctx context.Context) error {
		return s.Write(ctx, &schema.Batch{Table: acc, Updates: []schema.Tuple{row(1, 1, 84)}})
	})
	var lat []time.Duration
	var parts [5]time.Duration // accounts, tellers, branches, history, commit
	n := 0
	for b.Loop() {
		began := time.Now()
		commit(b, s, func(ctx context.Context) error {
			var au, tu, hi []schema.Tuple
			for range perCommit {
				n++
				// Spread over the whole table, as pgbench's random
				// accounts are (consecutive multiples of 7919 kept a
				// commit's keys in a few row groups, which DuckDB's
				// row-group statistics skip to even without an index).
				aid := 1 + int(uint64(n)*2654435761%uint64(accounts))
				a := row(aid, n, 84)
				if run.patches {
					a[3] = schema.Datum{State: schema.Unchanged}
				}
				au = append(au, a)
				tu = append(tu, row(1+n%10, n, 84))
				hi = append(hi, schema.Tuple{{State: schema.Text, Data: []byte(strconv.Itoa(1 + n%10))}, {State: schema.Text, Data: []byte("1")},
					{State: schema.Text, Data: []byte(strconv.Itoa(aid))}, {State: schema.Text, Data: []byte(strconv.Itoa(n % 5000))},
					{State: schema.Text, Data: []byte("2026-12-01 00:00:00.123456")}, {State: schema.Null}})
			}
			accounts := &schema.Batch{Table: acc, Updates: au}
			if run.patches {
				accounts = &schema.Batch{Table: acc, Patches: au}
			}
			for i, bt := range []*schema.Batch{accounts, {Table: tel, Updates: tu[:1]}, {Table: br, Updates: []schema.Tuple{row(1, n, 88)}}, {Table: hist, Inserts: hi}} {
				t0 := time.Now()
				if err := s.Write(ctx, bt); err != nil {
					return err
				}
				parts[i] += time.Since(t0)
			}
			parts[4] -= time.Since(began)
			return nil
		})
		lat = append(lat, time.Since(began))
		parts[4] += time.Since(began)
	}
	if os.Getenv("WALMIRROR_BENCH_PARTS") != "" {
		b.Logf("per commit: accounts %v tellers %v branches %v history %v commit %v", parts[0]/time.Duration(len(lat)), parts[1]/time.Duration(len(lat)), parts[2]/time.Duration(len(lat)), parts[3]/time.Duration(len(lat)), parts[4]/time.Duration(len(lat)))
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}
