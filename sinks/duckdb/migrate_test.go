package duckdb

import (
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-migrate/migrate/v4/database"

	"github.com/walmirror/walmirror/migrations"
)

// TestMigrator drives the golang-migrate driver directly: Up twice is a
// no-op, versions and dirty flags are recorded, locking and Drop work.
func TestMigrator(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "migrate.duckdb"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m, err := newMigrator(ctx, s.conn)
	if err != nil {
		t.Fatal(err)
	}
	version := func() (int, bool) {
		t.Helper()
		v, dirty, err := m.Version()
		if err != nil {
			t.Fatal(err)
		}
		return v, dirty
	}
	if v, dirty := version(); v != 7 || dirty {
		t.Fatalf("after Open: version %d, dirty %v; want 7, clean", v, dirty)
	}
	for range 2 {
		if err := migrations.Up(migrations.DuckDB, "duckdb", m); err != nil {
			t.Fatal(err)
		}
		if v, dirty := version(); v != 7 || dirty {
			t.Fatalf("after Up: version %d, dirty %v; want 7, clean", v, dirty)
		}
	}
	var rows int
	if err := s.conn.QueryRowContext(ctx, "SELECT count(*) FROM "+migrationsTable).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("_walmirror_migrations has %d rows (%v), want 1", rows, err)
	}

	// The dirty mark before a migration is not written: Run records the
	// version, clean, with the migration.
	if err := m.SetVersion(2, true); err != nil {
		t.Fatal(err)
	}
	if v, dirty := version(); v != 7 || dirty {
		t.Errorf("after SetVersion(2, dirty): %d, %v; want 7, clean", v, dirty)
	}
	if err := m.Run(strings.NewReader("SELECT 1")); err != nil {
		t.Fatal(err)
	}
	if v, dirty := version(); v != 2 || dirty {
		t.Errorf("after SetVersion(2, dirty) and Run: %d, %v; want 2, clean", v, dirty)
	}
	if err := m.SetVersion(database.NilVersion, false); err != nil {
		t.Fatal(err)
	}
	if v, _ := version(); v != database.NilVersion {
		t.Errorf("after SetVersion(NilVersion): %d", v)
	}

	if err := m.Lock(); err != nil {
		t.Fatal(err)
	}
	if err := m.Lock(); !errors.Is(err, database.ErrLocked) {
		t.Errorf("second Lock = %v, want ErrLocked", err)
	}
	if err := m.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := m.Unlock(); !errors.Is(err, database.ErrNotLocked) {
		t.Errorf("second Unlock = %v, want ErrNotLocked", err)
	}

	// A failing migration leaves nothing behind and says which statement.
	err = m.Run(strings.NewReader("CREATE TABLE half (a INT); CREATE TABLE broken (;"))
	var dbErr *database.Error
	if !errors.As(err, &dbErr) {
		t.Fatalf("Run of a bad migration = %v, want a database.Error", err)
	}
	var n int
	if err := s.conn.QueryRowContext(ctx, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'half'").Scan(&n); err != nil || n != 0 {
		t.Errorf("a failed migration left table half (%d, %v)", n, err)
	}

	if err := m.Drop(); err != nil {
		t.Fatal(err)
	}
	if err := s.conn.QueryRowContext(ctx, "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND NOT temporary", Catalog).Scan(&n); err != nil || n != 0 {
		t.Errorf("after Drop, %d tables (%v)", n, err)
	}
}

// TestMigrationKilledMidway: a walmirror killed (kill -9) while it migrates
// a new DuckDB file, after golang-migrate marked the version dirty and
// before the migration committed, leaves a file the next start opens.
// Before, every later start failed with "migrate walmirror metadata: Dirty
// database version 1. Fix and force version." (seen under kill -9 chaos at
// a first start, PG14 source).
func TestMigrationKilledMidway(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "killed.duckdb")
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "ATTACH "+literal(path)+" AS "+quote(Catalog)+" (TYPE DUCKDB)"); err != nil {
		t.Fatal(err)
	}
	// What golang-migrate does first, then the process dies.
	m, err := newMigrator(ctx, conn)
	if err == nil {
		err = m.SetVersion(1, true)
	}
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	db.Close()
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("opening the file again: %v", err)
	}
	s.Close()
}
