// Package migrations holds the SQL that creates walmirror's own metadata
// tables in each target dialect, versioned with golang-migrate and embedded in
// the binary.
package migrations

import (
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	"github.com/golang-migrate/migrate/v4/source/iofs"
)

//go:embed sqlite/*.sql duckdb/*.sql postgres/*.sql
var files embed.FS

// Dialect names a directory of migrations.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	DuckDB   Dialect = "duckdb"
	Postgres Dialect = "postgres"
)

// Up brings the metadata tables of a target to the latest version.
func Up(d Dialect, driverName string, drv database.Driver) error {
	sub, err := fs.Sub(files, string(d))
	if err != nil {
		return err
	}
	src, err := iofs.New(sub, ".")
	if err != nil {
		return fmt.Errorf("read %s migrations: %w", d, err)
	}
	if table := versionTable[d]; table != "" {
		drv = &atomicVersions{Driver: drv, table: table}
	}
	m, err := migrate.NewWithInstance("iofs", src, driverName, drv)
	if err != nil {
		return fmt.Errorf("prepare %s migrations: %w", d, err)
	}
	if v, _, err := drv.Version(); err == nil && v > 0 {
		r, _, err := src.ReadUp(uint(v))
		if err == nil {
			r.Close()
		} else if errors.Is(err, fs.ErrNotExist) {
			// golang-migrate would say "no migration found for version N".
			return fmt.Errorf("the target's walmirror metadata is at version %d, which this walmirror does not know: a newer walmirror wrote it; run that version (or a later one), or make the copy afresh in a new target", v)
		}
	}
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate walmirror metadata: %w", err)
	}
	return nil
}

// versionTable is the table golang-migrate's driver of each dialect records
// the version in, as the sinks configure it (DuckDB's migrator records it
// with each migration itself).
var versionTable = map[Dialect]string{
	SQLite:   "_walmirror_migrations",
	Postgres: `"_walmirror"."schema_migrations"`,
}

// atomicVersions makes a migration and the version it reaches one
// transaction. golang-migrate marks the version dirty, runs the migration
// (one transaction in the SQLite and pgx drivers), then marks it clean: a
// walmirror killed in between left a target every later start refused
// ("Dirty database version 4. Fix and force version."), though the
// migration had committed whole or not at all. The dirty mark is not
// written; Run appends the clean version to the migration instead.
type atomicVersions struct {
	database.Driver
	table   string
	pending *int // the version the next Run migrates to
}

func (a *atomicVersions) SetVersion(version int, dirty bool) error {
	a.pending = nil
	if dirty && version >= 0 {
		a.pending = &version
		return nil
	}
	return a.Driver.SetVersion(version, dirty)
}

func (a *atomicVersions) Run(migration io.Reader) error {
	if a.pending == nil {
		return a.Driver.Run(migration)
	}
	body, err := io.ReadAll(migration)
	if err != nil {
		return err
	}
	v := strconv.Itoa(*a.pending)
	q := string(body) + "\n;\nDELETE FROM " + a.table + ";\nINSERT INTO " + a.table + " (version, dirty) VALUES (" + v + ", false);\n"
	return a.Driver.Run(strings.NewReader(q))
}
