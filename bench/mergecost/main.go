// Command mergecost measures what merging 1M staged rows into a keyed
// table costs at commit in each target, against loading the same rows the
// way walmirror does today: the evidence for how streamed transactions are
// applied (docs/ARCHITECTURE.md, "Where the time after a large
// transaction's COMMIT goes"). Run it alone on the machine:
//
//	go run ./bench/mergecost
package main

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"path/filepath"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/jackc/pgx/v5"
	_ "github.com/mattn/go-sqlite3"

	"github.com/walmirror/walmirror/testenv"
)

const n = 1_000_000

func must(err error) {
	if err != nil {
		panic(err)
	}
}

func timed(name string, f func()) {
	t := time.Now()
	f()
	fmt.Printf("%-40s %v\n", name, time.Since(t).Round(time.Millisecond))
}

func main() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "zzmerge")
	defer os.RemoveAll(dir)
	// SQLite: the staging table in a file of its own, attached.
	stage, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "stage.db")+"?_journal_mode=OFF&_synchronous=OFF")
	must(err)
	for _, q := range []string{"CREATE TABLE st (id INTEGER, n INTEGER, v TEXT, sub INTEGER)",
		"WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 1000000) INSERT INTO st SELECT i, i % 1000, lower(hex(randomblob(16))), 7 FROM g"} {
		_, err := stage.Exec(q)
		must(err)
	}
	stage.Close()
	lite, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "main.db")+"?_journal_mode=WAL&_synchronous=FULL")
	must(err)
	lite.SetMaxOpenConns(1)
	for _, q := range []string{"CREATE TABLE big (id INTEGER, n INTEGER, v TEXT, PRIMARY KEY (id))", "CREATE TABLE big2 (id INTEGER, n INTEGER, v TEXT, PRIMARY KEY (id))",
		"ATTACH '" + filepath.Join(dir, "stage.db") + "' AS stage"} {
		_, err := lite.Exec(q)
		must(err)
	}
	timed("sqlite merge INSERT..SELECT + commit", func() {
		_, err := lite.Exec("BEGIN IMMEDIATE; INSERT INTO main.big SELECT id, n, v FROM stage.st WHERE sub <> 3; COMMIT")
		must(err)
	})
	timed("sqlite prepared inserts 1M + commit", func() {
		tx, err := lite.Begin()
		must(err)
		st, err := tx.Prepare("INSERT INTO big2 VALUES (?, ?, ?)")
		must(err)
		for i := int64(1); i <= n; i++ {
			_, err := st.Exec(i, i%1000, fmt.Sprintf("%032x", i))
			must(err)
		}
		must(tx.Commit())
	})
	lite.Close()
	// DuckDB
	c, err := duckdb.NewConnector(filepath.Join(dir, "d.duckdb"), nil)
	must(err)
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1)
	for _, q := range []string{"CREATE TABLE big (id BIGINT PRIMARY KEY, n INTEGER, v VARCHAR)", "CREATE TABLE big2 (id BIGINT PRIMARY KEY, n INTEGER, v VARCHAR)",
		"CREATE TABLE st (id BIGINT, n INTEGER, v VARCHAR, sub UINTEGER)",
		"INSERT INTO st SELECT i, i % 1000, md5(i::varchar), 7 FROM range(1, 1000001) t(i)", "CHECKPOINT"} {
		_, err := db.Exec(q)
		must(err)
	}
	timed("duckdb merge INSERT..SELECT + commit", func() {
		tx, err := db.Begin()
		must(err)
		_, err = tx.Exec("INSERT INTO big SELECT id, n, v FROM st WHERE sub NOT IN (3)")
		must(err)
		must(tx.Commit())
	})
	conn, err := c.Connect(ctx)
	must(err)
	timed("duckdb appender 1M + commit", func() {
		_, err := conn.(driver.ExecerContext).ExecContext(ctx, "BEGIN", nil)
		must(err)
		a, err := duckdb.NewAppenderFromConn(conn, "", "big2")
		must(err)
		for i := int64(1); i <= n; i++ {
			must(a.AppendRow(i, int32(i%1000), fmt.Sprintf("%032x", i)))
		}
		must(a.Close())
		_, err = conn.(driver.ExecerContext).ExecContext(ctx, "COMMIT", nil)
		must(err)
	})
	timed("duckdb appender 1M into staging (no key)", func() {
		a, err := duckdb.NewAppenderFromConn(conn, "", "st")
		must(err)
		for i := int64(1); i <= n; i++ {
			must(a.AppendRow(i+n, int32(i%1000), fmt.Sprintf("%032x", i), uint32(7)))
		}
		must(a.Close())
	})
	// PostgreSQL
	srv, err := testenv.Start(ctx, testenv.Options{})
	must(err)
	defer srv.Close()
	pdb, err := srv.CreateDatabase(ctx, "m")
	must(err)
	pc, err := pgx.Connect(ctx, srv.DSN(pdb))
	must(err)
	for _, q := range []string{"CREATE TABLE big (id bigint PRIMARY KEY, n int, v text)", "CREATE TABLE big2 (id bigint PRIMARY KEY, n int, v text)",
		"CREATE UNLOGGED TABLE st (id bigint, n int, v text, sub int)",
		"INSERT INTO st SELECT i, i % 1000, md5(i::text), 7 FROM generate_series(1, 1000000) i", "VACUUM ANALYZE"} {
		_, err := pc.Exec(ctx, q)
		must(err)
	}
	timed("postgres merge INSERT..SELECT + commit", func() {
		_, err := pc.Exec(ctx, "BEGIN; INSERT INTO big SELECT id, n, v FROM st WHERE sub <> 3; COMMIT")
		must(err)
	})
	rows := make([][]any, 0, n)
	for i := int64(1); i <= n; i++ {
		rows = append(rows, []any{i, int32(i % 1000), fmt.Sprintf("%032x", i)})
	}
	timed("postgres COPY binary 1M + commit", func() {
		tx, err := pc.Begin(ctx)
		must(err)
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"big2"}, []string{"id", "n", "v"}, pgx.CopyFromRows(rows))
		must(err)
		must(tx.Commit(ctx))
	})
	_, err = pc.Exec(ctx, "TRUNCATE st")
	must(err)
	timed("postgres COPY binary 1M into unlogged staging", func() {
		_, err = pc.CopyFrom(ctx, pgx.Identifier{"st"}, []string{"id", "n", "v", "sub"}, pgx.CopyFromSlice(n, func(i int) ([]any, error) { return append(rows[i], int32(7)), nil }))
		must(err)
	})
}
