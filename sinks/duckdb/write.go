package duckdb

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/walmirror/walmirror/schema"
)

// How writes work: every part of a batch is one DuckDB query appender. Rows
// are appended (in staging types, see plan) to the appender's in-memory
// table, called s in the SQL, and DuckDB runs one set-based statement over
// them: DELETE ... USING s (deletes), INSERT ... SELECT FROM s (inserts),
// MERGE INTO ... USING s (updates), UPDATE ... FROM s (patches).
// (A TEMP staging table would do the same, but DuckDB keeps rows deleted from
// it until the transaction ends, so a huge source transaction would grow
// memory without bound; the appender's rows are gone once its statement ran.)
// Columns of s are named c<i> for the table's column i, and o<i>/n<i> for the
// old and new row of an ordered change (l<i>/h<i>: an old value's length
// and SHA-256, by which a keyless change finds a row holding a big value:
// bigOld).

// field is one appender column: source column col of the old ('o') or new
// ('n') tuple of a change, or of the only one ('c'); or the length ('l') or
// SHA-256 ('h') of the old tuple's value (bigOld).
type field struct {
	col int
	of  byte
}

func (f field) name() string { return string(f.of) + strconv.Itoa(f.col) }

// ref is how statements name a field's value in the target column's type.
func (ti *tableInfo) ref(f field) string { return ti.plans[f.col].toTarget("s." + f.name()) }

// DuckDB leaves a value an UPDATE or MERGE sets alone when it equals the
// one stored by the type's equality, and INTERVAL's counts a month as 30
// days and a day as 24 hours: '30 days' did not replace '1 month', nor
// '24:00:00' '1 day' (DuckDB 1.5; helper-129: the copy kept the old
// interval, exit 0, and a keyless table's later changes then found no
// row). PostgreSQL keeps them apart. A statement that sets intervals runs
// after one that sets them to a value unequal to the new one
// (intervalStandIn), which the second then always replaces. Lists and
// structs of intervals are replaced as given.

// setsLoosely says whether column i is an interval (DuckDB skips setting
// an equal one).
func (ti *tableInfo) setsLoosely(i int) bool { return ti.plans[i].conv == cvInterval }

// intervalStandIn is an interval unequal to the value of SQL expression v
// (in DuckDB's equality too): 1 µs, or 2 µs where v is 1 µs.
func intervalStandIn(v string) string {
	return "CASE WHEN " + v + " = INTERVAL '1 microsecond' THEN INTERVAL '2 microseconds' ELSE INTERVAL '1 microsecond' END"
}

// standsIn says whether field f is a new value of an interval column that
// is not a key column (the statements find rows by those).
func (ti *tableInfo) standsIn(f field) bool {
	return (f.of == 'n' || f.of == 'c') && ti.setsLoosely(f.col) && !isKey(ti, f.col)
}

// setsIntervals says whether a statement setting fields needs one setting
// stand-ins first (standIns); cheap, for the per-change path.
func (ti *tableInfo) setsIntervals(fields []field) bool {
	return slices.ContainsFunc(fields, ti.standsIn)
}

// standIns is the SET list of the statement that runs first where one sets
// fields: each interval standsIn says of set to its stand-in.
func (ti *tableInfo) standIns(fields []field) string {
	var sets []string
	for _, f := range fields {
		if ti.standsIn(f) {
			sets = append(sets, ti.cols[f.col]+" = "+intervalStandIn(ti.ref(f)))
		}
	}
	return strings.Join(sets, ", ")
}

// bigOld is the size (of PostgreSQL's text form) from which a keyless
// change finds its row by an old text or bytea value's length and SHA-256
// (fields 'l' and 'h') rather than by the value: staged and compared in a
// join, one 50 MB value made DuckDB peak at ~800 MB for one UPDATE
// (helper-117: 1.16 GB RSS under --duckdb-memory-limit 256MB), where the
// hash of the stored values of that length costs ~50 MB and a fifth of
// the time. In a run of changes (changeSet) a column is so compared for
// every change once one has a big value there.
const bigOld = 64 << 10

// bigOldValue reports whether column i's old value d is matched by length
// and hash: a large value of a column stored as sent (VARCHAR) or decoded
// (BLOB), whose stored bytes equal the staged ones exactly when the values
// are equal.
func (ti *tableInfo) bigOldValue(i int, d schema.Datum) bool {
	if d.State != schema.Text || len(d.Data) < bigOld || i >= len(ti.plans) {
		return false
	}
	p := ti.plans[i]
	switch {
	case p.conv == cvText && strings.EqualFold(p.target, "VARCHAR"):
	case p.conv == cvBlob && strings.EqualFold(p.target, "BLOB"):
	default:
		return false
	}
	return p.toTarget("x") == "x"
}

// lengthOf is the DuckDB function giving a stored value's length in
// bytes, as the 'l' field stages it.
func (ti *tableInfo) lengthOf(i int) string {
	if ti.plans[i].conv == cvBlob {
		return "octet_length"
	}
	return "strlen"
}

// stageTypes of the length and hash fields.
var lengthStage, hashStage = mustType(duckdb.TYPE_BIGINT), mustType(duckdb.TYPE_VARCHAR)

func mustType(t duckdb.Type) duckdb.TypeInfo {
	ti, err := duckdb.NewTypeInfo(t)
	if err != nil {
		panic(err)
	}
	return ti
}

// unstorableJSON is DuckDB refusing a json value: schema.ErrUnstorable, as
// the values the sink itself cannot convert.
// Its text is one line: DuckDB's own has the statement and a caret after
// its first line, which hid the remedy at the end of a copy's error.
type unstorableJSON struct {
	msg   string
	cause error
}

func (e unstorableJSON) Error() string   { return e.msg }
func (e unstorableJSON) Unwrap() []error { return []error{e.cause, schema.ErrUnstorable} }

// tupleMode says which values of a tuple may be missing.
type tupleMode uint8

const (
	complete tupleMode = iota // every field must be sent (inserts, updates)
	sentOnly                  // unsent (unchanged TOAST) fields are staged as NULL; statements only use sent ones
)

// run appends rows to a query appender for query and lets DuckDB execute it
// (once per ~200k rows). fill appends the n rows. The statement reads the
// table (a join by key): its work is the table's rows and the n.
func (s *Sink) run(ctx context.Context, ti *tableInfo, query string, fields []field, n int, fill func(a *duckdb.Appender) error) error {
	return s.runWork(ctx, ti, ti.rows+int64(n), query, fields, n, fill)
}

// runWork is run for a statement whose work (rows it reads or writes, for
// SerialSmallWrites) is given: a plain INSERT reads nothing of its table,
// so an append-only table that grew past serialWork does not switch the
// threads setting back and forth around each small insert (two SET
// statements of ~0.6 ms each per target commit).
func (s *Sink) runWork(ctx context.Context, ti *tableInfo, work int64, query string, fields []field, n int, fill func(a *duckdb.Appender) error) error {
	if err := s.useThreads(ctx, work); err != nil {
		return err
	}
	s.touch(ti.t)
	types := make([]duckdb.TypeInfo, len(fields))
	names := make([]string, len(fields))
	for i, f := range fields {
		types[i], names[i] = ti.plans[f.col].stage, f.name()
		switch f.of {
		case 'l':
			types[i] = lengthStage
		case 'h':
			types[i] = hashStage
		}
	}
	err := s.conn.Raw(func(dc any) error {
		conn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("internal error: driver connection is %T", dc)
		}
		a, err := duckdb.NewQueryAppender(conn, query, "s", types, names)
		if err != nil {
			return err
		}
		if err := fill(a); err != nil {
			// Drop the rows appended so far rather than run the statement
			// on them (the caller's transaction is rolled back anyway).
			_ = a.Clear()
			_ = a.CloseWithCancel(ctx)
			return err
		}
		return a.CloseWithCancel(ctx)
	})
	if err != nil {
		if strings.Contains(err.Error(), "Malformed JSON") {
			// DuckDB names the staged field ("... when casting from source
			// column c3"), after the value, which may hold that text too
			// (helper-141): the last such phrase of the first line names it.
			// Name the table's column instead.
			col, at := "a json column", -1
			// The value is quoted whole, newlines and all; DuckDB's
			// context (the statement) follows a blank line.
			why, _, _ := strings.Cut(err.Error(), "\n\nLINE ")
			const casting = " when casting from source column "
			if i := strings.LastIndex(why, casting); i >= 0 {
				field, _, _ := strings.Cut(why[i+len(casting):], "\n")
				field = strings.TrimSpace(field)
				if j := strings.IndexFunc(field, unicode.IsSpace); j >= 0 {
					field = field[:j]
				}
				why = strings.Join(strings.Fields(why[:i]), " ")
				for _, f := range fields {
					if field == f.name() && f.col < len(ti.t.Columns) {
						col, at = fmt.Sprintf("column %q", ti.t.Columns[f.col].Name), f.col
						break
					}
				}
			}
			if _, after, found := strings.Cut(why, "Malformed JSON"); found {
				why = "Malformed JSON" + after
			}
			err = unstorableJSON{fmt.Sprintf("%s: DuckDB's JSON parser refused a json value (%s): to keep such values, change that column's type to VARCHAR in the DuckDB file (ALTER TABLE ... ALTER COLUMN ... TYPE VARCHAR), then request a copy of the table again (walmirror resync --table ...); walmirror then stores them there as text%s",
				col, strings.TrimSpace(why), s.uncreated(ti, at, schema.ErrUnstorable)), err}
		}
		marked := markedError(err)
		err = overLimit(fmt.Errorf("write %s: %w", ti.label, err))
		if marked {
			err = schema.Diverged(ti.t, err)
		}
		return err
	}
	return nil
}

// serialWork bounds what SerialSmallWrites runs on one thread: rows of
// the table plus rows appended, two of DuckDB's row groups (122,880 rows
// each), below which a statement has little to run in parallel.
const serialWork = 2 * 122_880

// serialSettle is how long SerialSmallWrites keeps the instance's threads
// after a statement that needed them, before small statements go back to
// one thread. A switch costs more than one thread saves: the SET, and the
// next parallel statement starting DuckDB's threads again, took 3-4 ms
// against ~1 ms statements. A pgbench-shaped commit over a 1M-row table of
// accounts and small ones switched twice: 16.7 ms
// (BenchmarkSmallCommits/serial-small-writes-big-accounts before this),
// against 7.9 ms on the instance's threads throughout and 8.3 ms on one
// thread (a throwaway build with serialWork raised).
const serialSettle = time.Second

// useThreads sets DuckDB's threads for a statement over work rows
// (SerialSmallWrites); it costs a statement only when the setting changes,
// which happens at most twice per serialSettle.
func (s *Sink) useThreads(ctx context.Context, work int64) error {
	want := s.threads
	if s.SerialSmallWrites && work <= serialWork {
		want = 1
		if s.curThreads != 1 && time.Since(s.parallelAt) < s.serialSettle {
			want = s.curThreads
		}
	} else if s.SerialSmallWrites {
		s.parallelAt = time.Now()
	}
	if want == s.curThreads || want < 1 {
		return nil
	}
	if _, err := s.conn.ExecContext(ctx, "SET threads = "+strconv.FormatInt(want, 10)); err != nil {
		return fmt.Errorf("set DuckDB threads to %d: %w", want, err)
	}
	s.curThreads = want
	return nil
}

// appendTuples appends one appender row per tuple, with the given fields
// (all of one tuple, f.of ignored).
func (s *Sink) appendTuples(a *duckdb.Appender, ti *tableInfo, fields []field, tuples []schema.Tuple, mode tupleMode) error {
	for _, tup := range tuples {
		s.cv.reset()
		s.vals = s.vals[:0]
		for _, f := range fields {
			if err := s.stageValue(ti, f, tup, mode); err != nil {
				return err
			}
		}
		if err := a.AppendRow(s.vals...); err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	return nil
}

// stageValue converts field f of tup (column f.col, or its length or hash:
// bigOld) and adds it to the row being built.
func (s *Sink) stageValue(ti *tableInfo, f field, tup schema.Tuple, mode tupleMode) error {
	i := f.col
	if i >= len(tup) {
		return fmt.Errorf("column %q: tuple has %d values, want %d", ti.t.Columns[i].Name, len(tup), len(ti.t.Columns))
	}
	d := tup[i]
	switch d.State {
	case schema.Null:
		s.vals = append(s.vals, nil)
		return nil
	case schema.Unchanged:
		if mode == sentOnly {
			s.vals = append(s.vals, nil)
			return nil
		}
		return fmt.Errorf("column %q: internal error: unchanged TOAST value in a complete row", ti.t.Columns[i].Name)
	}
	if f.of == 'l' {
		// The length without decoding: a malformed value fails its 'h'.
		n := len(d.Data)
		if ti.plans[i].conv == cvBlob {
			n = max(n-2, 0) / 2 // \x, two hex digits a byte
		}
		s.vals = append(s.vals, int64(n))
		return nil
	}
	v, err := s.cv.value(ti.plans[i].plan, d.Data)
	if err != nil {
		return fmt.Errorf("column %q of %s: %w%s", ti.t.Columns[i].Name, ti.label, err, s.uncreated(ti, i, err))
	}
	if f.of == 'h' {
		h := sha256.Sum256(v.([]byte))
		v = hex.EncodeToString(h[:])
	}
	s.vals = append(s.vals, v)
	return nil
}

func allFields(ti *tableInfo, of byte) []field {
	fs := make([]field, len(ti.plans))
	for i := range fs {
		fs[i] = field{col: i, of: of}
	}
	return fs
}

func keyFields(ti *tableInfo, of byte) []field {
	fs := make([]field, len(ti.keyIdx))
	for i, k := range ti.keyIdx {
		fs[i] = field{col: k, of: of}
	}
	return fs
}

// keyMatch is "t.k1 = <s.k1> AND ...".
func (ti *tableInfo) keyMatch(alias string, of byte) string {
	parts := make([]string, len(ti.keyIdx))
	for i, k := range ti.keyIdx {
		parts[i] = alias + "." + ti.cols[k] + " = " + ti.ref(field{k, of})
	}
	return strings.Join(parts, " AND ")
}

// cached builds a statement once per table shape and purpose.
func (ti *tableInfo) cached(key string, build func() string) string {
	q, ok := ti.sql[key]
	if !ok {
		q = build()
		ti.sql[key] = q
	}
	return q
}

// Write applies a batch: deletes by key, inserts in bulk, updates by key,
// patches grouped by the columns they set (each one statement), then the
// ordered changes.
func (s *Sink) Write(ctx context.Context, b *schema.Batch) error {
	if len(b.Deletes)+len(b.Updates)+len(b.Patches)+len(b.Rows) > 0 {
		s.altered[TableName(b.Table.Schema, b.Table.Name)] = true
	}
	return s.write(ctx, b)
}

func (s *Sink) write(ctx context.Context, b *schema.Batch) error {
	if !s.inTx {
		return errors.New("duckdb sink: write outside a transaction")
	}
	if b.Len() == 0 {
		return nil
	}
	ti, err := s.info(ctx, b.Table)
	if err != nil {
		return err
	}
	keyed := len(ti.keyIdx) > 0
	if !keyed && len(b.Deletes)+len(b.Updates)+len(b.Patches) > 0 {
		return fmt.Errorf("%s has no key: it cannot take deletes, updates or patches by key", ti.label)
	}
	if len(b.Deletes) > 0 {
		if err := s.deleteKeys(ctx, ti, b.Deletes); err != nil {
			return err
		}
	}
	if len(b.Inserts) > 0 {
		// Rows of an initial copy need no key check when the target's key
		// holds the source's exactly: the source's unique key keeps them
		// distinct (the check at commit groups the whole table by its key,
		// a tenth of a 1M-row copy's time).
		distinct := b.Snapshot && ti.exactKey()
		if err := s.insertRows(ctx, ti, b.Inserts, s.written[ti.name]+int64(len(b.Inserts)) > bulkRows, false, distinct); err != nil {
			return err
		}
	}
	if len(b.Updates) > 0 {
		update := s.merge
		if keyed && s.written[ti.name]+int64(len(b.Updates)) > bulkRows {
			update = s.replace
		}
		if err := update(ctx, ti, b.Updates); err != nil {
			return err
		}
	}
	if len(b.Patches) > 0 {
		if err := s.patch(ctx, ti, b.Patches); err != nil {
			return err
		}
	}
	return schema.EachRun(b.Rows,
		func(tuples []schema.Tuple) error { return s.insert(ctx, ti, tuples) },
		func(cs []schema.RowChange) error { return s.changeSet(ctx, ti, cs) })
}

// deleteKeys removes the rows whose keys the tuples hold.
func (s *Sink) deleteKeys(ctx context.Context, ti *tableInfo, keys []schema.Tuple) error {
	fields := keyFields(ti, 'c')
	q := ti.cached("delete", func() string {
		return "DELETE FROM " + ti.name + " AS t USING s WHERE " + ti.keyMatch("t", 'c')
	})
	s.wantKeyIndex(ti)
	return s.run(ctx, ti, q, fields, len(keys), func(a *duckdb.Appender) error {
		return s.appendTuples(a, ti, fields, keys, complete)
	})
}

// insert appends complete rows. On a keyed table a row whose key is already
// there fails the transaction (Inserts must be new rows). The first rows a
// transaction writes to a table are checked by the statement itself; once
// it has written bulkRows, the rest are checked once, at commit, and so are
// all rows of a table created or emptied in this transaction (the initial
// copy fills big tables in many chunks).
func (s *Sink) insert(ctx context.Context, ti *tableInfo, rows []schema.Tuple) error {
	return s.insertRows(ctx, ti, rows, s.written[ti.name]+int64(len(rows)) > bulkRows, false, false)
}

// exactKey reports whether the table has a key whose every column is an
// integer or uuid at the source and holds the same type in the target, so
// distinct source keys are distinct target keys (a key of text, numeric or
// time values may pass through a conversion, or a column the user made,
// that could make two of them equal).
func (ti *tableInfo) exactKey() bool {
	if len(ti.keyIdx) == 0 {
		return false
	}
	for _, k := range ti.keyIdx {
		want := map[uint32]string{20: "BIGINT", 21: "SMALLINT", 23: "INTEGER", 2950: "UUID"}[ti.t.Columns[k].TypeID]
		if want == "" || ti.plans[k].target != want {
			return false
		}
	}
	return true
}

// WriteNew inserts rows that are new to t's table, past every key it holds:
// an online copy's chunk, whose keys follow those the copy committed before
// (the stream's changes to rows past them wait for the copy). The rows are
// checked for keys already there once, at commit, over their key range,
// instead of by each statement: an INSERT that reads the table it inserts
// into (the check's join) makes DuckDB keep the rows in memory, where a
// plain one writes full row groups to the file, and the check at commit
// reads only the rows of that range, which are these. A key that is there
// all the same still fails the transaction, at commit, naming the key. A
// table whose key is not a single integer column gets Write's inserts (its
// check at commit would read the whole table each time).
func (s *Sink) WriteNew(ctx context.Context, t *schema.Table, rows []schema.Tuple) error {
	if !s.inTx {
		return errors.New("duckdb sink: write outside a transaction")
	}
	if len(rows) == 0 {
		return nil
	}
	ti, err := s.info(ctx, t)
	if err != nil {
		return err
	}
	return s.insertRows(ctx, ti, rows, s.written[ti.name]+int64(len(rows)) > bulkRows, true, false)
}

// insertRows is insert, with the key check put off until commit when bulk,
// or when the rows are new (WriteNew) and the check can be limited to their
// key range, and no check at all when they are known distinct and new.
func (s *Sink) insertRows(ctx context.Context, ti *tableInfo, rows []schema.Tuple, bulk, newKeys, distinct bool) error {
	fields := allFields(ti, 'c')
	keyed := len(ti.keyIdx) > 0 && !distinct
	checked := keyed && !s.fresh[ti.name]
	// The check joins the batch with the table. For a single integer key
	// the table side is limited to the batch's key range, which DuckDB's
	// row-group statistics turn into skipped row groups: with keys that grow,
	// as most do, a batch no longer scans the whole table.
	lo, hi, ranged := int64(0), int64(0), false
	if checked {
		lo, hi, ranged = intKeyRange(ti, rows)
	}
	switch {
	case keyed && !checked:
		s.checkAtCommit(ti, keyCheck{})
	case checked && (bulk || newKeys && ranged):
		s.checkAtCommit(ti, keyCheck{lo: lo, hi: hi, ranged: ranged})
		checked, ranged = false, false
	}
	build := func() string {
		exprs := make([]string, len(fields))
		for i, f := range fields {
			exprs[i] = ti.ref(f)
		}
		from := " FROM s"
		if checked {
			// error() fails the statement, naming the key, when the row is
			// there already.
			k0 := ti.keyIdx[0]
			exprs[k0] = "CASE WHEN e." + ti.cols[k0] + " IS NULL THEN " + exprs[k0] + " ELSE error(" +
				literal(presentMsg+ti.name+" of a row whose key is already there, key ") + " || " + ti.keyText("s", 'c') + ") END"
			from += " LEFT JOIN (SELECT * FROM " + ti.name + ti.keyRange(lo, hi, ranged) + ") AS e ON " + ti.keyMatch("e", 'c')
		}
		return "INSERT INTO " + ti.name + " (" + strings.Join(ti.cols, ", ") + ") SELECT " + strings.Join(exprs, ", ") + from
	}
	var q string
	if ranged {
		q = build()
	} else {
		q = ti.cached("insert"+strconv.FormatBool(checked), build)
	}
	work := int64(len(rows))
	if checked {
		work += ti.rows // the statement joins the batch with the table
		if !ranged {
			s.wantKeyIndex(ti)
		}
	}
	err := s.runWork(ctx, ti, work, q, fields, len(rows), func(a *duckdb.Appender) error {
		return s.appendTuples(a, ti, fields, rows, complete)
	})
	if err == nil {
		ti.rows += int64(len(rows))
		s.written[ti.name] += int64(len(rows))
	}
	return err
}

// CopyChunkGrain is the smallest online-copy chunk DuckDB writes without
// writing it twice: rows a transaction inserts into a table go to the file
// as row groups once they fill one (bulkRows), fewer go to the WAL and
// into the file at a later checkpoint (see apply's chunk sizes).
func (s *Sink) CopyChunkGrain() int { return bulkRows }

// bulkRows is how many rows a transaction inserts or updates in a table
// the usual way; past it, the table is in a bulk load:
//   - inserts are checked for keys already there at commit, not in the
//     statement: DuckDB keeps the rows of a statement that reads the table
//     it inserts into in memory (spilled to the temp directory), where a
//     plain insert writes full row groups straight to the file;
//   - updates replace the rows (delete, insert; see replace): DuckDB keeps
//     the old values of rows a transaction updates in memory it cannot
//     spill, so a source transaction updating a few million rows failed
//     with "could not allocate" under a memory limit, and grew memory
//     without one.
const bulkRows = 122_880

// keyCheck is a duplicate-key check put off until commit: of the whole
// table, or, when ranged, of the keys from lo to hi (a single integer key;
// every key inserted unchecked lies there).
type keyCheck struct {
	ti     *tableInfo
	lo, hi int64
	ranged bool
}

// keyRange is " WHERE <key> BETWEEN lo AND hi" for a single integer key
// when ranged, else "".
func (ti *tableInfo) keyRange(lo, hi int64, ranged bool) string {
	if !ranged {
		return ""
	}
	return " WHERE " + ti.cols[ti.keyIdx[0]] + " BETWEEN " + strconv.FormatInt(lo, 10) + " AND " + strconv.FormatInt(hi, 10)
}

// checkAtCommit adds c (for ti) to the checks run at commit.
func (s *Sink) checkAtCommit(ti *tableInfo, c keyCheck) {
	c.ti = ti
	prev := s.verify[ti.name]
	switch {
	case prev == nil:
	case !prev.ranged || !c.ranged:
		c.ranged = false
	default:
		c.lo, c.hi = min(c.lo, prev.lo), max(c.hi, prev.hi)
	}
	s.verify[ti.name] = &c
}

// merge replaces rows by key with one MERGE (updates). A row not in the
// target fails the statement, naming the key: the target no longer mirrors
// the source.
func (s *Sink) merge(ctx context.Context, ti *tableInfo, rows []schema.Tuple) error {
	fields := allFields(ti, 'c')
	q := ti.cached("merge", func() string {
		var sets []string
		for i, c := range ti.cols {
			if !isKey(ti, i) {
				sets = append(sets, c+" = "+ti.ref(field{i, 'c'}))
			}
		}
		matched := "DO NOTHING"
		if len(sets) > 0 {
			matched = "UPDATE SET " + strings.Join(sets, ", ")
		}
		notMatched := "ERROR " + ti.missing('c')
		return "MERGE INTO " + ti.name + " AS t USING s ON " + ti.keyMatch("t", 'c') +
			" WHEN MATCHED THEN " + matched + " WHEN NOT MATCHED THEN " + notMatched
	})
	s.wantKeyIndex(ti)
	fill := func(a *duckdb.Appender) error { return s.appendTuples(a, ti, fields, rows, complete) }
	if ti.setsIntervals(fields) {
		pq := ti.cached("merge standins", func() string {
			return "MERGE INTO " + ti.name + " AS t USING s ON " + ti.keyMatch("t", 'c') + " WHEN MATCHED THEN UPDATE SET " + ti.standIns(fields)
		})
		if err := s.run(ctx, ti, pq, fields, len(rows), fill); err != nil {
			return err
		}
	}
	if err := s.run(ctx, ti, q, fields, len(rows), fill); err != nil {
		return err
	}
	s.written[ti.name] += int64(len(rows))
	return nil
}

// markedError says whether err is a statement's own error() call with
// missing's or present's message. Both begin with marker, unknown outside
// this process: a table named, or a value holding, their text appears in
// DuckDB's other errors too, which were taken for a divergence
// (helper-141).
func markedError(err error) bool {
	// Not in DuckDB's context after the message, which may show the
	// statement holding the marker's literal.
	msg, _, _ := strings.Cut(err.Error(), "\nLINE ")
	return strings.Contains(msg, marker)
}

// marker begins missingMsg and presentMsg: "walmirror" and a number drawn
// at start.
var marker = fmt.Sprintf("walmirror [%08x]: ", rand.Uint32())

// missingMsg begins missing's message; presentMsg that of an inserted row
// whose key the table holds already.
var (
	missingMsg = marker + "a row updated at the source is missing from "
	presentMsg = marker + "insert into "
)

// missing is the error message for a row updated at the source that the
// target does not hold, as an SQL expression over s, whose key fields are
// of (the row's 'c', or an ordered change's old key 'o').
func (ti *tableInfo) missing(of byte) string {
	return literal(missingMsg+ti.name+
		", so it no longer mirrors the source (changed by someone else?); rebuild it from a fresh snapshot; key ") +
		" || " + ti.keyText("s", of)
}

// replace is merge for a bulk load (bulkRows): it deletes the rows by key,
// failing on one that is not there as merge does, and inserts them anew
// with their keys checked at commit.
func (s *Sink) replace(ctx context.Context, ti *tableInfo, rows []schema.Tuple) error {
	fields := keyFields(ti, 'c')
	lo, hi, ranged := intKeyRange(ti, rows)
	build := func() string {
		k0 := ti.cols[ti.keyIdx[0]]
		// The subquery is named s too, so keyMatch reads its key columns.
		return "DELETE FROM " + ti.name + " AS t USING (SELECT s.*, CASE WHEN e." + k0 + " IS NULL THEN error(" + ti.missing('c') +
			") ELSE true END AS found FROM s LEFT JOIN (SELECT * FROM " + ti.name + ti.keyRange(lo, hi, ranged) + ") AS e ON " + ti.keyMatch("e", 'c') + ") AS s WHERE " +
			ti.keyMatch("t", 'c') + " AND s.found"
	}
	var q string
	if ranged {
		q = build()
	} else {
		q = ti.cached("replace", build)
	}
	if err := s.run(ctx, ti, q, fields, len(rows), func(a *duckdb.Appender) error {
		return s.appendTuples(a, ti, fields, rows, complete)
	}); err != nil {
		return err
	}
	ti.rows -= int64(len(rows)) // insertRows counts them again
	return s.insertRows(ctx, ti, rows, true, false, false)
}

// keyText renders key values for messages: ("id")=(42).
func (ti *tableInfo) keyText(alias string, of byte) string {
	names := make([]string, len(ti.keyIdx))
	vals := make([]string, len(ti.keyIdx))
	for i, k := range ti.keyIdx {
		names[i] = ti.cols[k]
		vals[i] = "coalesce(CAST(" + ti.ref(field{k, of}) + " AS VARCHAR), 'NULL')"
	}
	return literal("("+strings.Join(names, ", ")+")=(") + " || " + strings.Join(vals, " || ', ' || ") + " || ')'"
}

// checkUnique fails if a key occurs twice in the table (among the keys c
// covers).
func (s *Sink) checkUnique(ctx context.Context, c *keyCheck) error {
	ti := c.ti
	if err := s.useThreads(ctx, ti.rows); err != nil {
		return err
	}
	keys := make([]string, len(ti.keyIdx))
	for i, k := range ti.keyIdx {
		keys[i] = ti.cols[k]
	}
	where := ti.keyRange(c.lo, c.hi, c.ranged)
	var key string
	q := "SELECT " + literal("("+strings.Join(keys, ", ")+")=") + " || CAST(row(" + strings.Join(keys, ", ") + ") AS VARCHAR) FROM " + ti.name + where +
		" GROUP BY " + strings.Join(keys, ", ") + " HAVING count(*) > 1 LIMIT 1"
	err := s.conn.QueryRowContext(ctx, q).Scan(&key)
	switch {
	case err == nil:
		return schema.Diverged(ti.t, fmt.Errorf("%s: rows inserted in this transaction share the key %s: a row the source inserted is in the copy already (written by someone else?)", ti.name, key))
	case errors.Is(err, sql.ErrNoRows):
		return nil
	}
	return fmt.Errorf("check keys of %s: %w", ti.name, err)
}

// sentMask marks the columns a tuple carries.
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

// patch updates only the columns each row sent, one statement per set of
// sent columns.
func (s *Sink) patch(ctx context.Context, ti *tableInfo, rows []schema.Tuple) error {
	groups := map[string][]schema.Tuple{}
	var order []string
	for _, r := range rows {
		m := sentMask(r)
		if _, ok := groups[m]; !ok {
			order = append(order, m)
		}
		groups[m] = append(groups[m], r)
	}
	for _, m := range order {
		if err := s.updateByKey(ctx, ti, m, groups[m]); err != nil {
			return err
		}
	}
	return nil
}

// updateByKey sets the columns mask marks, from rows that carry the key.
func (s *Sink) updateByKey(ctx context.Context, ti *tableInfo, mask string, rows []schema.Tuple) error {
	fields := keyFields(ti, 'c')
	var sets []string
	for i := range ti.plans {
		if mask[i] == '1' && !isKey(ti, i) {
			fields = append(fields, field{i, 'c'})
			sets = append(sets, ti.cols[i]+" = "+ti.ref(field{i, 'c'}))
		}
	}
	// A MERGE, as for whole rows: a row the copy lacks fails it, naming
	// the key (an UPDATE ... FROM skipped it, and the copy stayed without
	// the row: helper-135).
	q := ti.cached("patch"+mask, func() string {
		matched := "DO NOTHING"
		if len(sets) > 0 {
			matched = "UPDATE SET " + strings.Join(sets, ", ")
		}
		return "MERGE INTO " + ti.name + " AS t USING s ON " + ti.keyMatch("t", 'c') +
			" WHEN MATCHED THEN " + matched + " WHEN NOT MATCHED THEN ERROR " + ti.missing('c')
	})
	for _, k := range ti.keyIdx {
		if mask[k] != '1' {
			return fmt.Errorf("internal error: patch of %s without key column %q", ti.label, ti.t.Columns[k].Name)
		}
	}
	s.wantKeyIndex(ti)
	fill := func(a *duckdb.Appender) error { return s.appendTuples(a, ti, fields, rows, sentOnly) }
	if ti.setsIntervals(fields) {
		pq := ti.cached("patch standins"+mask, func() string {
			return "UPDATE " + ti.name + " AS t SET " + ti.standIns(fields) + " FROM s WHERE " + ti.keyMatch("t", 'c')
		})
		if err := s.run(ctx, ti, pq, fields, len(rows), fill); err != nil {
			return err
		}
	}
	return s.run(ctx, ti, q, fields, len(rows), fill)
}

func isKey(ti *tableInfo, i int) bool {
	for _, k := range ti.keyIdx {
		if k == i {
			return true
		}
	}
	return false
}

// rowChange applies one ordered update or delete. Keyed tables match by the
// old key; keyless ones change exactly one row equal to the old row
// (NULL-safe: rowid of the first match), which keeps duplicates exact.
func (s *Sink) rowChange(ctx context.Context, ti *tableInfo, c schema.RowChange) error {
	if c.Op != schema.Update && c.Op != schema.Delete {
		return fmt.Errorf("unexpected ordered %s on %s", c.Op, ti.label)
	}
	if len(ti.keyIdx) > 0 {
		old := c.Old
		if old == nil {
			old = c.New
		}
		if old == nil {
			return fmt.Errorf("%s on %s without a row", c.Op, ti.label)
		}
		if c.Op == schema.Delete {
			return s.deleteKeys(ctx, ti, []schema.Tuple{old})
		}
		// A MERGE, as for patches: a row the copy lacks fails it (an
		// UPDATE ... FROM skipped it: helper-137).
		return s.updateOne(ctx, ti, keyFields(ti, 'o'), old, c.New, func(sets string, _ bool) string {
			return "MERGE INTO " + ti.name + " AS t USING s ON " + ti.keyMatch("t", 'o') +
				" WHEN MATCHED THEN UPDATE SET " + sets + " WHEN NOT MATCHED THEN ERROR " + ti.missing('o')
		})
	}
	if c.Old == nil || ti.t.Identity != schema.IdentityFull {
		return schema.Unidentified(ti.t, c.Op, c.Old != nil)
	}
	match, ls, rs := oldMatch(ti, c.Old, ti.bigIn(c))
	oneOf := func(rs []string) string {
		conds := make([]string, len(ls))
		for i := range ls {
			conds[i] = ls[i] + " IS NOT DISTINCT FROM " + rs[i]
		}
		if len(conds) == 0 {
			conds = append(conds, "true")
		}
		return "t.rowid = (SELECT m.rowid FROM " + ti.name + " AS m, s WHERE " + strings.Join(conds, " AND ") + " LIMIT 1)"
	}
	one := oneOf(rs)
	if c.Op == schema.Delete {
		var key strings.Builder
		key.WriteString("deleteone")
		for _, f := range match {
			key.WriteString(" " + f.name())
		}
		q := ti.cached(key.String(), func() string {
			return "DELETE FROM " + ti.name + " AS t WHERE " + one
		})
		return s.run(ctx, ti, q, match, 1, func(a *duckdb.Appender) error {
			return s.appendTuples(a, ti, match, []schema.Tuple{c.Old}, sentOnly)
		})
	}
	return s.updateOne(ctx, ti, match, c.Old, c.New, func(sets string, afterStandIns bool) string {
		if afterStandIns {
			// The row's intervals hold their stand-ins now.
			return "UPDATE " + ti.name + " AS t SET " + sets + " FROM s WHERE " + oneOf(standInMatch(ti, match, rs, c.New))
		}
		return "UPDATE " + ti.name + " AS t SET " + sets + " FROM s WHERE " + one
	})
}

// standInMatch is staged, oldMatch's staged values for match, with each
// interval the change sets (newRow) matched by its stand-in instead: a
// keyless row is found again after the statement setting them
// (intervalStandIn). A row found so may be another equal to it in every
// column: either gives the same rows.
func standInMatch(ti *tableInfo, match []field, staged []string, newRow schema.Tuple) []string {
	out := slices.Clone(staged)
	for j, f := range match {
		if f.of == 'o' && ti.setsLoosely(f.col) && f.col < len(newRow) && newRow[f.col].State != schema.Unchanged {
			out[j] = "CAST(" + intervalStandIn(ti.ref(field{f.col, 'n'})) + " AS VARCHAR)"
		}
	}
	return out
}

// oldMatch is how a keyless change finds its row: the fields of the old
// row's sent columns, and per field the table's value (alias m) and the
// staged one, compared as text where equal values may differ (intervals).
// A column hashed says is compared by length and SHA-256 (bigOld): only
// stored values of a length some staged change has are hashed. (Hashing
// only rows equal to a staged one in every other column as well, by an
// EXISTS, took about as long and 60% more memory: DuckDB carried the big
// values through that join.)
func oldMatch(ti *tableInfo, old schema.Tuple, hashed func(int) bool) (match []field, table, staged []string) {
	for i, d := range old {
		if i >= len(ti.plans) || d.State == schema.Unchanged {
			continue
		}
		if hashed(i) {
			l, h := field{i, 'l'}, field{i, 'h'}
			n := ti.lengthOf(i) + "(m." + ti.cols[i] + ")"
			match = append(match, l, h)
			table = append(table, n, "CASE WHEN "+n+" IN (SELECT "+l.name()+" FROM s) THEN sha256(m."+ti.cols[i]+") END")
			staged = append(staged, "s."+l.name(), "s."+h.name())
			continue
		}
		f := field{i, 'o'}
		match = append(match, f)
		l, r := "m."+ti.cols[i], ti.ref(f)
		if ti.plans[i].exactCompare() {
			l, r = "CAST("+l+" AS VARCHAR)", "CAST("+r+" AS VARCHAR)"
		}
		table, staged = append(table, l), append(staged, r)
	}
	return match, table, staged
}

// bigIn is oldMatch's hashed for changes cs: the columns where one of
// them has a big old value.
func (ti *tableInfo) bigIn(cs ...schema.RowChange) func(int) bool {
	return func(i int) bool {
		return slices.ContainsFunc(cs, func(c schema.RowChange) bool { return i < len(c.Old) && ti.bigOldValue(i, c.Old[i]) })
	}
}

// changeSet applies a schema.SetRun of a keyless table's changes in one
// statement: the table's rows equal to some change's old row are numbered
// per distinct row (in rowid order), the changes per old row too, and the
// n-th change takes the n-th row. A change left without a row changes
// nothing, as rowChange's does.
func (s *Sink) changeSet(ctx context.Context, ti *tableInfo, cs []schema.RowChange) error {
	first := cs[0]
	if len(ti.keyIdx) > 0 || len(cs) == 1 {
		for _, c := range cs {
			if err := s.rowChange(ctx, ti, c); err != nil {
				return err
			}
		}
		return nil
	}
	if ti.t.Identity != schema.IdentityFull {
		return schema.Unidentified(ti.t, first.Op, true)
	}
	match, ls, rs := oldMatch(ti, first.Old, ti.bigIn(cs...))
	var fields []field
	var tk, on, sets, standIns, vals []string
	keyed := func(rs []string) []string {
		sk := make([]string, len(rs))
		for i := range rs {
			sk[i] = rs[i] + " AS k" + strconv.Itoa(i)
		}
		return sk
	}
	for i := range ls {
		k := "k" + strconv.Itoa(i)
		tk = append(tk, ls[i]+" AS "+k)
		on = append(on, "x."+k+" IS NOT DISTINCT FROM y."+k)
	}
	if len(match) == 0 { // nothing to match by: any row, one by one
		for _, c := range cs {
			if err := s.rowChange(ctx, ti, c); err != nil {
				return err
			}
		}
		return nil
	}
	fields = append(fields, match...)
	if first.Op == schema.Update {
		for i, d := range first.New {
			if i >= len(ti.plans) || d.State == schema.Unchanged {
				continue
			}
			f := field{i, 'n'}
			fields = append(fields, f)
			v := "v" + strconv.Itoa(len(vals))
			vals = append(vals, ti.ref(f)+" AS "+v)
			sets = append(sets, ti.cols[i]+" = z."+v)
			if ti.setsLoosely(i) {
				standIns = append(standIns, ti.cols[i]+" = "+intervalStandIn("z."+v))
			}
		}
		if len(sets) == 0 {
			return nil
		}
	}
	var key strings.Builder
	key.WriteString("set " + first.Op.String())
	for _, f := range fields {
		key.WriteString(" " + f.name())
	}
	build := func(sk, sets []string) string {
		keys := make([]string, len(tk))
		for i := range keys {
			keys[i] = "k" + strconv.Itoa(i)
		}
		ks := strings.Join(keys, ", ")
		// y: the changes, numbered per old row; x: the table's rows equal to
		// one of them (a join with their distinct old rows), numbered alike.
		y := "(SELECT " + strings.Join(append(append([]string(nil), sk...), vals...), ", ") + " FROM s)"
		y = "(SELECT *, row_number() OVER (PARTITION BY " + ks + ") AS n FROM " + y + ")"
		x := "(SELECT m.rowid AS r, " + strings.Join(tk, ", ") + " FROM " + ti.name + " AS m)"
		x = "(SELECT x.r, " + prefixed("x.", keys) + ", row_number() OVER (PARTITION BY " + prefixed("x.", keys) + " ORDER BY x.r) AS n FROM " + x + " AS x JOIN (SELECT DISTINCT " + ks + " FROM " + y + ") AS y ON " + strings.Join(on, " AND ") + ")"
		z := "(SELECT x.r" + yvals(len(vals)) + " FROM " + x + " AS x JOIN " + y + " AS y ON " + strings.Join(on, " AND ") + " AND x.n = y.n) AS z"
		if first.Op == schema.Delete {
			return "DELETE FROM " + ti.name + " AS t USING " + z + " WHERE t.rowid = z.r"
		}
		return "UPDATE " + ti.name + " AS t SET " + strings.Join(sets, ", ") + " FROM " + z + " WHERE t.rowid = z.r"
	}
	var pre string
	q := ti.cached(key.String(), func() string {
		if len(standIns) > 0 {
			// The rows' intervals hold their stand-ins by then.
			return build(keyed(standInMatch(ti, match, rs, first.New)), sets)
		}
		return build(keyed(rs), sets)
	})
	if len(standIns) > 0 {
		pre = ti.cached("standins "+key.String(), func() string { return build(keyed(rs), standIns) })
	}
	fill := func(a *duckdb.Appender) error {
		for _, c := range cs {
			s.cv.reset()
			s.vals = s.vals[:0]
			for _, f := range fields {
				tup := c.Old
				if f.of == 'n' {
					tup = c.New
				}
				if err := s.stageValue(ti, f, tup, sentOnly); err != nil {
					return err
				}
			}
			if err := a.AppendRow(s.vals...); err != nil {
				return fmt.Errorf("append: %w", err)
			}
		}
		return nil
	}
	if pre != "" {
		if err := s.run(ctx, ti, pre, fields, len(cs), fill); err != nil {
			return err
		}
	}
	return s.run(ctx, ti, q, fields, len(cs), fill)
}

// prefixed joins names, each with prefix p.
func prefixed(p string, names []string) string {
	if len(names) == 0 {
		return ""
	}
	return p + strings.Join(names, ", "+p)
}

// yvals is ", y.v0, y.v1, ..." for n values.
func yvals(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(", y.v" + strconv.Itoa(i))
	}
	return b.String()
}

// updateOne sets the columns newRow sent on the row that oldFields of old
// identify; stmt builds the statement around the SET list.
func (s *Sink) updateOne(ctx context.Context, ti *tableInfo, oldFields []field, old, newRow schema.Tuple, stmt func(sets string, afterStandIns bool) string) error {
	fields := append([]field(nil), oldFields...)
	var sets []string
	for i, d := range newRow {
		if i >= len(ti.plans) || d.State == schema.Unchanged {
			continue
		}
		f := field{i, 'n'}
		fields = append(fields, f)
		sets = append(sets, ti.cols[i]+" = "+ti.ref(f))
	}
	if len(sets) == 0 {
		return nil
	}
	var key strings.Builder
	key.WriteString("update")
	for _, f := range fields {
		key.WriteString(" " + f.name())
	}
	pre := ti.setsIntervals(fields)
	q := ti.cached(key.String(), func() string { return stmt(strings.Join(sets, ", "), pre) })
	fill := func(a *duckdb.Appender) error {
		s.cv.reset()
		s.vals = s.vals[:0]
		for _, f := range fields {
			tup := old
			if f.of == 'n' {
				tup = newRow
			}
			if err := s.stageValue(ti, f, tup, sentOnly); err != nil {
				return err
			}
		}
		if err := a.AppendRow(s.vals...); err != nil {
			return fmt.Errorf("append: %w", err)
		}
		return nil
	}
	if pre {
		if err := s.run(ctx, ti, ti.cached("standins "+key.String(), func() string { return stmt(ti.standIns(fields), false) }), fields, 1, fill); err != nil {
			return err
		}
	}
	return s.run(ctx, ti, q, fields, 1, fill)
}

// Truncate empties the tables. A table emptied in this transaction has its
// inserted keys checked once, at commit.
func (s *Sink) Truncate(ctx context.Context, tables []*schema.Table) error {
	if !s.inTx {
		return errors.New("duckdb sink: truncate outside a transaction")
	}
	for _, t := range tables {
		name := TableName(t.Schema, t.Name)
		s.touch(t)
		if _, err := s.conn.ExecContext(ctx, "TRUNCATE "+name); err != nil {
			return fmt.Errorf("truncate %s: %w", name, err)
		}
		// Rows loaded into it next (a copy) would each go into the index
		// too: it comes back at the next update once the table is big.
		// (Emptied, the table costs nothing to copy without it.)
		if err := s.shedKeyIndex(ctx, t.Schema, t.Name); err != nil {
			return err
		}
		for _, ti := range s.tables {
			if ti.name == name {
				ti.rows = 0 // (a rollback forgets the plans)
			}
		}
		s.fresh[name] = true
		s.altered[name] = true
	}
	return nil
}

// intKeyRange returns the smallest and largest key of the rows when the
// table has a single integer key column; ok is false otherwise.
func intKeyRange(ti *tableInfo, rows []schema.Tuple) (lo, hi int64, ok bool) {
	if len(ti.keyIdx) != 1 || schema.KindOf(ti.t.Columns[ti.keyIdx[0]].TypeID) != schema.KindInt {
		return 0, 0, false
	}
	k := ti.keyIdx[0]
	switch strings.ToUpper(ti.plans[k].target) { // the column may have been changed to VARCHAR
	case "SMALLINT", "INTEGER", "BIGINT", "UBIGINT", "HUGEINT":
	default:
		return 0, 0, false
	}
	for i, tup := range rows {
		if k >= len(tup) || tup[k].State != schema.Text {
			return 0, 0, false
		}
		v, err := strconv.ParseInt(string(tup[k].Data), 10, 64)
		if err != nil {
			return 0, 0, false
		}
		if i == 0 || v < lo {
			lo = v
		}
		if i == 0 || v > hi {
			hi = v
		}
	}
	return lo, hi, len(rows) > 0
}

// uncreated adds to err, a value a column of ti cannot hold, what to do
// when the open transaction created the table: the failure rolls the
// table back with it, so there is no column to change (helper-104: a
// table that joined the publication stopped every run there).
func (s *Sink) uncreated(ti *tableInfo, col int, err error) string {
	if !s.created[ti.name] || !errors.Is(err, schema.ErrUnstorable) {
		return ""
	}
	how := "with that column VARCHAR and the others as walmirror makes them"
	if col >= 0 {
		// The statement itself (helper-109: "as walmirror makes them" left
		// the user to guess the types).
		how = "with that column VARCHAR: CREATE SCHEMA IF NOT EXISTS " + quote(ti.t.Schema) + "; " + createTable(ti.t, quote(ti.t.Schema)+"."+quote(ti.t.Name), col) + ";"
	}
	return "; but this target transaction creates " + ti.name + ", and rolls it back with this failure, so there is no such table to change yet: " +
		"create it in the DuckDB file yourself (with walmirror stopped), " + how + " and run again with --adopt-tables; or change the value in the source"
}
