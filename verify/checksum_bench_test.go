package verify

import (
	"context"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/testenv"
)

// BenchmarkChecksumQueries times, on PostgreSQL, what each side of a
// comparison costs the database for the 1M-row benchmark table (bench_t of
// ./bench): sending every row (COPY, what the row comparison reads), the
// checksums by range verify computes on both PostgreSQL sides, and a hash
// DuckDB and SQLite could compute alike (md5 of the row's text, as two
// 64-bit integers), which is what checksums against those targets would
// cost the source.
//
//	go test ./verify/ -run '^$' -bench ChecksumQueries -benchtime 3x
func BenchmarkChecksumQueries(b *testing.B) {
	if testing.Short() {
		b.Skip("needs PostgreSQL (not in -short mode)")
	}
	ctx := context.Background()
	srv := testenv.StartT(b, testenv.Options{})
	db, err := srv.CreateDatabase(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Exec(ctx, db, `CREATE TABLE bench_t (id bigint PRIMARY KEY, n int, s text, at timestamptz, amount numeric(12,2), doc jsonb);
		INSERT INTO bench_t SELECT g, g % 1000, md5(g::text), '2024-01-01'::timestamptz + g * interval '1 second', g * 0.01,
			jsonb_build_object('g', g, 'tag', 'x') FROM generate_series(1, 1000000) g`); err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, srv.DSN(db))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	// The expression verify builds for bench_t (rowHashExpr), and the
	// query of the first pass (shift 10: about 1000 ranges).
	sum := `SELECT (id::int8 >> 10)::text, count(*)::text, sum(hash_record_extended(ROW(int8send(id), n, s COLLATE "C",
		timestamptz_send(at), numeric_send(amount), (doc::text) COLLATE "C"), 0))::text FROM bench_t GROUP BY 1`
	md5 := `SELECT id >> 10, count(*), sum(('x' || substr(m, 1, 16))::bit(64)::bigint), sum(('x' || substr(m, 17, 16))::bit(64)::bigint)
		FROM (SELECT id, md5(t::text) m FROM bench_t t OFFSET 0) s GROUP BY 1`
	for _, q := range []struct{ name, sql string }{
		{"copy", `COPY (SELECT * FROM bench_t ORDER BY id) TO STDOUT`},
		{"checksums", sum},
		{"md5", md5},
	} {
		b.Run(q.name, func(b *testing.B) {
			for b.Loop() {
				if q.name == "copy" {
					if _, err := conn.PgConn().CopyTo(ctx, io.Discard, q.sql); err != nil {
						b.Fatal(err)
					}
					continue
				}
				if _, err := conn.PgConn().Exec(ctx, q.sql).ReadAll(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
