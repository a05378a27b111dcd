package duckdb_test

import (
	"context"
	"database/sql/driver"
	"path/filepath"
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
