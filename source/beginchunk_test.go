package source

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/testenv"
)

// TestBeginChunkTableRenamed: a table renamed (or dropped) between the
// chunk's look-up of its name and its LOCK TABLE made the lock fail with
// "relation ... does not exist" (42P01), and the run stopped (an
// application's staging table dropped moments after it was filled). The
// name is looked up again: a renamed table is copied under its new name.
func TestBeginChunkTableRenamed(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	srv := testenv.StartT(t, testenv.Options{})
	if err := srv.Exec(ctx, "postgres", `CREATE TABLE staged (id int PRIMARY KEY); INSERT INTO staged VALUES (1), (2);
		CREATE PUBLICATION p FOR ALL TABLES`); err != nil {
		t.Fatal(err)
	}
	connect := func() *pgx.Conn {
		conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	conn, ddl := connect(), connect()
	var relid uint32
	if err := ddl.QueryRow(ctx, `SELECT 'staged'::regclass::oid`).Scan(&relid); err != nil {
		t.Fatal(err)
	}
	c := &Copier{conn: conn, publication: "p", version: srv.VersionNum()}
	// The rename holds the table locked until it commits: the chunk looks
	// up the old name, waits at its LOCK TABLE, and finds that name gone.
	tx, err := ddl.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `ALTER TABLE staged RENAME TO staged2`); err != nil {
		t.Fatal(err)
	}
	type result struct {
		ch  *Chunk
		err error
	}
	got := make(chan result, 1)
	go func() {
		ch, err := c.BeginChunk(ctx, relid)
		got <- result{ch, err}
	}()
	time.Sleep(500 * time.Millisecond) // at its LOCK TABLE
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatalf("chunk of a table renamed while it was locked: %v", r.err)
	}
	defer r.ch.tx.Rollback(context.Background())
	if !r.ch.Published || r.ch.Table == nil || r.ch.Table.Name != "staged2" {
		t.Fatalf("chunk: published %v, table %+v; want staged2", r.ch.Published, r.ch.Table)
	}
}

// TestLockHolders: the sessions and prepared transactions holding a lock
// a chunk waits for are named (the online copy's warning).
func TestLockHolders(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	srv := testenv.StartT(t, testenv.Options{Settings: map[string]string{"max_prepared_transactions": "2"}})
	if err := srv.Exec(ctx, "postgres", `CREATE TABLE held (id int PRIMARY KEY); CREATE TABLE prep (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	connect := func() *pgx.Conn {
		conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	conn, locker, preparer := connect(), connect(), connect()
	c := &Copier{conn: conn, publication: "p", version: srv.VersionNum()}
	var held, prep uint32
	if err := conn.QueryRow(ctx, `SELECT 'held'::regclass::oid, 'prep'::regclass::oid`).Scan(&held, &prep); err != nil {
		t.Fatal(err)
	}
	if h, err := c.LockHolders(ctx, held); err != nil || h != "" {
		t.Fatalf("no lock: %q, %v", h, err)
	}
	if _, err := locker.Exec(ctx, `BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	if _, err := preparer.Exec(ctx, `BEGIN; LOCK TABLE prep IN ACCESS EXCLUSIVE MODE; PREPARE TRANSACTION 'migration_1'`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Exec(context.Background(), "postgres", `ROLLBACK PREPARED 'migration_1'`) })
	if h, err := c.LockHolders(ctx, held); err != nil || !strings.Contains(h, "server process") || !strings.Contains(h, "LOCK TABLE held") {
		t.Errorf("a session's lock: %q, %v", h, err)
	}
	if h, err := c.LockHolders(ctx, prep); err != nil || !strings.Contains(h, "prepared transaction 'migration_1'") {
		t.Errorf("a prepared transaction's lock: %q, %v", h, err)
	}
}
