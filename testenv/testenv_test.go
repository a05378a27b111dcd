package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func showSetting(t *testing.T, ctx context.Context, dsn, name string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, "SHOW "+name).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func readItems(t *testing.T, ctx context.Context, dsn string) []string {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT name FROM items ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestServer(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := StartT(t, Options{Logf: t.Logf})

	if s.Host() != "127.0.0.1" || s.Port() == 0 || s.Password() == "" {
		t.Fatalf("host %q port %d password %q", s.Host(), s.Port(), s.Password())
	}
	if _, err := os.Stat(s.DataDir() + "/PG_VERSION"); err != nil {
		t.Fatal(err)
	}

	db, err := s.CreateDatabase(ctx, "Test Server!")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^test_server__\d+$`).MatchString(db) {
		t.Fatalf("database name %q", db)
	}
	db2, err := s.CreateDatabase(ctx, "Test Server!")
	if err != nil {
		t.Fatal(err)
	}
	if db2 == db {
		t.Fatalf("CreateDatabase returned %q twice", db)
	}

	err = s.Exec(ctx, db, `
		CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
		INSERT INTO items VALUES (1, 'one'), (2, 'two');`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"one", "two"}
	if got := readItems(t, ctx, s.DSN(db)); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("items = %v, want %v", got, want)
	}
	if got := showSetting(t, ctx, s.DSN(db), "wal_level"); got != "logical" {
		t.Fatalf("wal_level = %q", got)
	}
	if got := showSetting(t, ctx, s.DSN(db), "password_encryption"); got != "scram-sha-256" {
		t.Fatalf("password_encryption = %q", got)
	}
	if got := showSetting(t, ctx, s.DSN(db), "synchronous_commit"); got != "on" {
		t.Fatalf("synchronous_commit = %q: an immediate restart could lose commits", got)
	}
	if err := s.Exec(ctx, db, "SELECT * FROM missing_table"); err == nil {
		t.Fatal("Exec of a bad statement succeeded")
	}

	t.Run("wrong password", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, s.DSNFor("postgres", "wrong", db))
		if err == nil {
			conn.Close(ctx)
			t.Fatal("connected with a wrong password")
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
			t.Fatalf("want invalid_password (28P01), got %v", err)
		}
	})

	t.Run("other role and replication", func(t *testing.T) {
		if err := s.Exec(ctx, "postgres", `CREATE ROLE app LOGIN REPLICATION PASSWORD 's3cr:t@/?'`); err != nil {
			t.Fatal(err)
		}
		if err := s.Exec(ctx, db, "GRANT SELECT ON items TO app"); err != nil {
			t.Fatal(err)
		}
		if got := readItems(t, ctx, s.DSNFor("app", "s3cr:t@/?", db)); len(got) != 2 {
			t.Fatalf("items as app = %v", got)
		}
		// Physical replication connections match the pg_hba "replication" line.
		conn, err := pgconn.Connect(ctx, s.DSNFor("app", "s3cr:t@/?", "")+"&replication=true")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll(); err != nil {
			t.Fatal(err)
		}
	})

	// Every row a restart must keep is committed (autocommit INSERTs, the
	// last one just before the restart: nothing else writes WAL after it)
	// and every one is checked afterwards. An immediate shutdown discards
	// the server's shared memory, so a commit whose WAL was not written by
	// then (synchronous_commit=off) is lost, and these tests fail.
	committed := []string{"one", "two"}
	commitRows := func(t *testing.T, n int) {
		t.Helper()
		conn, err := pgx.Connect(ctx, s.DSN(db))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		for range n {
			name := fmt.Sprintf("row%d", len(committed)+1)
			if _, err := conn.Exec(ctx, "INSERT INTO items VALUES ($1, $2)", len(committed)+1, name); err != nil {
				t.Fatal(err)
			}
			committed = append(committed, name)
		}
	}
	checkRows := func(t *testing.T, when string) {
		t.Helper()
		got := readItems(t, ctx, s.DSN(db))
		if strings.Join(got, ",") != strings.Join(committed, ",") {
			t.Fatalf("items %s: %d rows, want the %d committed ones\ngot  %v\nwant %v", when, len(got), len(committed), got, committed)
		}
	}

	t.Run("restart immediate", func(t *testing.T) {
		port := s.Port()
		commitRows(t, 50)
		if err := s.Restart(ctx, true); err != nil {
			t.Fatal(err)
		}
		if s.Port() != port {
			t.Fatalf("port changed from %d to %d", port, s.Port())
		}
		checkRows(t, "after immediate restart")
		// Committed right after crash recovery, before anything else.
		commitRows(t, 1)
		if err := s.Restart(ctx, true); err != nil {
			t.Fatal(err)
		}
		checkRows(t, "after a second immediate restart")
	})

	t.Run("restart fast", func(t *testing.T) {
		commitRows(t, 10)
		if err := s.Restart(ctx, false); err != nil {
			t.Fatal(err)
		}
		checkRows(t, "after fast restart")
	})

	t.Run("version", func(t *testing.T) {
		if v := showSetting(t, ctx, s.DSN(db), "server_version_num"); v != fmt.Sprint(s.VersionNum()) || s.Major() != s.VersionNum()/10000 || s.Major() < 14 {
			t.Fatalf("server_version_num %s, VersionNum() %d, Major() %d", v, s.VersionNum(), s.Major())
		}
		r := &skipRecorder{TB: t}
		SkipBelow(r, s, s.Major(), "anything")
		if r.skipped != "" {
			t.Fatalf("skipped on the server's own major: %s", r.skipped)
		}
		SkipBelow(r, s, s.Major()+1, "a future feature")
		if want := fmt.Sprintf("a future feature needs PostgreSQL %d or later; this server is %d", s.Major()+1, s.Major()); !strings.HasPrefix(r.skipped, want) {
			t.Fatalf("skip message %q, want %q...", r.skipped, want)
		}
	})

	t.Run("stop and close", func(t *testing.T) {
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := s.Stop(); err != nil {
			t.Fatal("second Stop:", err)
		}
		if conn, err := pgx.Connect(ctx, s.DSN(db)); err == nil {
			conn.Close(ctx)
			t.Fatal("connected to a stopped server")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(s.DataDir()); !os.IsNotExist(err) {
			t.Fatalf("data dir after Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal("second Close:", err)
		}
		if err := s.Restart(ctx, false); err == nil {
			t.Fatal("Restart after Close succeeded")
		}
	})
}

func TestOptions(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	s := StartT(t, Options{
		WALLevel: "replica",
		Settings: map[string]string{"max_connections": "42"},
	})
	if got := showSetting(t, ctx, s.DSN("postgres"), "wal_level"); got != "replica" {
		t.Fatalf("wal_level = %q, want replica", got)
	}
	if got := showSetting(t, ctx, s.DSN("postgres"), "max_connections"); got != "42" {
		t.Fatalf("max_connections = %q, want 42", got)
	}
}

func TestStartFailure(t *testing.T) {
	t.Parallel()
	_, err := Start(testContext(t), Options{Settings: map[string]string{"shared_buffers": "lots"}})
	if err == nil {
		t.Fatal("Start with an invalid setting succeeded")
	}
	if !strings.Contains(err.Error(), "shared_buffers") {
		t.Fatalf("error does not quote the server log: %v", err)
	}
}

func TestBinDir(t *testing.T) {
	t.Setenv("WALMIRROR_PG_BIN", "/opt/pg/bin")
	if got := BinDir(); got != "/opt/pg/bin" {
		t.Fatalf("BinDir() = %q", got)
	}
	t.Setenv("WALMIRROR_PG_BIN", "")
	if got := BinDir(); got != "/usr/lib/postgresql/15/bin" {
		t.Fatalf("BinDir() = %q", got)
	}
}

func TestTool(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("WALMIRROR_PG_BIN", dir)
	// A bin dir without the program: another installation's, or PATH's.
	if got := Tool("pgbench"); got == filepath.Join(dir, "pgbench") {
		if _, err := os.Stat(got); err == nil {
			t.Fatalf("Tool returned %s, which does not exist", got)
		}
		t.Skip("no pgbench outside the bin dir on this machine")
	}
	own := filepath.Join(dir, "pgbench")
	if err := os.WriteFile(own, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := Tool("pgbench"); got != own {
		t.Fatalf("Tool(pgbench) = %q, want the bin dir's %q", got, own)
	}
	if got := Tool("no-such-tool"); got != filepath.Join(dir, "no-such-tool") {
		t.Fatalf("Tool(no-such-tool) = %q", got)
	}
}

// skipRecorder is a testing.TB whose Skipf only records its message.
type skipRecorder struct {
	testing.TB
	skipped string
}

func (r *skipRecorder) Helper() {}

func (r *skipRecorder) Skipf(format string, args ...any) { r.skipped = fmt.Sprintf(format, args...) }
