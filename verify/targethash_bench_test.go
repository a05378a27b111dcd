package verify

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/walmirror/walmirror/schema"
)

// BenchmarkTargetChecksums times the first pass of checksums (about 1000
// ranges) on a SQLite and a DuckDB copy of the 1M-row benchmark table
// (bench_t of ./bench, in the forms the sinks keep it), the copy's side
// of a comparison by checksums.
//
//	go test ./verify/ -run '^$' -bench TargetChecksums -benchtime 3x
func BenchmarkTargetChecksums(b *testing.B) {
	ctx := context.Background()
	tb := NewTable(schema.NewTable(1, "public", "bench_t", 'd', []schema.Column{
		{Name: "id", TypeID: schema.OIDInt8, Key: true}, {Name: "n", TypeID: schema.OIDInt4}, {Name: "s", TypeID: schema.OIDText},
		{Name: "at", TypeID: schema.OIDTimestampTZ}, {Name: "amount", TypeID: schema.OIDNumeric, Typmod: 12<<16 | 2 + 4},
		{Name: "doc", TypeID: schema.OIDJSONB}}))
	for _, target := range []string{"sqlite", "duckdb"} {
		b.Run(target, func(b *testing.B) {
			var r *SQLReader
			var err error
			if target == "sqlite" {
				path := filepath.Join(b.TempDir(), "copy.db")
				db, err := sql.Open("sqlite3", path)
				if err != nil {
					b.Fatal(err)
				}
				for _, q := range []string{
					`CREATE TABLE bench_t (id INTEGER PRIMARY KEY, n INTEGER, s TEXT, at TEXT, amount TEXT, doc TEXT)`,
					`WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 1000000)
					 INSERT INTO bench_t SELECT i, i % 1000, hex(randomblob(16)), strftime('%Y-%m-%dT%H:%M:%S.000000Z', 1704067200 + i, 'unixepoch'),
						printf('%d.%02d', i / 100, i % 100), '{"g": ' || i || ', "tag": "x"}' FROM g`,
				} {
					if _, err := db.Exec(q); err != nil {
						b.Fatal(err)
					}
				}
				db.Close()
				r, err = OpenSQLite(ctx, path)
			} else {
				db, err := sql.Open("duckdb", "")
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				for _, q := range []string{
					`CREATE SCHEMA IF NOT EXISTS public`,
					`CREATE TABLE public.bench_t (id BIGINT, n INTEGER, s VARCHAR, "at" TIMESTAMPTZ, amount DECIMAL(12,2), doc JSON)`,
					`INSERT INTO public.bench_t SELECT i, i % 1000, md5(i::VARCHAR), TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL 1 SECOND,
						i * 0.01, '{"g": ' || i || ', "tag": "x"}' FROM range(1, 1000001) t(i)`,
				} {
					if _, err := db.Exec(q); err != nil {
						b.Fatal(err)
					}
				}
				r, err = DuckDB(ctx, db)
			}
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			p, err := r.hashPlan(ctx, tb)
			if err != nil {
				b.Fatal(err)
			}
			count := func(n *int64) func(_ *int64, s rangeSum) error {
				return func(_ *int64, s rangeSum) error {
					*n += s.rows
					if s.unhashed {
						b.Fatal("unhashed rows")
					}
					return nil
				}
			}
			b.Run("ranges", func(b *testing.B) {
				for b.Loop() {
					n := int64(0)
					if err := r.sumRanges(ctx, tb, p.targetArgs(), 10, -1<<63, 1<<63-1, count(&n)); err != nil || n != 1000000 {
						b.Fatal(n, err)
					}
				}
			})
			// The same table as if keyed by s (text), and without a key:
			// buckets of the key's hash, of the row's.
			for _, key := range []string{"text", "none"} {
				b.Run("buckets-"+key, func(b *testing.B) {
					h := sideHash{row: p.targetArgs()}
					if key == "text" {
						h.key = p.targetArgsOf([]int{2})
					}
					kt := *tb
					kt.keys = nil
					if key == "text" {
						kt.keys = []int{2}
					}
					for b.Loop() {
						n := int64(0)
						if err := r.sumBuckets(ctx, &kt, h, 11, nil, count(&n)); err != nil || n != 1000000 {
							b.Fatal(n, err)
						}
					}
				})
			}
		})
	}
}
