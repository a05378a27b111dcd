package apply_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/sinks/memory"
	"github.com/walmirror/walmirror/sinks/sqlite"
	"github.com/walmirror/walmirror/source"
)

// Copy a PostgreSQL database into an SQLite file, up to the source's
// current position, then stop (a cron-style refresh). Run with no StopAt
// keeps the copy current until its context is cancelled.
func ExampleRun() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "walmirror-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sink, err := sqlite.Open(ctx, filepath.Join(dir, "copy.db"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()

	err = apply.Run(ctx, sink, apply.Config{
		Source: source.Config{
			DSN:  os.Getenv("WALMIRROR_SOURCE"), // e.g. postgres://app:secret@db.internal/shop
			Slot: os.Getenv("WALMIRROR_SLOT"),   // "" is the default, walmirror
		},
		Limits:    apply.Limits{CommitRows: 10_000}, // the other limits keep their defaults
		StopAtNow: true,
	})
	switch {
	case errors.Is(err, apply.ErrSlotLost):
		log.Fatal("the copy fell too far behind; run again with Resync: ", err)
	case err != nil:
		log.Fatal(err)
	}
	st, _, _ := sink.ReadState(ctx)
	fmt.Println("copied up to the position taken at start:", st.LSN > 0)
	// (Run by TestExamples against a real server; output:)
	// copied up to the position taken at start: true
}

// Read your own writes from an in-process copy: write to PostgreSQL, take
// the WAL position after the commit, wait until the copy has applied it,
// then read the copy.
func ExampleProgress_WaitFor() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dsn := os.Getenv("WALMIRROR_SOURCE")

	copyDB := memory.New()
	sink, err := copyDB.Open()
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()
	var progress apply.Progress
	cfg := apply.Config{Source: source.Config{DSN: dsn, Slot: os.Getenv("WALMIRROR_SLOT")}}
	progress.Hook(&cfg) // keeps hooks already set
	done := make(chan error, 1)
	go func() { done <- apply.Run(ctx, sink, cfg) }()

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `INSERT INTO items (id, name) VALUES (42, 'lamp')`); err != nil {
		log.Fatal(err)
	}
	// After the commit (a statement of its own: inside the transaction the
	// position would lie before its commit record). After a commit with
	// synchronous_commit = off, take pg_current_wal_insert_lsn() instead
	// (see Progress).
	var at string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&at); err != nil {
		log.Fatal(err)
	}
	pos, err := lsn.Parse(at)
	if err != nil {
		log.Fatal(err)
	}
	wctx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	if err := progress.WaitFor(wctx, pos); err != nil {
		log.Fatal("the copy did not catch up: ", err)
	}
	row, ok := copyDB.Lookup("public", "items", map[string]string{"id": "42"})
	fmt.Println(ok, row["name"].Text)

	cancel()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	// (Run by TestExamples against a real server; output:)
	// true lamp
}

// A half-set Config takes defaults per field; Validate names a field that
// is out of range.
func ExampleConfig_Validate() {
	cfg := apply.Config{
		Source: source.Config{DSN: "postgres://app@db.internal/shop"},
		Limits: apply.Limits{CommitRows: 1000, ChunkRows: -1},
	}
	err := cfg.Validate()
	var bad *apply.ConfigError
	if errors.As(err, &bad) {
		fmt.Println("bad field:", bad.Field)
	}
	fmt.Println(err)
	// Output:
	// bad field: Limits.ChunkRows
	// apply.Config.Limits.ChunkRows = -1: must be positive (0: the default)
}
