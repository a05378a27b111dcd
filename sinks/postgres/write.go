package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walmirror/walmirror/schema"
)

// maxStagedColumns: a table with this many columns or more (PostgreSQL
// allows 1,600) leaves no room for a staging table's group column.
const maxStagedColumns = 1600

// maxPipeline bounds how many ordered row statements go in one round trip.
const maxPipeline = 1000

// empty is a zero-length value that is not NULL (pgconn sends nil as NULL).
var empty = []byte{}

type stmtKey struct {
	t    *schema.Table
	op   schema.Op
	mask string
}

// Write applies one batch: deletes, updates and patches set-wise through
// the staging table, inserts by COPY, then the ordered row changes.
func (s *Sink) Write(ctx context.Context, b *schema.Batch) error {
	defer s.busy()()
	err := s.write(ctx, b)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation: the table's only unique index is its key's
		err = schema.Diverged(b.Table, fmt.Errorf("%w: a row the source inserted is in the copy already (written by someone else?)", err))
	}
	return lockTableFull(err)
}

func (s *Sink) write(ctx context.Context, b *schema.Batch) error {
	if !s.inTx {
		return errors.New("postgres sink: write without a transaction")
	}
	// The main session's last statement is settled before it is used again;
	// a batch for the loader settles it only after staging (loader.go).
	if _, known := s.tables[b.Table]; !known || len(b.Inserts) > 0 ||
		!s.useLoader(len(b.Deletes)+len(b.Updates)+len(b.Patches)) {
		if err := s.settle(); err != nil {
			return err
		}
	}
	ti, err := s.info(ctx, b.Table)
	if err != nil {
		return err
	}
	if len(ti.keyIdx) == 0 {
		if len(b.Deletes)+len(b.Patches) > 0 {
			return fmt.Errorf("%s has no key: deletes and patches by key cannot apply (the source table needs a primary key or REPLICA IDENTITY FULL)", ti.name)
		}
		if len(b.Updates) > 0 {
			return fmt.Errorf("%s has no key: rows cannot be replaced by key", ti.name)
		}
	} else if n := len(b.Deletes) + len(b.Updates) + len(b.Patches); n > 0 && len(ti.cols) >= maxStagedColumns {
		// No staging table can hold the table's columns and the group
		// column: one statement per row instead.
		rows := make([]schema.RowChange, 0, n)
		for _, k := range b.Deletes {
			rows = append(rows, schema.RowChange{Op: schema.Delete, Old: k})
		}
		for _, r := range b.Updates {
			rows = append(rows, schema.RowChange{Op: schema.Update, New: r})
		}
		for _, r := range b.Patches {
			rows = append(rows, schema.RowChange{Op: schema.Update, New: r})
		}
		if err := s.settle(); err != nil {
			return err
		}
		if err := s.ordered(ctx, ti, rows); err != nil {
			return err
		}
	} else if n > 0 {
		if err := s.staged(ctx, ti, b); err != nil {
			return err
		}
	}
	// Inserts after the deletes: a key the source changed to one equal in
	// value but not in text (numeric 1.0 to 1.00, float8 0 to -0, interval
	// '1 day' to '24:00:00', citext case) is a delete and an insert of two
	// keys in one batch, which the target's key index holds equal.
	if len(b.Inserts) > 0 {
		if err := s.settle(); err != nil {
			return err
		}
		if err := s.copyRows(ctx, ti, b.Inserts); err != nil {
			return err
		}
	}
	if len(b.Rows) == 0 {
		return nil
	}
	if err := s.settle(); err != nil {
		return err
	}
	return s.ordered(ctx, ti, b.Rows)
}

// copy streams n rows into the target with one COPY statement.
func (s *Sink) copy(ctx context.Context, pg *pgconn.PgConn, sql string, n int, enc rowEncoder) error {
	_, err := s.stream(ctx, pg, sql, n, enc, false)
	return err
}

// stream runs one COPY of up to n rows; a binary one may stop early (see
// copyReader) and returns how many rows it sent.
func (s *Sink) stream(ctx context.Context, pg *pgconn.PgConn, sql string, n int, enc rowEncoder, bin bool) (int, error) {
	if s.cr == nil {
		s.cr = &copyReader{}
	}
	r := s.cr
	r.reset(n, enc, bin)
	_, err := pg.CopyFrom(ctx, r, sql)
	if err != nil && pg.IsClosed() {
		// pgconn may return before its reading goroutine has stopped: leave
		// that reader to it.
		s.cr = nil
	}
	if r.err != nil {
		return 0, r.err
	}
	return r.stop, err
}

// errNotBinary: a row has a value the binary encoders do not take.
var errNotBinary = errors.New("not encodable in binary")

// copyBinary sends n rows by binary COPY when bin (nil for none) encodes
// them; from the first row it refuses on, the rest goes by text COPY, so
// the server's own input functions judge any value the encoders do not
// fully understand.
func (s *Sink) copyBinary(ctx context.Context, pg *pgconn.PgConn, sql string, n int, bin, text rowEncoder) error {
	if bin == nil {
		return s.copy(ctx, pg, sql, n, text)
	}
	sent, err := s.stream(ctx, pg, sql+" (FORMAT binary)", n, bin, true)
	if err != nil || sent == n {
		return err
	}
	return s.copy(ctx, pg, sql, n-sent, func(buf []byte, i int) ([]byte, error) { return text(buf, sent+i) })
}

// binaryRow appends a complete row in binary COPY form.
func binaryRow(ti *tableInfo, buf []byte, tup schema.Tuple) ([]byte, error) {
	if len(tup) != len(ti.bin) {
		return buf, errNotBinary
	}
	buf = binary.BigEndian.AppendUint16(buf, uint16(len(tup)))
	for i, d := range tup {
		var ok bool
		if buf, ok = appendBinaryField(buf, ti.bin[i], d); !ok {
			return buf, errNotBinary
		}
	}
	return buf, nil
}

// copyRows bulk-loads complete rows into the target table.
func (s *Sink) copyRows(ctx context.Context, ti *tableInfo, rows []schema.Tuple) error {
	var bin rowEncoder
	if ti.bin != nil {
		bin = func(buf []byte, i int) ([]byte, error) { return binaryRow(ti, buf, rows[i]) }
	}
	err := s.copyBinary(ctx, s.conn.PgConn(), ti.copySQL, len(rows), bin, func(buf []byte, i int) ([]byte, error) {
		return fullRow(ti, buf, rows[i])
	})
	if err != nil {
		return fmt.Errorf("copy into %s: %w", ti.name, ti.detail(err))
	}
	return nil
}

// detail adds where the server met an error (for COPY: the line and column).
func detail(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Where != "" {
		return fmt.Errorf("%w (%s)", err, pe.Where)
	}
	return err
}

// detail is detail(err) for a write to ti's table, adding, for a value the
// target refused (SQLSTATE class 22), which of its columns have a type of
// the target's own (an administrator's CREATE TYPE, used in place of text),
// which must accept every value the source sends (helper-92: an enum label
// added on the source stopped every run at the raw error).
func (ti *tableInfo) detail(err error) error {
	err = detail(err)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || !strings.HasPrefix(pe.Code, "22") || ti.t == nil {
		return err
	}
	if strings.Contains(pe.Message, `type interval: "infinity"`) || strings.Contains(pe.Message, `type interval: "-infinity"`) {
		// A PostgreSQL 17+ source into an older target (helper-109: the
		// server's bare text).
		return fmt.Errorf("%w; intervals can be infinite from PostgreSQL 17 on, and this target's server is older: "+
			"copy into a PostgreSQL 17 or newer target, or change those values in the source and make the copy afresh (walmirror drop, then run into an empty target): "+
			"a change already in the source's WAL is sent again at every start (helper-134)", err)
	}
	var own []string
	for i, c := range ti.t.Columns {
		if c.TypeID >= firstGenbkiObjectID && i < len(ti.types) && ti.types[i] != "text" {
			own = append(own, fmt.Sprintf("%s (%s)", ti.cols[i], ti.types[i]))
		}
	}
	if len(own) == 0 {
		return err
	}
	return ownTypesHint(err, own)
}

// ownTypesHint adds to err, a value refused by types of the target's own
// used for columns own ("column (type)"), what to do.
func ownTypesHint(err error, own []string) error {
	return fmt.Errorf("%w; the target's own types are used for %s and must accept every value the source sends: "+
		"make the source's change on the target too (ALTER TYPE ... ADD VALUE, RENAME VALUE or ADD ATTRIBUTE, a domain's constraint), then run again",
		err, strings.Join(own, ", "))
}

// stageTruncateRows: a staging table is emptied by TRUNCATE rather than
// DELETE once it holds this many dead rows.
const stageTruncateRows = 10_000

// Staged rows: g says what a row is for.
const (
	gDelete = 0
	gUpdate = 1
	gPatch  = 2 // and up: one group per set of sent columns
)

// stageFor creates the table's staging table: the group column, then the
// shape's columns with the target columns' names and types. It lives as long
// as the session (emptied after each use) unless a rollback discards it.
func (s *Sink) stageFor(ctx context.Context, ti *tableInfo) (string, error) {
	if ti.stage != "" {
		return ti.stage, nil
	}
	s.nstage++
	name := "pg_temp." + quoteIdent("_walmirror_stage_"+strconv.Itoa(s.nstage))
	var sb strings.Builder
	sb.WriteString("CREATE TEMP TABLE " + name + " AS SELECT 0::int4 AS " + ti.gcol)
	for _, c := range ti.cols {
		sb.WriteString(", t." + c)
	}
	sb.WriteString(" FROM ONLY " + ti.name + " AS t WITH NO DATA")
	if _, err := s.conn.PgConn().Exec(ctx, sb.String()).ReadAll(); err != nil {
		return "", fmt.Errorf("create staging table for %s: %w", ti.name, ti.detail(err))
	}
	ti.stage = name
	return name, nil
}

// stageRef is where a batch was staged: the table, its group column, its
// columns in the shape's order, and what its group numbers start from.
type stageRef struct {
	name, gcol string
	cols       []string
	base       int
}

// is selects the staged rows of group g.
func (st stageRef) is(g int) string { return "s." + st.gcol + " = " + strconv.Itoa(st.base+g) }

// keyMatch is "t.k = s.k AND ..." for the key columns.
func keyMatch(ti *tableInfo, st stageRef) string {
	conds := make([]string, len(ti.keyIdx))
	for i, k := range ti.keyIdx {
		conds[i] = "t." + ti.cols[k] + " = s." + st.cols[k]
	}
	return strings.Join(conds, " AND ")
}

// staged applies deletes, updates and patches: one COPY of all of them into
// a staging table, then one statement per part (and per set of sent
// columns for patches), sent together. A large batch is staged by the
// loader session and its statements' result is read later (loader.go).
func (s *Sink) staged(ctx context.Context, ti *tableInfo, b *schema.Batch) error {
	sp, err := newStagedBatch(ti, b)
	if err != nil {
		return err
	}
	n := len(b.Deletes) + len(b.Updates) + len(b.Patches)
	st, pg, remote, err := s.stageTo(ctx, ti, n, gPatch+len(sp.masks))
	if err != nil {
		return err
	}
	if err := s.copyBinary(ctx, pg, "COPY "+st.name+" FROM STDIN", n, sp.binaryRows(st), sp.textRows(st)); err != nil {
		return fmt.Errorf("stage changes to %s: %w", ti.name, ti.detail(err))
	}
	if remote {
		// The loader committed: now the main session may move on.
		if err := s.settle(); err != nil {
			return err
		}
	}
	var q strings.Builder
	check := sp.writeStatements(&q, st)
	if remote {
		s.pending = &pendingResult{rr: s.conn.PgConn().Exec(ctx, q.String()), what: "apply changes to " + ti.name, check: check}
		return nil
	}
	return s.applyStaged(ctx, ti, st, &q, n, check)
}

// stagedBatch is a batch's staged parts, staged in this order: deletes,
// updates, then patches, each patch in the group of the columns it sends.
type stagedBatch struct {
	ti     *tableInfo
	b      *schema.Batch
	isKey  []bool   // per column of the shape
	masks  []string // columns sent ('1') by the patches of group gPatch+i
	patchG []int    // each patch's group; -1: only the key was sent
}

// newStagedBatch groups the batch's patches by the columns they send (key
// columns are the match and must be sent).
func newStagedBatch(ti *tableInfo, b *schema.Batch) (*stagedBatch, error) {
	sp := &stagedBatch{ti: ti, b: b, isKey: make([]bool, len(ti.cols)), patchG: make([]int, len(b.Patches))}
	for _, k := range ti.keyIdx {
		sp.isKey[k] = true
	}
	groups := map[string]int{}
	mask := make([]byte, len(ti.cols))
	for i, p := range b.Patches {
		if len(p) != len(ti.cols) {
			return nil, fmt.Errorf("patch of %s has %d values for %d columns", ti.name, len(p), len(ti.cols))
		}
		sent := false
		for c, d := range p {
			mask[c] = '0'
			switch {
			case sp.isKey[c]:
				if d.State != schema.Text {
					return nil, fmt.Errorf("patch of %s: key column %q not sent", ti.name, ti.t.Columns[c].Name)
				}
			case d.State != schema.Unchanged:
				mask[c] = '1'
				sent = true
			}
		}
		if !sent {
			sp.patchG[i] = -1 // only the key was sent: nothing to change
			continue
		}
		g, ok := groups[string(mask)]
		if !ok {
			g = gPatch + len(sp.masks)
			groups[string(mask)] = g
			sp.masks = append(sp.masks, string(mask))
		}
		sp.patchG[i] = g
	}
	return sp, nil
}

// row returns staged row i, its group (-1: nothing to stage) and what it is.
func (sp *stagedBatch) row(i int) (g int, tup schema.Tuple, part string) {
	nd, nup := len(sp.b.Deletes), len(sp.b.Updates)
	switch {
	case i < nd:
		return gDelete, sp.b.Deletes[i], "delete"
	case i < nd+nup:
		return gUpdate, sp.b.Updates[i-nd], "update"
	}
	j := i - nd - nup
	return sp.patchG[j], sp.b.Patches[j], "patch"
}

// staysNull reports whether column c of a row of group g is staged as NULL:
// the non-key columns of a delete and the unsent columns of a patch.
func (sp *stagedBatch) staysNull(g, c int, d schema.Datum) bool {
	return g == gDelete && !sp.isKey[c] || g >= gPatch && d.State == schema.Unchanged
}

// textRows encodes staged rows in text COPY form: the group, then the columns.
func (sp *stagedBatch) textRows(st stageRef) rowEncoder {
	ti := sp.ti
	return func(buf []byte, i int) ([]byte, error) {
		g, tup, part := sp.row(i)
		if g < 0 {
			return buf, nil
		}
		if len(tup) != len(ti.cols) {
			return buf, fmt.Errorf("%s row has %d values for %d columns", part, len(tup), len(ti.cols))
		}
		buf = strconv.AppendInt(buf, int64(st.base+g), 10)
		for c, d := range tup {
			buf = append(buf, '\t')
			if sp.staysNull(g, c, d) {
				buf = append(buf, '\\', 'N')
				continue
			}
			var ok bool
			if buf, ok = appendField(buf, d); !ok {
				return buf, fmt.Errorf("%s: column %q: internal error: an unsent (unchanged TOAST) value where a value is needed", part, ti.t.Columns[c].Name)
			}
		}
		return append(buf, '\n'), nil
	}
}

// binaryRows encodes staged rows in binary COPY form, the same fields as
// textRows; nil when the shape has no binary encoding.
func (sp *stagedBatch) binaryRows(st stageRef) rowEncoder {
	ti := sp.ti
	if ti.bin == nil {
		return nil
	}
	return func(buf []byte, i int) ([]byte, error) {
		g, tup, _ := sp.row(i)
		if g < 0 {
			return buf, nil
		}
		if len(tup) != len(ti.cols) {
			return buf, errNotBinary
		}
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(tup)+1))
		buf = binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(buf, 4), uint32(st.base+g))
		for c, d := range tup {
			if sp.staysNull(g, c, d) {
				buf = appendBinaryNull(buf)
				continue
			}
			var ok bool
			if buf, ok = appendBinaryField(buf, ti.bin[c], d); !ok {
				return buf, errNotBinary
			}
		}
		return buf, nil
	}
}

// writeStatements appends the statements that apply the rows staged in st
// and returns the check of their results: every update found its row.
func (sp *stagedBatch) writeStatements(q *strings.Builder, st stageRef) func([]*pgconn.Result) error {
	ti := sp.ti
	// Statements are counted as written: an identifier may hold ";\n"
	// (helper-137: counting them in the text checked the wrong result).
	var n int
	if len(sp.b.Deletes) > 0 {
		writeRanged(q, &n, ti, deleteSQL(ti, st), sp.b.Deletes)
	}
	// Updates replace rows the target holds: a plain UPDATE ... FROM, whose
	// row count proves they were all there.
	nup := len(sp.b.Updates)
	updateAt := -1
	if upd := updateSQL(ti, st); nup > 0 && upd != "" {
		updateAt = writeRanged(q, &n, ti, upd, sp.b.Updates)
	}
	// Patches too: a patch that found no row left the copy without it
	// (helper-135).
	patchAt := make([]int, len(sp.masks))
	patchN := make([]int64, len(sp.masks))
	for _, g := range sp.patchG {
		if g >= gPatch {
			patchN[g-gPatch]++
		}
	}
	for i, m := range sp.masks {
		var sets []string
		for c := range ti.cols {
			if m[c] == '1' {
				sets = append(sets, ti.cols[c]+" = s."+st.cols[c])
			}
		}
		patchAt[i] = n
		fmt.Fprintf(q, "UPDATE %s AS t SET %s FROM %s AS s WHERE %s AND %s;\n",
			ti.name, strings.Join(sets, ", "), st.name, st.is(gPatch+i), keyMatch(ti, st))
		n++
	}
	return func(results []*pgconn.Result) error {
		if updateAt >= 0 {
			if got := results[updateAt].CommandTag.RowsAffected(); got != int64(nup) {
				return schema.Diverged(ti.t, fmt.Errorf("update %s: %d of %d rows updated at the source are missing from the target (changed by someone else?)", ti.name, int64(nup)-got, nup))
			}
		}
		for i, at := range patchAt {
			if got := results[at].CommandTag.RowsAffected(); got != patchN[i] {
				return schema.Diverged(ti.t, fmt.Errorf("update %s: %d of %d rows updated at the source (TOASTed values unchanged) are missing from the target (changed by someone else?)", ti.name, patchN[i]-got, patchN[i]))
			}
		}
		return nil
	}
}

// stageTo picks where a batch of n staged rows in groups groups goes: a
// loader table (remote) when the batch is large and the loader can be
// used, else the shape's staging table in the main session, settled first.
// pg is the session that COPYs the rows.
func (s *Sink) stageTo(ctx context.Context, ti *tableInfo, n, groups int) (st stageRef, pg *pgconn.PgConn, remote bool, err error) {
	if s.useLoader(n) {
		var lt *loadTable
		if lt, st, err = s.loaderTable(ctx, ti, n, groups); err != nil {
			return st, nil, false, err
		}
		if lt != nil {
			return st, s.ld.conn, true, nil
		}
	}
	if err := s.settle(); err != nil {
		return st, nil, false, err
	}
	name, err := s.stageFor(ctx, ti)
	if err != nil {
		return st, nil, false, err
	}
	return stageRef{name: name, gcol: ti.gcol, cols: ti.cols}, s.conn.PgConn(), false, nil
}

// applyStaged runs the statements in q in the main session, emptying the
// staging table st of its n rows in the same round trip, and checks the
// results.
func (s *Sink) applyStaged(ctx context.Context, ti *tableInfo, st stageRef, q *strings.Builder, n int, check func([]*pgconn.Result) error) error {
	// Emptying a small stage with DELETE avoids TRUNCATE's new relation
	// file, but its dead rows stay (nothing vacuums temporary tables) and
	// every later statement scans them: TRUNCATE once they add up.
	if ti.stageDead+n < stageTruncateRows {
		q.WriteString("DELETE FROM " + st.name)
		ti.stageDead += n
	} else {
		q.WriteString("TRUNCATE " + st.name)
		ti.stageDead = 0
	}
	results, err := s.conn.PgConn().Exec(ctx, q.String()).ReadAll()
	if err != nil {
		return fmt.Errorf("apply changes to %s: %w", ti.name, ti.detail(err))
	}
	return check(results)
}

// denseMin is the smallest batch worth a key-range join.
const denseMin = 1000

// writeRanged appends stmt, a join of the staged rows to the table by key,
// and returns the position of its result. When the table has one integer
// key and the batch's keys fill at least half of their range (a bulk update
// or delete of consecutive rows), the join reads that key range once
// instead of looking each key up in the index: the range holds at most
// twice the batch's rows, and a hash join over them costs a fifth less
// than as many index descents. Nested loops are off for that statement only.
func writeRanged(sb *strings.Builder, n *int, ti *tableInfo, stmt string, keys []schema.Tuple) int {
	lo, hi, ok := denseRange(ti, keys)
	if ok {
		sb.WriteString("SET LOCAL enable_nestloop = off;\n")
		*n++
	}
	at := *n
	sb.WriteString(stmt)
	*n++
	if ok {
		k := ti.cols[ti.keyIdx[0]]
		fmt.Fprintf(sb, " AND t.%s BETWEEN %d AND %d;\nRESET enable_nestloop", k, lo, hi)
		*n++
	}
	sb.WriteString(";\n")
	return at
}

// denseRange returns the smallest and largest key of rows when ti has a
// single integer key and the keys fill at least half of that range.
func denseRange(ti *tableInfo, rows []schema.Tuple) (lo, hi int64, ok bool) {
	if !ti.intKey || len(rows) < denseMin {
		return 0, 0, false
	}
	k := ti.keyIdx[0]
	for i, r := range rows {
		if k >= len(r) || r[k].State != schema.Text {
			return 0, 0, false
		}
		v, err := strconv.ParseInt(string(r[k].Data), 10, 64)
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
	return lo, hi, uint64(hi-lo) < 2*uint64(len(rows))
}

// updateSQL replaces the staged updates' rows by key; "" when every column
// is a key column (nothing to change).
func updateSQL(ti *tableInfo, st stageRef) string {
	if len(ti.keyIdx) == len(ti.cols) {
		return ""
	}
	isKey := make([]bool, len(ti.cols))
	for _, k := range ti.keyIdx {
		isKey[k] = true
	}
	var sets []string
	for i, c := range ti.cols {
		if !isKey[i] {
			sets = append(sets, c+" = s."+st.cols[i])
		}
	}
	return "UPDATE " + ti.name + " AS t SET " + strings.Join(sets, ", ") + " FROM " + st.name +
		" AS s WHERE " + st.is(gUpdate) + " AND " + keyMatch(ti, st)
}

func deleteSQL(ti *tableInfo, st stageRef) string {
	return "DELETE FROM " + ti.name + " AS t USING " + st.name + " AS s WHERE " + st.is(gDelete) + " AND " + keyMatch(ti, st)
}

// ordered applies row changes in order: runs of inserts by COPY, runs of
// updates and deletes as prepared statements pipelined in one round trip.
func (s *Sink) ordered(ctx context.Context, ti *tableInfo, rows []schema.RowChange) error {
	for len(rows) > 0 {
		n := 1
		if rows[0].Op == schema.Insert {
			for n < len(rows) && rows[n].Op == schema.Insert {
				n++
			}
			run := rows[:n]
			var bin rowEncoder
			if ti.bin != nil {
				bin = func(buf []byte, i int) ([]byte, error) { return binaryRow(ti, buf, run[i].New) }
			}
			err := s.copyBinary(ctx, s.conn.PgConn(), ti.copySQL, n, bin, func(buf []byte, i int) ([]byte, error) {
				return fullRow(ti, buf, run[i].New)
			})
			if err != nil {
				return fmt.Errorf("copy into %s: %w", ti.name, ti.detail(err))
			}
		} else if set := keylessSet(ti, rows); set > 1 {
			n = set
			if err := s.changeSet(ctx, ti, rows[:n]); err != nil {
				return err
			}
		} else {
			for n < len(rows) && n < maxPipeline && rows[n].Op != schema.Insert && keylessSet(ti, rows[n:]) < 2 {
				n++
			}
			if err := s.pipeline(ctx, ti, rows[:n]); err != nil {
				return err
			}
		}
		rows = rows[n:]
	}
	return nil
}

// keylessSet is the schema.SetRun at the head of rows of a keyless table (0
// for a keyed one, whose ordered changes are few: key changes that left
// TOASTed values unsent).
func keylessSet(ti *tableInfo, rows []schema.RowChange) int {
	if len(ti.keyIdx) > 0 || ti.t.Identity != schema.IdentityFull {
		return 0
	}
	return schema.SetRun(rows)
}

// changeSet applies a schema.SetRun of a keyless table's changes with one
// statement per pattern of NULLs in their old rows (usually one): the
// table's rows that print like some change's old row are numbered per
// distinct row, the changes per old row too, and the n-th change takes the
// n-th row. A change left without a row changes nothing, as one applied
// alone. The changes' values go as text arrays, one per column.
func (s *Sink) changeSet(ctx context.Context, ti *tableInfo, cs []schema.RowChange) error {
	first := cs[0]
	var sent []int // new values sent
	if first.Op == schema.Update {
		for i, d := range first.New {
			if d.State != schema.Unchanged {
				sent = append(sent, i)
			}
		}
		if len(sent) == 0 {
			return nil
		}
	}
	var order []string
	groups := map[string][]schema.RowChange{}
	nulls := make([]byte, len(ti.cols))
	for _, c := range cs {
		if len(c.Old) != len(ti.cols) || c.New != nil && len(c.New) != len(ti.cols) {
			return fmt.Errorf("%s of %s: row has %d values for %d columns", c.Op, ti.name, len(c.Old), len(ti.cols))
		}
		for i, d := range c.Old {
			nulls[i] = '-' // not compared
			switch d.State {
			case schema.Null:
				nulls[i] = 'n'
			case schema.Text:
				nulls[i] = 'v'
			}
		}
		if _, ok := groups[string(nulls)]; !ok {
			order = append(order, string(nulls))
		}
		groups[string(nulls)] = append(groups[string(nulls)], c)
	}
	indexed, err := s.hasLookup(ctx, ti)
	if err != nil {
		return err
	}
	for _, match := range order {
		g := groups[match]
		if !strings.Contains(match, "v") {
			// Nothing to join by: one statement per change.
			if err := s.pipeline(ctx, ti, g); err != nil {
				return err
			}
			continue
		}
		s.params = s.params[:0]
		var buf []byte
		for i, m := range match {
			if m == 'v' {
				buf = textArray(buf[:0], g, func(c schema.RowChange) schema.Datum { return c.Old[i] })
				s.params = append(s.params, append([]byte(nil), buf...))
			}
		}
		for _, i := range sent {
			buf = textArray(buf[:0], g, func(c schema.RowChange) schema.Datum { return c.New[i] })
			s.params = append(s.params, append([]byte(nil), buf...))
		}
		_, err := s.conn.PgConn().ExecParams(ctx, setSQL(ti, first.Op, match, sent, indexed && lookupMatched(ti, match)), s.params, nil, nil, nil).Close()
		if err != nil {
			return fmt.Errorf("apply %d ordered changes to %s: %w", len(g), ti.name, ti.detail(err))
		}
	}
	return nil
}

// lookupMatched reports whether the old rows of match compare every column
// of the lookup index (an unsent one would leave the search to read the
// table once per old row).
func lookupMatched(ti *tableInfo, match string) bool {
	for _, i := range ti.t.Lookup {
		if ti.cmp[i] == cmpEqual && match[i] == '-' {
			return false
		}
	}
	return true
}

// setSQL builds changeSet's statement for old rows with the NULLs of match
// ('v' compared with a value, 'n' NULL, '-' not sent) and new values of the
// columns sent. Parameters: one text array per value compared, then one per
// value set.
func setSQL(ti *tableInfo, op schema.Op, match string, sent []int, indexed bool) string {
	var cols, xk, yk, on, nulls, sets []string
	for i, m := range match {
		switch m {
		case 'n':
			nulls = append(nulls, "t."+ti.cols[i]+" IS NULL")
			continue
		case '-':
			continue
		}
		u := "u.o" + strconv.Itoa(i)
		cols = append(cols, "o"+strconv.Itoa(i))
		x, y := "t."+ti.cols[i], u // as rowSQL compares: by what prints alike
		switch ti.cmp[i] {
		case cmpEqual:
			y = u + "::" + ti.types[i]
		case cmpCast:
			x += "::text"
		default:
			x = "pg_catalog.format('%s', " + x + ")"
		}
		k := "k" + strconv.Itoa(len(xk))
		xk = append(xk, x)
		yk = append(yk, y+" AS "+k)
		on = append(on, "x."+k+" = y."+k)
	}
	var vals []string
	for _, i := range sent {
		v := "n" + strconv.Itoa(i)
		cols = append(cols, v)
		vals = append(vals, "u."+v)
		sets = append(sets, ti.cols[i]+" = y."+v+"::"+ti.types[i])
	}
	arrays := make([]string, len(cols))
	for i := range arrays {
		arrays[i] = "$" + strconv.Itoa(i+1) + "::text[]"
	}
	keys := make([]string, len(xk))
	xs := make([]string, len(xk))
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
		xs[i] = xk[i] + " AS " + keys[i]
	}
	ks := strings.Join(keys, ", ")
	y := "SELECT *, row_number() OVER (PARTITION BY " + ks + ") AS n FROM (SELECT " + strings.Join(append(yk, vals...), ", ") +
		" FROM unnest(" + strings.Join(arrays, ", ") + ") AS u(" + strings.Join(cols, ", ") + ")) AS u"
	where := append(nulls, "("+strings.Join(xk, ", ")+") IN (SELECT "+ks+" FROM y)")
	x := "SELECT t.tableoid AS o, t.ctid AS r, " + strings.Join(xs, ", ") + ", row_number() OVER (PARTITION BY " + strings.Join(xk, ", ") + ") AS n FROM " + ti.name + " AS t WHERE " + strings.Join(where, " AND ")
	if indexed {
		// The table has a lookup index (syncLookup): search it once per
		// distinct old row. The planner, without statistics of a table
		// just copied, reads the whole table for the IN above.
		eq := append([]string(nil), nulls...)
		lk := make([]string, len(xk))
		for i := range xk {
			eq = append(eq, xk[i]+" = d."+keys[i])
			lk[i] = "l." + keys[i]
		}
		x = "SELECT l.*, row_number() OVER (PARTITION BY " + strings.Join(lk, ", ") + ") AS n FROM (SELECT DISTINCT " + ks + " FROM y) AS d CROSS JOIN LATERAL (SELECT t.tableoid AS o, t.ctid AS r, " +
			strings.Join(xs, ", ") + " FROM " + ti.name + " AS t WHERE " + strings.Join(eq, " AND ") + " OFFSET 0) AS l" // OFFSET 0: not pulled up into a join
	}
	from := "x JOIN y ON " + strings.Join(on, " AND ") + " AND x.n = y.n"
	with := "WITH y AS (" + y + "), x AS (" + x + ") "
	if op == schema.Delete {
		return with + "DELETE FROM " + ti.name + " AS t USING " + from + " WHERE t.tableoid = x.o AND t.ctid = x.r"
	}
	return with + "UPDATE " + ti.name + " AS t SET " + strings.Join(sets, ", ") + " FROM " + from + " WHERE t.tableoid = x.o AND t.ctid = x.r"
}

// textArray appends a text[] literal of each change's datum.
func textArray(buf []byte, cs []schema.RowChange, datum func(schema.RowChange) schema.Datum) []byte {
	buf = append(buf, '{')
	for i, c := range cs {
		if i > 0 {
			buf = append(buf, ',')
		}
		d := datum(c)
		if d.State != schema.Text {
			buf = append(buf, "NULL"...)
			continue
		}
		buf = append(buf, '"')
		for _, b := range d.Data {
			if b == '"' || b == '\\' {
				buf = append(buf, '\\')
			}
			buf = append(buf, b)
		}
		buf = append(buf, '"')
	}
	return append(buf, '}')
}

// pipeline runs ordered changes as prepared statements in one round trip.
// Each update of a keyed table must find its row: one that found none left
// the copy without it (helper-137), as the staged updates' row counts show.
func (s *Sink) pipeline(ctx context.Context, ti *tableInfo, run []schema.RowChange) error {
	pg := s.conn.PgConn()
	b := &pgconn.Batch{}
	var updates []int // per statement: the change's index in run if a keyed update, else -1
	for i, c := range run {
		name, err := s.rowStatement(ctx, ti, c)
		if err != nil {
			return err
		}
		if name != "" {
			b.ExecPrepared(name, s.params, nil, nil)
			if c.Op != schema.Update || len(ti.keyIdx) == 0 {
				i = -1
			}
			updates = append(updates, i)
		}
	}
	results, err := pg.ExecBatch(ctx, b).ReadAll()
	if err != nil {
		return fmt.Errorf("apply ordered changes to %s: %w", ti.name, ti.detail(err))
	}
	for at, i := range updates {
		if i >= 0 && at < len(results) && results[at].CommandTag.RowsAffected() == 0 {
			return schema.Diverged(ti.t, fmt.Errorf("update %s: a row updated at the source is missing from the target (changed by someone else?), key %s", ti.name, keyOf(ti, run[i])))
		}
	}
	return nil
}

// keyOf renders an ordered change's old key for a message: (k1, k2)=(v1, v2).
func keyOf(ti *tableInfo, c schema.RowChange) string {
	old := c.Old
	if old == nil {
		old = c.New
	}
	names := make([]string, len(ti.keyIdx))
	vals := make([]string, len(ti.keyIdx))
	for i, k := range ti.keyIdx {
		names[i] = ti.cols[k]
		vals[i] = "NULL"
		if k < len(old) && old[k].State == schema.Text {
			vals[i] = string(old[k].Data)
		}
	}
	return "(" + strings.Join(names, ", ") + ")=(" + strings.Join(vals, ", ") + ")"
}

func param(d schema.Datum) []byte {
	if d.State == schema.Null {
		return nil
	}
	if d.Data == nil {
		return empty
	}
	return d.Data
}

// rowStatement prepares (once per shape and column pattern) the statement
// for one ordered update or delete and leaves its parameters in s.params.
// It returns "" for a change with nothing to do.
func (s *Sink) rowStatement(ctx context.Context, ti *tableInfo, c schema.RowChange) (string, error) {
	s.params = s.params[:0]
	var set []byte // per column: '1' set from c.New
	if c.Op == schema.Update {
		if len(c.New) != len(ti.cols) {
			return "", fmt.Errorf("update of %s has %d values for %d columns", ti.name, len(c.New), len(ti.cols))
		}
		set = make([]byte, len(c.New))
		sent := false
		for i, d := range c.New {
			set[i] = '0'
			if d.State != schema.Unchanged {
				set[i] = '1'
				sent = true
				s.params = append(s.params, param(d))
			}
		}
		if !sent {
			return "", nil
		}
	} else if c.Op != schema.Delete {
		return "", fmt.Errorf("unexpected ordered %s on %s", c.Op, ti.name)
	}
	old := c.Old
	if old == nil && len(ti.keyIdx) > 0 {
		old = c.New
	}
	if len(ti.keyIdx) == 0 && (old == nil || ti.t.Identity != schema.IdentityFull) {
		return "", schema.Unidentified(ti.t, c.Op, old != nil)
	}
	if len(old) != len(ti.cols) {
		return "", fmt.Errorf("%s of %s: old row has %d values for %d columns", c.Op, ti.name, len(old), len(ti.cols))
	}
	// match: per column '-' not compared, 'n' IS NULL, 'v' compared to a value.
	match := make([]byte, len(old))
	for i := range match {
		match[i] = '-'
	}
	if len(ti.keyIdx) > 0 {
		for _, k := range ti.keyIdx {
			if old[k].State != schema.Text {
				return "", fmt.Errorf("%s of %s: key column %q has no value", c.Op, ti.name, ti.t.Columns[k].Name)
			}
			match[k] = 'v'
			s.params = append(s.params, param(old[k]))
		}
	} else {
		compared := false
		for _, kind := range []cmpKind{cmpEqual, cmpCast, cmpFormat} {
			for i, d := range old {
				if ti.cmp[i] != kind {
					continue
				}
				switch d.State {
				case schema.Null:
					match[i], compared = 'n', true
				case schema.Text:
					match[i], compared = 'v', true
					s.params = append(s.params, param(d))
				}
			}
		}
		if !compared {
			return "", fmt.Errorf("%s of %s: the old row has no values to match", c.Op, ti.name)
		}
	}
	k := stmtKey{t: ti.t, op: c.Op, mask: string(set) + "|" + string(match)}
	if name, ok := s.stmts[k]; ok {
		return name, nil
	}
	sql := rowSQL(ti, c.Op, set, match)
	s.nstmt++
	name := "walmirror_" + strconv.Itoa(s.nstmt)
	if _, err := s.conn.PgConn().Prepare(ctx, name, sql, nil); err != nil {
		return "", fmt.Errorf("prepare %s: %w", sql, detail(err))
	}
	s.stmts[k] = name
	return name, nil
}

// rowSQL builds an ordered change's statement. Parameters: the values set,
// in column order, then the values matched, in the order rowStatement
// appends them.
func rowSQL(ti *tableInfo, op schema.Op, set, match []byte) string {
	n := 0
	next := func() string { n++; return "$" + strconv.Itoa(n) }
	var sets []string
	for i, m := range set {
		if m == '1' {
			sets = append(sets, ti.cols[i]+" = "+next())
		}
	}
	var conds []string
	if len(ti.keyIdx) > 0 {
		for _, k := range ti.keyIdx {
			conds = append(conds, ti.cols[k]+" = "+next())
		}
	} else {
		for _, kind := range []cmpKind{cmpEqual, cmpCast, cmpFormat} {
			for i, m := range match {
				if ti.cmp[i] != kind || m == '-' {
					continue
				}
				if m == 'n' {
					conds = append(conds, ti.cols[i]+" IS NULL")
					continue
				}
				switch kind {
				case cmpEqual:
					conds = append(conds, ti.cols[i]+" = "+next())
				case cmpCast:
					conds = append(conds, ti.cols[i]+"::text = "+next()+"::text")
				default:
					conds = append(conds, "pg_catalog.format('%s', "+ti.cols[i]+") = "+next()+"::text")
				}
			}
		}
	}
	where := strings.Join(conds, " AND ")
	if len(ti.keyIdx) == 0 {
		// Exactly one of the equal rows, by its partition and place: a ctid
		// alone names a row in every partition of an adopted partitioned
		// table, or child of an inherited one (helper-141). (A TID scan
		// still finds it.)
		with := "WITH x AS (SELECT tableoid AS o, ctid AS r FROM " + ti.name + " WHERE " + where + " LIMIT 1) "
		if op == schema.Delete {
			return with + "DELETE FROM " + ti.name + " AS t USING x WHERE t.tableoid = x.o AND t.ctid = x.r"
		}
		return with + "UPDATE " + ti.name + " AS t SET " + strings.Join(sets, ", ") + " FROM x WHERE t.tableoid = x.o AND t.ctid = x.r"
	}
	if op == schema.Delete {
		return "DELETE FROM " + ti.name + " WHERE " + where
	}
	return "UPDATE " + ti.name + " SET " + strings.Join(sets, ", ") + " WHERE " + where
}

// Truncate empties the tables, in one statement.
func (s *Sink) Truncate(ctx context.Context, tables []*schema.Table) error {
	defer s.busy()()
	if !s.inTx {
		return errors.New("postgres sink: truncate without a transaction")
	}
	if len(tables) == 0 {
		return nil
	}
	if err := s.settle(); err != nil {
		return err
	}
	names := make([]string, len(tables))
	for i, t := range tables {
		ti, err := s.info(ctx, t)
		if err != nil {
			return err
		}
		names[i] = ti.name
	}
	if _, err := s.conn.PgConn().Exec(ctx, "TRUNCATE "+strings.Join(names, ", ")).ReadAll(); err != nil {
		return fmt.Errorf("truncate %s: %w", strings.Join(names, ", "), detail(err))
	}
	return nil
}
