// Package migrations holds the SQL that creates walmirror's own metadata
// tables in each target dialect, versioned with golang-migrate and embedded in
// the binary.
package migrations

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"

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
	m, err := migrate.NewWithInstance("iofs", src, driverName, drv)
	if err != nil {
		return fmt.Errorf("prepare %s migrations: %w", d, err)
	}
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate walmirror metadata: %w", err)
	}
	return nil
}
