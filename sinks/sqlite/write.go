package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mattn/go-sqlite3"

	"github.com/walmirror/walmirror/schema"
)

// maxVars stays under SQLite's limit on bound parameters per statement.
const (
	maxVars        = 32000
	maxRowsPerStmt = 100
	fusedBytes     = 1 << 20 // see insert
)

type stmtOp uint8

const (
	opInsert  stmtOp = iota + 1
	opReplace        // insert, replacing the row with the same key
	opDeleteKeys
	opUpdateByKey // mask: columns set
	opDeleteOne   // mask: columns matched (keyless)
	opUpdateOne   // mask: columns set | columns matched
)

type stmtKey struct {
	t    *schema.Table
	op   stmtOp
	n    int    // rows in a multi-row statement
	mask string // which columns take part, for per-row statements
}

func (s *Sink) stmt(ctx context.Context, k stmtKey, build func() string) (*sql.Stmt, error) {
	if st, ok := s.stmts[k]; ok {
		return st, nil
	}
	q := build()
	st, err := s.conn.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", q, err)
	}
	s.stmts[k] = st
	return st, nil
}

// Write applies a batch: deletes, inserts, updates and patches set-wise, then
// the ordered row changes.
func (s *Sink) Write(ctx context.Context, b *schema.Batch) error {
	err := s.write(ctx, b)
	var se sqlite3.Error
	if errors.As(err, &se) && (se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey || se.ExtendedCode == sqlite3.ErrConstraintUnique) {
		// The table's only unique index is its key's.
		err = schema.Diverged(b.Table, fmt.Errorf("%w: a row the source inserted is in the copy already (written by someone else?)", err))
	}
	return err
}

// DiskFull says whether err is SQLite's SQLITE_FULL ("database or disk is
// full"): apply.Run marks it with apply.ErrTargetFull.
func (s *Sink) DiskFull(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.Code == sqlite3.ErrFull
}

func (s *Sink) write(ctx context.Context, b *schema.Batch) error {
	ti := s.info(b.Table)
	if err := s.deleteKeys(ctx, ti, b.Deletes); err != nil {
		return err
	}
	if err := s.insert(ctx, ti, b.Inserts, false); err != nil {
		return err
	}
	// Updates replace rows the target holds; INSERT ... ON CONFLICT DO
	// UPDATE does that in one multi-row statement.
	if err := s.insert(ctx, ti, b.Updates, true); err != nil {
		return err
	}
	for _, row := range b.Patches {
		if err := s.updateByKey(ctx, ti, row, row); err != nil {
			return err
		}
	}
	return schema.EachRun(b.Rows,
		func(tuples []schema.Tuple) error { return s.insert(ctx, ti, tuples, false) },
		func(cs []schema.RowChange) error { return s.changeSet(ctx, ti, cs) })
}

func (s *Sink) bind(ti *tableInfo, i int, d schema.Datum) error {
	v, err := value(ti.kinds[i], d)
	if err != nil {
		return fmt.Errorf("column %q: %w", ti.t.Columns[i].Name, err)
	}
	s.args = append(s.args, v)
	return nil
}

// insert writes full rows with multi-row INSERT statements; replace
// replaces the row with the same key. They run on the driver's connection
// itself, without database/sql's checks of each argument, and through the
// driver's Query, which binds all of a statement's arguments and steps it
// in one call into SQLite instead of one per argument (the driver runs a
// statement given to Query at once: its rows, none here, are then read).
// Query copies the values into a buffer the statement keeps for the next
// time, as large as the largest statement so far; statements with more than
// fusedBytes of values bind each value apart instead (SQLite's copy goes
// with the statement's run).
func (s *Sink) insert(ctx context.Context, ti *tableInfo, rows []schema.Tuple, replace bool) error {
	if len(rows) == 0 {
		return nil
	}
	replace = replace && len(ti.keyIdx) > 0
	op := opInsert
	if replace {
		op = opReplace
	}
	per := max(1, min(maxRowsPerStmt, maxVars/max(1, len(ti.cols))))
	return s.conn.Raw(func(dc any) error {
		conn, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("internal error: driver connection is %T", dc)
		}
		for len(rows) > 0 {
			n := min(per, len(rows))
			k := stmtKey{t: ti.t, op: op, n: n}
			st, ok := s.inserts[k]
			if !ok {
				q := insertSQL(ti, n, replace)
				var err error
				if st, err = conn.PrepareContext(ctx, q); err != nil {
					return fmt.Errorf("prepare %q: %w", q, err)
				}
				s.inserts[k] = st
			}
			s.nargs = s.nargs[:0]
			size := 0
			for _, row := range rows[:n] {
				if len(row) != len(ti.cols) {
					return fmt.Errorf("insert into %s: row has %d values for %d columns", ti.name, len(row), len(ti.cols))
				}
				for i, d := range row {
					size += len(d.Data)
					v, err := value(ti.kinds[i], d)
					if err != nil {
						return fmt.Errorf("column %q: %w", ti.t.Columns[i].Name, err)
					}
					s.nargs = append(s.nargs, driver.NamedValue{Ordinal: len(s.nargs) + 1, Value: v})
				}
			}
			var err error
			if size <= fusedBytes {
				q, ok := st.(driver.StmtQueryContext)
				if !ok {
					return fmt.Errorf("internal error: driver statement is %T", st)
				}
				var r driver.Rows
				if r, err = q.QueryContext(ctx, s.nargs); err == nil {
					err = r.Close()
				}
			} else {
				x, ok := st.(driver.StmtExecContext)
				if !ok {
					return fmt.Errorf("internal error: driver statement is %T", st)
				}
				_, err = x.ExecContext(ctx, s.nargs)
			}
			clear(s.nargs) // no value outlives the statement
			if err != nil {
				return fmt.Errorf("insert into %s: %w", ti.name, err)
			}
			rows = rows[n:]
		}
		return nil
	})
}

func insertSQL(ti *tableInfo, n int, replace bool) string {
	var sb strings.Builder
	sb.WriteString("INSERT INTO " + ti.name + " (" + strings.Join(ti.cols, ", ") + ") VALUES ")
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(ti.cols)), ", ") + ")"
	for i := range n {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(one)
	}
	if replace {
		keys := make([]string, len(ti.keyIdx))
		isKey := make(map[int]bool)
		for i, k := range ti.keyIdx {
			keys[i] = ti.cols[k]
			isKey[k] = true
		}
		var sets []string
		for i, c := range ti.cols {
			if !isKey[i] {
				sets = append(sets, c+" = excluded."+c)
			}
		}
		if len(sets) == 0 {
			sb.WriteString(" ON CONFLICT (" + strings.Join(keys, ", ") + ") DO NOTHING")
		} else {
			sb.WriteString(" ON CONFLICT (" + strings.Join(keys, ", ") + ") DO UPDATE SET " + strings.Join(sets, ", "))
		}
	}
	return sb.String()
}

// deleteKeys removes rows by key: DELETE ... WHERE (k1, k2) IN (VALUES ...).
func (s *Sink) deleteKeys(ctx context.Context, ti *tableInfo, keys []schema.Tuple) error {
	per := max(1, min(maxRowsPerStmt*5, maxVars/max(1, len(ti.keyIdx))))
	for len(keys) > 0 {
		n := min(per, len(keys))
		st, err := s.stmt(ctx, stmtKey{t: ti.t, op: opDeleteKeys, n: n}, func() string {
			cols := make([]string, len(ti.keyIdx))
			for i, k := range ti.keyIdx {
				cols[i] = ti.cols[k]
			}
			one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
			return "DELETE FROM " + ti.name + " WHERE (" + strings.Join(cols, ", ") + ") IN (VALUES " +
				strings.TrimSuffix(strings.Repeat(one+", ", n), ", ") + ")"
		})
		if err != nil {
			return err
		}
		s.args = s.args[:0]
		for _, row := range keys[:n] {
			for _, k := range ti.keyIdx {
				if err := s.bind(ti, k, row[k]); err != nil {
					return err
				}
			}
		}
		if _, err := st.ExecContext(ctx, s.args...); err != nil {
			return fmt.Errorf("delete from %s: %w", ti.name, err)
		}
		keys = keys[n:]
	}
	return nil
}

// sentMask marks the columns a tuple carries ('1') and those it left unsent.
func sentMask(row schema.Tuple) string {
	m := make([]byte, len(row))
	for i, d := range row {
		m[i] = '0'
		if d.State != schema.Unchanged {
			m[i] = '1'
		}
	}
	return string(m)
}

// updateByKey sets the columns newRow sent on the row whose key oldKey holds.
func (s *Sink) updateByKey(ctx context.Context, ti *tableInfo, oldKey, newRow schema.Tuple) error {
	mask := sentMask(newRow)
	st, err := s.stmt(ctx, stmtKey{t: ti.t, op: opUpdateByKey, mask: mask}, func() string {
		var sets, where []string
		for i, c := range ti.cols {
			if mask[i] == '1' {
				sets = append(sets, c+" = ?")
			}
		}
		for _, k := range ti.keyIdx {
			where = append(where, ti.cols[k]+" = ?")
		}
		return "UPDATE " + ti.name + " SET " + strings.Join(sets, ", ") + " WHERE " + strings.Join(where, " AND ")
	})
	if err != nil {
		return err
	}
	s.args = s.args[:0]
	for i, d := range newRow {
		if mask[i] == '1' {
			if err := s.bind(ti, i, d); err != nil {
				return err
			}
		}
	}
	for _, k := range ti.keyIdx {
		if err := s.bind(ti, k, oldKey[k]); err != nil {
			return err
		}
	}
	res, err := st.ExecContext(ctx, s.args...)
	if err != nil {
		return fmt.Errorf("update %s: %w", ti.name, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return schema.Diverged(ti.t, fmt.Errorf("update %s: a row updated at the source is missing from the copy (changed by someone else?), key %s", ti.name, keyText(ti, oldKey)))
	}
	return nil
}

// rowChange applies one ordered update or delete. Keyed tables match by key;
// keyless ones change exactly one row equal to the old row (NULL-safe), which
// keeps duplicates exact.
func (s *Sink) rowChange(ctx context.Context, ti *tableInfo, c schema.RowChange) error {
	if len(ti.keyIdx) > 0 {
		switch c.Op {
		case schema.Update:
			old := c.Old
			if old == nil {
				old = c.New
			}
			return s.updateByKey(ctx, ti, old, c.New)
		case schema.Delete:
			return s.deleteKeys(ctx, ti, []schema.Tuple{c.Old})
		}
		return fmt.Errorf("unexpected ordered %s", c.Op)
	}
	if c.Old == nil || ti.t.Identity != schema.IdentityFull {
		return schema.Unidentified(ti.t, c.Op, c.Old != nil)
	}
	match := sentMask(c.Old)
	var set string
	op := opDeleteOne
	if c.Op == schema.Update {
		op, set = opUpdateOne, sentMask(c.New)
	}
	st, err := s.stmt(ctx, stmtKey{t: ti.t, op: op, mask: set + "|" + match}, func() string {
		var sets, where []string
		for i, col := range ti.cols {
			if set != "" && set[i] == '1' {
				sets = append(sets, col+" = ?")
			}
			if match[i] == '1' {
				where = append(where, col+" IS ?")
			}
		}
		one := ti.rowid + " = (SELECT " + ti.rowid + " FROM " + ti.name + " WHERE " + strings.Join(where, " AND ") + " LIMIT 1)"
		if op == opDeleteOne {
			return "DELETE FROM " + ti.name + " WHERE " + one
		}
		return "UPDATE " + ti.name + " SET " + strings.Join(sets, ", ") + " WHERE " + one
	})
	if err != nil {
		return err
	}
	s.args = s.args[:0]
	if op == opUpdateOne {
		for i, d := range c.New {
			if set[i] == '1' {
				if err := s.bind(ti, i, d); err != nil {
					return err
				}
			}
		}
	}
	for i, d := range c.Old {
		if match[i] == '1' {
			if err := s.bind(ti, i, d); err != nil {
				return err
			}
		}
	}
	if _, err := st.ExecContext(ctx, s.args...); err != nil {
		return fmt.Errorf("%s one row of %s: %w", c.Op, ti.name, err)
	}
	return nil
}

// changeSet applies a schema.SetRun of a keyless table's changes with a few
// statements (as many values as one statement binds): the table's rows
// (found through an index SQLite builds for the statement)
// equal to some change's old row are numbered per distinct row, the changes
// per old row too, and the n-th change takes the n-th row. A change left
// without a row changes nothing, as one applied alone. A later statement's
// changes need not avoid the rows an earlier one changed: those no longer
// equal any of their old rows (SetRun).
func (s *Sink) changeSet(ctx context.Context, ti *tableInfo, cs []schema.RowChange) error {
	first := cs[0]
	if len(ti.keyIdx) > 0 || len(cs) == 1 || ti.t.Identity != schema.IdentityFull {
		for _, c := range cs {
			if err := s.rowChange(ctx, ti, c); err != nil {
				return err
			}
		}
		return nil
	}
	match := sentMask(first.Old)
	var set string
	if first.Op == schema.Update {
		set = sentMask(first.New)
		if !strings.Contains(set, "1") {
			return nil
		}
	}
	if !strings.Contains(match, "1") {
		for _, c := range cs {
			if err := s.rowChange(ctx, ti, c); err != nil {
				return err
			}
		}
		return nil
	}
	indexed, err := s.hasLookup(ctx, ti)
	if err != nil {
		return err
	}
	for _, i := range ti.t.Lookup {
		// An unsent column of the index would leave each search reading
		// the table.
		indexed = indexed && match[i] == '1'
	}
	nvars := strings.Count(match, "1") + strings.Count(set, "1")
	per := max(maxVars/nvars, 1)
	for len(cs) > 0 {
		n := min(per, len(cs))
		s.args = s.args[:0]
		for _, c := range cs[:n] {
			for i, d := range c.Old {
				if match[i] == '1' {
					if err := s.bind(ti, i, d); err != nil {
						return err
					}
				}
			}
			for i, d := range c.New {
				if set != "" && set[i] == '1' {
					if err := s.bind(ti, i, d); err != nil {
						return err
					}
				}
			}
		}
		if _, err := s.conn.ExecContext(ctx, setSQL(ti, first.Op, match, set, n, indexed), s.args...); err != nil {
			return fmt.Errorf("%s %d rows of %s: %w", first.Op, n, ti.name, err)
		}
		cs = cs[n:]
	}
	return nil
}

// setSQL is changeSet's statement for n changes that match by the columns
// of match and set those of set ('1'). Values: per change, those matched,
// then those set, in column order. Its own names are in walmirror's
// reserved space: a table named y, x or z was hidden by a name of the
// statement's (helper-141).
func setSQL(ti *tableInfo, op schema.Op, match, set string, n int, indexed bool) string {
	const y0, y, x, z = "_walmirror_y0", "_walmirror_y", "_walmirror_x", "_walmirror_z"
	var ycols, part, xpart, on, keys, xk, sets, vals []string
	for i := range ti.cols {
		if match[i] != '1' {
			continue
		}
		o, k := "o"+strconv.Itoa(i), "k"+strconv.Itoa(i)
		ycols = append(ycols, o)
		part = append(part, o)
		xpart = append(xpart, "t."+ti.cols[i])
		keys = append(keys, "t."+ti.cols[i]+" IS "+y+"."+o)
		xk = append(xk, "t."+ti.cols[i]+" AS "+k)
		on = append(on, x+"."+k+" IS "+y+"."+o)
	}
	for i := range ti.cols {
		if set != "" && set[i] == '1' {
			v := "v" + strconv.Itoa(i)
			ycols = append(ycols, v)
			vals = append(vals, ", "+y+"."+v)
			sets = append(sets, ti.cols[i]+" = "+z+"."+v)
		}
	}
	var b strings.Builder
	b.WriteString("WITH " + y0 + "(" + strings.Join(ycols, ", ") + ") AS MATERIALIZED (VALUES ")
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(ycols)), ", ") + ")"
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	b.WriteString("), " + y + " AS (SELECT *, row_number() OVER (PARTITION BY " + strings.Join(part, ", ") + ") AS n FROM " + y0 + ")")
	if indexed {
		// The table has a lookup index (syncLookup): one search of it per
		// change, the n-th change of an old row taking the n-th equal row
		// by rowid. z is read whole before any row changes. (The join
		// below, planned with that index, joins x and y by scanning y for
		// each row of x.)
		one := "SELECT r FROM (SELECT t." + ti.rowid + " AS r, row_number() OVER (ORDER BY t." + ti.rowid + ") AS k FROM " + ti.name + " AS t WHERE " +
			strings.Join(keys, " AND ") + ") WHERE k = " + y + ".n"
		b.WriteString(", " + z + " AS MATERIALIZED (SELECT (" + one + ") AS r" + strings.Join(vals, "") + " FROM " + y + ")")
		if op == schema.Delete {
			b.WriteString(" DELETE FROM " + ti.name + " WHERE " + ti.rowid + " IN (SELECT r FROM " + z + ")")
		} else {
			b.WriteString(" UPDATE " + ti.name + " SET " + strings.Join(sets, ", ") + " FROM " + z + " WHERE " + ti.name + "." + ti.rowid + " = " + z + ".r")
		}
		return b.String()
	}
	b.WriteString(", " + x + " AS (SELECT t." + ti.rowid + " AS r, " + strings.Join(xk, ", ") + ", row_number() OVER (PARTITION BY " + strings.Join(xpart, ", ") + ") AS n FROM (SELECT DISTINCT " + strings.Join(part, ", ") + " FROM " + y0 + ") AS " + y + " JOIN " + ti.name + " AS t ON " + strings.Join(keys, " AND ") + ")")
	zq := "SELECT " + x + ".r" + strings.Join(vals, "") + " FROM " + x + " JOIN " + y + " ON " + strings.Join(on, " AND ") + " AND " + x + ".n = " + y + ".n"
	if op == schema.Delete {
		b.WriteString(" DELETE FROM " + ti.name + " WHERE " + ti.rowid + " IN (" + zq + ")")
	} else {
		b.WriteString(" UPDATE " + ti.name + " SET " + strings.Join(sets, ", ") + " FROM (" + zq + ") AS " + z + " WHERE " + ti.name + "." + ti.rowid + " = " + z + ".r")
	}
	return b.String()
}

// Truncate empties the tables.
func (s *Sink) Truncate(ctx context.Context, tables []*schema.Table) error {
	for _, t := range tables {
		ti := s.info(t)
		if _, err := s.conn.ExecContext(ctx, "DELETE FROM "+ti.name); err != nil {
			return fmt.Errorf("truncate %s: %w", ti.name, err)
		}
	}
	return nil
}

// keyText renders row's key for messages: (id)=(42).
func keyText(ti *tableInfo, row schema.Tuple) string {
	names := make([]string, len(ti.keyIdx))
	vals := make([]string, len(ti.keyIdx))
	for i, k := range ti.keyIdx {
		names[i], vals[i] = ti.cols[k], "NULL"
		if k < len(row) && row[k].State == schema.Text {
			vals[i] = string(row[k].Data)
		}
	}
	return "(" + strings.Join(names, ", ") + ")=(" + strings.Join(vals, ", ") + ")"
}
