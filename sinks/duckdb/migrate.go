package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/golang-migrate/migrate/v4/database"
)

// migrationsTable records golang-migrate's version (one row).
var migrationsTable = quote(Catalog) + ".main._walmirror_migrations"

// migrator is a golang-migrate database.Driver for the sink's DuckDB
// connection (golang-migrate has no DuckDB driver). Each migration is one
// DuckDB transaction that also records its version, clean: golang-migrate
// marks the version dirty before it runs a migration (SetVersion(v, true))
// and clean after, and a kill -9 in between left a file every later start
// refused ("Dirty database version 1. Fix and force version."), though the
// migration had either committed whole or not at all. The dirty mark is
// not written (pending): the file is at the version before or after.
// Locking is in-process only: DuckDB itself lets one process write the file.
type migrator struct {
	ctx    context.Context
	conn   *sql.Conn
	locked atomic.Bool
	// pending is the version the next Run migrates to (SetVersion(v,
	// true)), recorded by Run in the migration's own transaction.
	pending *int
}

var _ database.Driver = (*migrator)(nil)

func newMigrator(ctx context.Context, conn *sql.Conn) (*migrator, error) {
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+migrationsTable+` (version BIGINT NOT NULL, dirty BOOLEAN NOT NULL)`); err != nil {
		return nil, fmt.Errorf("create _walmirror_migrations: %w", err)
	}
	return &migrator{ctx: ctx, conn: conn}, nil
}

// Open is not supported: the driver is made from the sink's connection.
func (m *migrator) Open(string) (database.Driver, error) {
	return nil, errors.New("duckdb migrations: use the sink's connection (WithInstance), not a URL")
}

// Close leaves the connection to the sink.
func (m *migrator) Close() error { return nil }

func (m *migrator) Lock() error {
	if !m.locked.CompareAndSwap(false, true) {
		return database.ErrLocked
	}
	return nil
}

func (m *migrator) Unlock() error {
	if !m.locked.CompareAndSwap(true, false) {
		return database.ErrNotLocked
	}
	return nil
}

// inTx runs fn in a transaction.
func (m *migrator) inTx(fn func() error) (err error) {
	if _, err := m.conn.ExecContext(m.ctx, "BEGIN TRANSACTION"); err != nil {
		return err
	}
	if err := fn(); err != nil {
		_, rbErr := m.conn.ExecContext(context.WithoutCancel(m.ctx), "ROLLBACK")
		return errors.Join(err, rbErr)
	}
	_, err = m.conn.ExecContext(m.ctx, "COMMIT")
	return err
}

// Run applies one migration file (any number of statements).
func (m *migrator) Run(migration io.Reader) error {
	q, err := io.ReadAll(migration)
	if err != nil {
		return err
	}
	if err := m.inTx(func() error {
		if _, err := m.conn.ExecContext(m.ctx, string(q)); err != nil {
			return err
		}
		if m.pending != nil {
			return m.writeVersion(*m.pending, false)
		}
		return nil
	}); err != nil {
		return &database.Error{OrigErr: err, Query: q}
	}
	return nil
}

// SetVersion replaces the recorded version; a dirty one (golang-migrate's
// mark before it runs a migration) is left to Run (pending).
func (m *migrator) SetVersion(version int, dirty bool) error {
	m.pending = nil
	if dirty && version >= 0 {
		m.pending = &version
		return nil
	}
	if err := m.inTx(func() error { return m.writeVersion(version, dirty) }); err != nil {
		return &database.Error{OrigErr: err, Err: "set migration version"}
	}
	return nil
}

// writeVersion replaces the recorded version in the open transaction.
func (m *migrator) writeVersion(version int, dirty bool) error {
	if _, err := m.conn.ExecContext(m.ctx, "DELETE FROM "+migrationsTable); err != nil {
		return err
	}
	// As golang-migrate's own drivers do: a dirty NilVersion is recorded too.
	if version >= 0 || (version == database.NilVersion && dirty) {
		_, err := m.conn.ExecContext(m.ctx, "INSERT INTO "+migrationsTable+" (version, dirty) VALUES (?, ?)", int64(version), dirty)
		return err
	}
	return nil
}

// Version returns the recorded version, or NilVersion when none is.
func (m *migrator) Version() (int, bool, error) {
	var v int64
	var dirty bool
	err := m.conn.QueryRowContext(m.ctx, "SELECT version, dirty FROM "+migrationsTable+" LIMIT 1").Scan(&v, &dirty)
	if errors.Is(err, sql.ErrNoRows) {
		return database.NilVersion, false, nil
	}
	if err != nil {
		return 0, false, &database.Error{OrigErr: err, Err: "read migration version"}
	}
	return int(v), dirty, nil
}

// Drop deletes every table in the copy's catalog (the replicated ones and
// walmirror's own).
func (m *migrator) Drop() error {
	rows, err := m.conn.QueryContext(m.ctx, `SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? AND NOT temporary`, Catalog)
	if err != nil {
		return err
	}
	var names []string
	for rows.Next() {
		var sch, tbl string
		if err := rows.Scan(&sch, &tbl); err != nil {
			rows.Close()
			return err
		}
		names = append(names, TableName(sch, tbl))
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	return m.inTx(func() error {
		for _, n := range names {
			if _, err := m.conn.ExecContext(m.ctx, "DROP TABLE "+n); err != nil {
				return err
			}
		}
		return nil
	})
}
