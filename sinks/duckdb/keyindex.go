package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Key indexes. A table has no PRIMARY KEY constraint (appends into it stay
// fast), so every statement that finds rows by key (MERGE, UPDATE ... FROM,
// DELETE ... USING) scans the whole table: measured on go-duckdb, 50 keys
// against a 10M-row table took 11-24 ms per statement, 2-3 ms with an ART
// index, and a pgbench scale 50 copy followed live had a lag p50 of 261 ms
// against 60 ms at scale 1. Once a keyed table holds DefaultKeyIndexRows
// (Sink.KeyIndexRows) and a transaction looked rows up by key in it, the
// sink gives it a plain (not unique) index on its key columns, after that
// transaction's commit: DuckDB then joins through the index. The sink keeps
// keys unique itself, as before.
//
// What it costs: building it (about 0.15 s per million rows, once), memory
// (about 25 bytes a row, held outside the buffer pool's limit: a table whose
// index would take more than a quarter of memory_limit gets none), appends
// into the table (a 5M-row bulk insert took 1.6 s instead of 0.74 s), and a
// little more at each checkpoint. DuckDB refuses to drop, rename or retype a
// column, or rename the table, while an index depends on it: the sink
// copies the table without its index before such a change (shedKeyIndex)
// and builds the index again when lookups by key come back. A table
// walmirror adopted that has an index or a key constraint of its own gets
// none.

// DefaultKeyIndexRows is Sink.KeyIndexRows when it is zero. Below it a
// table's scan costs DuckDB little more than an index lookup.
const DefaultKeyIndexRows = 1_000_000

// keyIndexPrefix begins the name of walmirror's index on a table's key:
// keyIndexPrefix + the table's name, in the table's schema (DuckDB keeps
// index names apart from table names).
const keyIndexPrefix = "_walmirror_key_"

// keyIndexState is what the sink knows of one table's key index: indexed,
// it has walmirror's; none, it gets none (an index or key of its own, too
// big for the memory limit, or its creation failed in this process).
type keyIndexState uint8

const (
	keyIndexUnknown keyIndexState = iota
	keyIndexed
	keyIndexNone
)

// indexRows is the size from which a keyed table gets an index (0: never).
func (s *Sink) indexRows() int64 {
	switch {
	case s.KeyIndexRows < 0:
		return 0
	case s.KeyIndexRows == 0:
		return DefaultKeyIndexRows
	}
	return s.KeyIndexRows
}

// wantKeyIndex notes that the open transaction looked rows of ti up by key:
// a table big enough gets its index after the commit (indexKeys). A table
// in a bulk load in this transaction (written past bulkRows) does not count:
// its statements are few and large.
func (s *Sink) wantKeyIndex(ti *tableInfo) {
	least := s.indexRows()
	if least == 0 || len(ti.keyIdx) == 0 || ti.rows < least || s.written[ti.name] > bulkRows {
		return
	}
	if s.keyIndex[ti.name] == keyIndexUnknown {
		s.indexWanted[ti.name] = ti
	}
}

// indexKeys builds the indexes the committed transaction asked for
// (wantKeyIndex), each in a transaction of its own. Nothing depends on
// them: a failure is logged, and the table goes on without one.
func (s *Sink) indexKeys(ctx context.Context) {
	for name, ti := range s.indexWanted {
		delete(s.indexWanted, name)
		if s.keyIndex[name] != keyIndexUnknown {
			continue
		}
		state, err := s.indexKey(ctx, ti)
		if err != nil {
			if ctx.Err() != nil {
				return // stopping: decided again next time
			}
			state = keyIndexNone
			s.log.Warn("could not index the key of a DuckDB table: lookups by key scan it (correct, slower)", "table", name, "error", err)
		}
		s.keyIndex[name] = state
	}
}

// indexKey gives ti's table walmirror's index on its key unless it has one,
// or should have none.
func (s *Sink) indexKey(ctx context.Context, ti *tableInfo) (keyIndexState, error) {
	t := ti.t
	rows, err := s.conn.QueryContext(ctx, `SELECT index_name FROM duckdb_indexes() WHERE database_name = ? AND schema_name = ? AND table_name = ?
		UNION ALL SELECT constraint_type FROM duckdb_constraints() WHERE database_name = ? AND schema_name = ? AND table_name = ? AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')`,
		Catalog, t.Schema, t.Name, Catalog, t.Schema, t.Name)
	if err != nil {
		return 0, fmt.Errorf("list its indexes: %w", err)
	}
	ours, others := false, false
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return 0, err
		}
		if n == keyIndexPrefix+t.Name {
			ours = true
		} else {
			others = true
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, fmt.Errorf("list its indexes: %w", err)
	}
	switch {
	case ours:
		return keyIndexed, nil
	case others:
		return keyIndexNone, nil
	}
	limit, err := s.memoryLimit(ctx)
	if err != nil {
		return 0, err
	}
	if need := ti.rows * keyIndexRowBytes * int64(len(ti.keyIdx)); limit > 0 && need > limit/4 {
		s.log.Info("DuckDB table not indexed on its key: the index would take more than a quarter of DuckDB's memory limit, so lookups by key scan the table (raise --duckdb-memory-limit to have it)",
			"table", ti.name, "rows", ti.rows, "index_bytes", need, "memory_limit", limit)
		return keyIndexNone, nil
	}
	cols := make([]string, len(ti.keyIdx))
	for i, k := range ti.keyIdx {
		cols[i] = ti.cols[k]
	}
	if err := s.useThreads(ctx, math.MaxInt64); err != nil { // it reads the whole table
		return 0, err
	}
	began := time.Now()
	if _, err := s.conn.ExecContext(ctx, "CREATE INDEX "+quote(keyIndexPrefix+t.Name)+" ON "+ti.name+" ("+strings.Join(cols, ", ")+")"); err != nil {
		return 0, overLimit(err)
	}
	s.log.Info("indexed a DuckDB table's key: updates and deletes look rows up instead of scanning it", "table", ti.name, "rows", ti.rows, "took", time.Since(began).Round(time.Millisecond))
	return keyIndexed, nil
}

// keyIndexRowBytes is about what DuckDB's ART index takes per row and key
// column (250 MB of RSS for 10M integer keys, measured).
const keyIndexRowBytes = 32

// shedKeyIndex gives the table back without walmirror's index, in the open
// transaction, before a change DuckDB refuses while an index depends on
// the table (a column dropped, renamed or retyped, the table renamed) or
// one that changes its key; lookups by key build the index again later.
// DROP INDEX will not do inside a transaction: DuckDB keeps the index on
// the table until the commit (a key column still cannot be retyped), and
// an index read from the file, not yet used in this process, is bound to
// the table's old name by the next write after a rename ("Referenced
// table ... not found", seen in TestSchemaChanges). So the table is copied
// into a new one, which takes its place, as rebuild does: a table of 1M
// rows or more pays that copy once per such change.
func (s *Sink) shedKeyIndex(ctx context.Context, schemaName, table string) error {
	name := TableName(schemaName, table)
	defer func() {
		delete(s.keyIndex, name)
		delete(s.indexWanted, name)
	}()
	if has, err := s.hasKeyIndex(ctx, schemaName, table); err != nil || !has {
		return err
	}
	existing, err := s.columns(ctx, schemaName, table)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", name, err)
	}
	comment, err := s.comment(ctx, schemaName, table)
	if err != nil {
		return err
	}
	defs := make([]string, len(existing))
	for i, ec := range existing {
		defs[i] = quote(ec.name) + " " + ec.typ
	}
	if err := s.useThreads(ctx, math.MaxInt64); err != nil { // it copies the whole table
		return err
	}
	began := time.Now()
	stmts, err := s.swapStmts(ctx, schemaName, table, defs, []string{"*"})
	if err != nil {
		return err
	}
	if comment != "" {
		stmts = append(stmts, "COMMENT ON TABLE "+name+" IS "+literal(comment))
	}
	for _, q := range stmts {
		if _, err := s.conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("copy %s without walmirror's key index, which DuckDB does not let it change under: %w", name, err)
		}
	}
	s.forgetTable(name)
	s.dropCatalog()
	s.log.Info("copied a DuckDB table to leave its key index behind before a change DuckDB refuses under an index (the index comes back at the next update)",
		"table", name, "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// hasKeyIndex reports whether the table has walmirror's key index.
func (s *Sink) hasKeyIndex(ctx context.Context, schemaName, table string) (bool, error) {
	var n int
	if err := s.conn.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_indexes() WHERE database_name = ? AND schema_name = ? AND table_name = ? AND index_name = ?`,
		Catalog, schemaName, table, keyIndexPrefix+table).Scan(&n); err != nil {
		return false, fmt.Errorf("look up walmirror's key index on %s: %w", TableName(schemaName, table), err)
	}
	return n > 0, nil
}

// memoryLimit is DuckDB's memory_limit in bytes (0: none, or in a form
// parseSize does not read).
func (s *Sink) memoryLimit(ctx context.Context) (int64, error) {
	var v string
	if err := s.conn.QueryRowContext(ctx, "SELECT current_setting('memory_limit')").Scan(&v); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return 0, nil
		}
		return 0, fmt.Errorf("read memory_limit: %w", err)
	}
	n, ok := parseSize(v)
	if !ok {
		s.log.Debug("memory_limit in an unknown form: key indexes are not bounded by it", "memory_limit", v)
	}
	return n, nil
}

// parseSize reads DuckDB's rendering of a size ("244.1 MiB", "18.8 GiB",
// "0 bytes").
func parseSize(v string) (int64, bool) {
	num, unit, _ := strings.Cut(strings.TrimSpace(v), " ")
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, false
	}
	mult := map[string]float64{"": 1, "bytes": 1, "B": 1,
		"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "PiB": 1 << 50,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "PB": 1e15}[unit]
	if mult == 0 {
		return 0, false
	}
	return int64(f * mult), true
}
