package migrations

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-migrate/migrate/v4/database"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/database/sqlite3"
	"github.com/jackc/pgx/v5/stdlib"
	_ "github.com/mattn/go-sqlite3"

	"github.com/walmirror/walmirror/testenv"
)

// failOnce is a real driver whose first migration fails, as a walmirror
// killed while it migrates a new target would leave it.
type failOnce struct {
	database.Driver
	failed bool
}

func (f *failOnce) Run(m io.Reader) error {
	if !f.failed {
		f.failed = true
		return errors.New("killed")
	}
	return f.Driver.Run(m)
}

// TestInterruptedMigration: a migration that did not complete leaves the
// SQLite and PostgreSQL targets at a clean version, so the next start
// migrates them. Before, golang-migrate's dirty mark stayed and every
// later start failed with "Dirty database version 1. Fix and force
// version." (seen after kill -9 during a first start, PostgreSQL target).
func TestInterruptedMigration(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		db, err := sql.Open("sqlite3", filepath.Join(t.TempDir(), "m.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		drv := func() database.Driver {
			d, err := sqlite3.WithInstance(db, &sqlite3.Config{MigrationsTable: "_walmirror_migrations"})
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		testInterruptedMigration(t, SQLite, "sqlite3", drv)
	})
	t.Run("postgres", func(t *testing.T) {
		if testing.Short() {
			t.Skip("needs PostgreSQL")
		}
		ctx := context.Background()
		srv := testenv.StartT(t, testenv.Options{})
		if err := srv.Exec(ctx, "postgres", `CREATE SCHEMA _walmirror`); err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("pgx", srv.DSN("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		drv := func() database.Driver {
			d, err := migratepgx.WithInstance(db, &migratepgx.Config{MigrationsTable: `"_walmirror"."schema_migrations"`, MigrationsTableQuoted: true})
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		testInterruptedMigration(t, Postgres, "pgx5", drv)
	})
}

var _ = stdlib.GetDefaultDriver // registers "pgx"

func testInterruptedMigration(t *testing.T, d Dialect, name string, drv func() database.Driver) {
	if err := Up(d, name, &failOnce{Driver: drv()}); err == nil {
		t.Fatal("the first migration did not fail")
	}
	d2 := drv()
	if err := Up(d, name, d2); err != nil {
		t.Fatalf("migrating again: %v", err)
	}
	if v, dirty, err := d2.Version(); err != nil || v != 8 || dirty {
		t.Fatalf("version %d, dirty %v (%v); want 8, clean", v, dirty, err)
	}
	// A target a newer walmirror migrated further: said so, not golang-migrate's
	// "no migration found for version 99".
	if err := d2.SetVersion(99, false); err != nil {
		t.Fatal(err)
	}
	if err := Up(d, name, drv()); err == nil || !strings.Contains(err.Error(), "a newer walmirror wrote it") {
		t.Fatalf("migrating a target at version 99: %v", err)
	}
}
