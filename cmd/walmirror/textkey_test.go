package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestChunkedCopyTextKey: tables keyed by text or varchar under a
// collation that sorts by bytes (the database's C.UTF-8, "C"), or by
// numeric (NaN and every scale), are copied online in chunks by key, and a copy killed midway resumes after its last
// committed chunk, while keys of every plane move across the copy's
// progress both ways. Before, such a table was read in one chunk (the
// stream waiting for it), and a kill started its copy over. Keys stored
// out of line (unsent in an UPDATE's new row) do not start the copy over.
// A key under a language's collation is still one chunk. Every target.
func TestChunkedCopyTextKey(t *testing.T) {
	needServer(t)
	for _, tg := range schemaTargets {
		t.Run(tg.name, func(t *testing.T) {
			dsn, db := newDatabase(t, `CREATE TABLE tk (k text PRIMARY KEY, v text);
				INSERT INTO tk SELECT (ARRAY['cus_', 'Cus_', 'é', '€', '😀', 'a b', ''])[g % 7 + 1] || md5(g::text), 'v' || g FROM generate_series(1, 6000) g;
				CREATE TABLE tv (s varchar(40) COLLATE "C", n int, v text, PRIMARY KEY (s, n));
				INSERT INTO tv SELECT 'S' || (g % 97), g, 'v' || g FROM generate_series(1, 3000) g;
				CREATE TABLE lk (k text PRIMARY KEY, v int);
				SELECT setseed(0.5);
				INSERT INTO lk SELECT (SELECT string_agg(chr(40 + (random() * 80)::int), '') FROM generate_series(1, 2600) x WHERE g > 0), g
					FROM generate_series(1, 1200) g;
				CREATE TABLE nk (n numeric PRIMARY KEY, v text);
				INSERT INTO nk SELECT (g - 1500) / 7.0 * 10 ^ (g % 5), 'v' || g FROM generate_series(1, 3000) g ON CONFLICT DO NOTHING;
				INSERT INTO nk VALUES ('NaN', 'nan'), ('-0.000001', 'tiny'), (123456789012345678901234567890.5, 'big');
				ANALYZE;
				CREATE PUBLICATION walmirror FOR TABLE tk, tv, lk, nk;`)
			var lang string
			if err := pgxQueryRow(t, dsn, `SELECT coalesce(max(quote_ident(collname)), '') FROM pg_collation
				WHERE collprovider = 'c' AND collencoding IN (-1, 6) AND collcollate ~ '^[a-z][a-z]_'`, &lang); err != nil {
				t.Fatal(err)
			}
			if lang != "" {
				mustExec(t, db, `CREATE TABLE tl (k text COLLATE `+lang+` PRIMARY KEY, v text);
					INSERT INTO tl SELECT 'k' || g, 'v' FROM generate_series(1, 500) g;
					ALTER PUBLICATION walmirror ADD TABLE tl`)
			}
			target, rows := tg.new(t)
			slot := "s_" + db
			dropSlotAtEnd(t, db, slot)
			args := []string{"run", "--source", dsn, "--target", target, "--slot", slot, "--initial-copy", "chunked",
				"--copy-chunk-rows", "100", "--copy-chunk-time", "-1s", "--log-level", "debug"}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			changes := writeLoop(ctx, dsn, 400, 5*time.Millisecond, func(ctx context.Context, conn *pgx.Conn, i int) error {
				b := &pgx.Batch{}
				pick := `(SELECT k FROM tk ORDER BY md5(k || $1::int::text) LIMIT 1)`
				b.Queue(`UPDATE tk SET v = v || '+' WHERE k = `+pick, i)
				b.Queue(`UPDATE tk SET k = upper(k) || '~' WHERE k = `+pick, i+1)   // 'c…' moves before, 'é…' stays after
				b.Queue(`UPDATE tk SET k = chr(1114111) || k WHERE k = `+pick, i+2) // to the end
				b.Queue(`UPDATE tk SET k = ' ' || k WHERE k = `+pick, i+3)          // to the start
				b.Queue(`DELETE FROM tk WHERE k = `+pick, i+4)
				b.Queue(`INSERT INTO tk VALUES (chr(65 + $1::int % 60) || chr(200 + $1::int) || $1::text, 'n') ON CONFLICT DO NOTHING`, i)
				b.Queue(`UPDATE tv SET s = CASE WHEN $1::int % 2 = 0 THEN 'A' ELSE 'z' END || s WHERE n = $2`, i, (i*13)%3000+1)
				b.Queue(`UPDATE tv SET v = v || '+' WHERE s = 'S' || $1::int % 97`, i)
				b.Queue(`DELETE FROM tv WHERE n = $1`, (i*17)%3000+1)
				// Keys stored out of line (incompressible, 2,600 bytes): an
				// UPDATE that keeps the key sends it in the old key only.
				b.Queue(`UPDATE lk SET v = v + 1 WHERE v = $1`, (i*37)%1200+1)
				b.Queue(`UPDATE nk SET n = -n WHERE n = (SELECT n FROM nk WHERE n <> 'NaN' ORDER BY md5(n::text || $1::int::text) LIMIT 1)
					AND NOT EXISTS (SELECT FROM nk x WHERE x.n = -nk.n)`, i)
				b.Queue(`UPDATE nk SET n = n + 1000.25, v = v || '+' WHERE n = (SELECT n FROM nk WHERE n <> 'NaN' ORDER BY md5(n::text || $1::int::text) LIMIT 1)
					AND NOT EXISTS (SELECT FROM nk x WHERE x.n = nk.n + 1000.25)`, i+1)
				b.Queue(`INSERT INTO nk VALUES ($1::int / 3.0 - 100, 'n') ON CONFLICT DO NOTHING`, i)
				if lang != "" {
					b.Queue(`UPDATE tl SET v = v || '+' WHERE k = 'k' || $1::int`, i%500+1)
				}
				return conn.SendBatch(ctx, b).Close()
			})
			// A first run, killed once it has committed some chunks of tk.
			first := killAfterRows(t, args, "public.tk", 1500)
			r := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...)
			if r.code != 0 {
				t.Fatalf("resumed run exited %d:\n%s", r.code, r.stderr)
			}
			if err := <-changes; err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(first, `msg="table copied online" table=public.tk`) &&
				!strings.Contains(r.stderr, "resuming online copy after its last committed chunk") {
				t.Errorf("the second run did not resume the copy of tk:\n%s", r.stderr)
			}
			// What the writes changed after the second run's stop position.
			if r2 := walmirror(t, nil, append(args, "--stop-at-lsn", "now")...); r2.code != 0 {
				t.Fatalf("third run exited %d:\n%s", r2.code, r2.stderr)
			}
			all := first + r.stderr
			if strings.Contains(all, "large values unsent") {
				t.Errorf("a copy started over for an update that kept a long key:\n%s", all)
			}
			for _, table := range []string{"public.tk", "public.tv", "public.lk", "public.nk"} {
				if n := len(chunkSizes(all, table)); n < 10 {
					t.Errorf("%s was copied in %d chunks, want several:\n%s", table, n, all)
				}
			}
			if lang != "" {
				if n := len(chunkSizes(all, "public.tl")); n != 1 {
					t.Errorf("public.tl (collation %s) was copied in %d chunks, want 1", lang, n)
				}
			}
			compareRows(t, dsn, rows, "SELECT k, v FROM tk", "SELECT s, n, v FROM tv", "SELECT k, v FROM lk", "SELECT v FROM nk")
			if v := walmirror(t, nil, "verify", "--source", dsn, "--target", target); v.code != 0 {
				t.Errorf("verify exited %d:\n%s%s", v.code, v.stdout, v.stderr)
			}
		})
	}
}

// chunkSizes lists the rows of table's "copied chunk" log lines.
func chunkSizes(log, table string) []string {
	var sizes []string
	for _, m := range chunkRowsRe.FindAllStringSubmatch(log, -1) {
		if m[1] == table {
			sizes = append(sizes, m[2])
		}
	}
	return sizes
}

// pgxQueryRow scans one row of query on dsn into dest.
func pgxQueryRow(t *testing.T, dsn, query string, dest ...any) error {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(context.Background(), query).Scan(dest...)
}
