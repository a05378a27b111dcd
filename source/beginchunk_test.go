package source

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/schema"
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
	r.ch.Abort(ctx)

	// A table the look-up does not find comes with the look-up's snapshot,
	// by which the engine tells a table not visible yet from one dropped.
	if _, err := ddl.Exec(ctx, `DROP TABLE staged2`); err != nil {
		t.Fatal(err)
	}
	var xmax uint64
	if err := ddl.QueryRow(ctx, `SELECT pg_snapshot_xmax(pg_current_snapshot())::text::int8`).Scan(&xmax); err != nil {
		t.Fatal(err)
	}
	gone, err := c.BeginChunk(ctx, relid)
	if err != nil {
		t.Fatal(err)
	}
	if gone.Published || gone.Table != nil || gone.Snapshot.Xmax < xmax {
		t.Fatalf("chunk of a dropped table: published %v, table %+v, snapshot %+v; want unpublished with a snapshot at or past xmax %d", gone.Published, gone.Table, gone.Snapshot, xmax)
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
	// Any table (a listing of the publication waits): each named.
	if h, err := c.LockHolders(ctx, 0); err != nil || !strings.Contains(h, "held: server process") || !strings.Contains(h, "prep: prepared transaction 'migration_1'") {
		t.Errorf("locks on any table: %q, %v", h, err)
	}

	// DDL queued behind a long read (helper-102: another tool's copy, the
	// partition DDL waiting behind it, the chunk behind both): both named.
	if err := srv.Exec(ctx, "postgres", `CREATE TABLE queued (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	reader, ddl := connect(), connect()
	if _, err := reader.Exec(ctx, `BEGIN; SELECT count(*) FROM queued`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ddl.Exec(ctx, `ALTER TABLE queued ADD COLUMN v text`)
		done <- err
	}()
	var queued uint32
	if err := conn.QueryRow(ctx, `SELECT 'queued'::regclass::oid`).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	var h string
	for range 100 {
		var err error
		if h, err = c.LockHolders(ctx, queued); err != nil {
			t.Fatal(err)
		}
		if h != "" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(h, "ALTER TABLE queued") || !strings.Contains(h, "waiting for it behind") || !strings.Contains(h, "SELECT count(*) FROM queued") {
		t.Errorf("queued DDL: %q", h)
	}
	if _, err := reader.Exec(ctx, `COMMIT`); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRowsWithKeysOddValues: rows copied again by key (a partition added,
// rows moved into a row filter, resync of chosen rows) are looked up by
// their keys' text forms cast to the key columns' types, of a partitioned
// table here: every character an array literal or a string literal treats
// specially, and time zones printed as the session prints them.
func TestRowsWithKeysOddValues(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	ctx := context.Background()
	srv := testenv.StartT(t, testenv.Options{})
	if err := srv.Exec(ctx, "postgres", `CREATE TABLE ev (k text, at timestamptz, v int, PRIMARY KEY (k, at)) PARTITION BY RANGE (at);
		CREATE TABLE ev_a PARTITION OF ev FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
		CREATE TABLE ev_b PARTITION OF ev FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
		INSERT INTO ev VALUES ('a"b', '2026-01-05 10:00+00', 1), ('back\slash', '2026-02-05 10:00+00', 2), ('{br,ace}', '2026-01-06 00:00+00', 3),
			('it''s', '2026-02-06 00:00+00', 4), ('NULL', '2026-01-07 00:00+00', 5), (' sp ', '2026-02-07 00:00+00', 6), ('ünï', '2026-01-08 00:00+00', 7),
			('plain', '2026-01-09 00:00+00', 8);
		CREATE PUBLICATION p FOR TABLE ev WITH (publish_via_partition_root = true)`); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var relid uint32
	if err := conn.QueryRow(ctx, `SELECT 'ev'::regclass::oid`).Scan(&relid); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SET TimeZone = 'UTC'`); err != nil {
		t.Fatal(err)
	}
	c := &Copier{conn: conn, publication: "p", version: srv.VersionNum()}
	ch, err := c.BeginChunk(ctx, relid)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Abort(context.Background())
	keys := [][]string{{`a"b`, "2026-01-05 10:00:00+00"}, {`back\slash`, "2026-02-05 10:00:00+00"}, {"{br,ace}", "2026-01-06 00:00:00+00"},
		{"it's", "2026-02-06 00:00:00+00"}, {"NULL", "2026-01-07 00:00:00+00"}, {" sp ", "2026-02-07 00:00:00+00"}, {"ünï", "2026-01-08 00:00:00+00"},
		{"absent", "2026-01-09 00:00:00+00"}}
	var got []string
	n, err := ch.RowsWithKeys(ctx, ch.Table, keys, func(r schema.Tuple) error {
		got = append(got, string(r[0].Data)+"|"+string(r[2].Data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []string{" sp |6", `a"b|1`, `back\slash|2`, "it's|4", "NULL|5", "{br,ace}|3", "ünï|7"}
	slices.Sort(want)
	if n != 7 || !slices.Equal(got, want) {
		t.Errorf("rows by key: %d %q, want %q", n, got, want)
	}
	missing, err := ch.MissingKeys(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 1 || missing[0][0] != "absent" {
		t.Errorf("missing keys: %q, want only absent", missing)
	}
}
