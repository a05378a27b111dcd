package apply

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/walmirror/walmirror/internal/faultpoint"
	"github.com/walmirror/walmirror/internal/pgtext"
	"github.com/walmirror/walmirror/lsn"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
)

// Online copies (backfills) bring a table's existing rows into the copy
// while the stream keeps flowing: a table that joins the publication, one a
// resync request names, or every table of a chunked initial copy.
//
// The method, per chunk of a table, is exact rather than at-least-once:
//   - the chunk's rows are read in a repeatable-read transaction whose
//     snapshot (pg_current_snapshot) says exactly which source transactions
//     they reflect, and written into the open target transaction at once;
//   - then a watermark is written into the WAL (a non-transactional
//     pg_logical_emit_message), which the stream delivers after every
//     transaction the snapshot could have seen, while the chunk's
//     transaction still holds the table's lock: no schema change commits
//     between the snapshot and the watermark;
//   - a chunk that finds the table in another shape than the stream last
//     described reads no rows: at its watermark the engine takes the
//     snapshot's shape, as if the stream had described the table there
//     (the target never takes a shape the stream has not reached);
//   - until the watermark arrives the target transaction is not committed,
//     and the stream's changes to rows the copy has not reached are held
//     (with no chunk of the table in flight, only their transactions are
//     noted: the next chunk waits until its snapshot sees them);
//   - at the watermark, held changes the snapshot did not see (by xid) are
//     applied on top of the chunk's rows, the others dropped, and the
//     table's progress (the chunk's last key) moves forward in the state
//     committed with them.
//
// Changes to rows the copy has reached are applied as they come. A crash
// loses at most the chunk in flight: its rows were never committed, and the
// held changes it dropped are in every later snapshot.
//
// Chunks go by primary key (or replica identity index) range when every key
// column orders the same in Go as in PostgreSQL (integers, uuid, numeric,
// dates and timestamps, and text and varchar under a collation that sorts
// by bytes: C, POSIX, C.UTF-8); any other table is copied in one chunk.

// fill is one table's online copy.
type fill struct {
	copy    schema.TableCopy
	order   keyOrder
	held    []heldChange // changes to rows not yet copied, in stream order, received while a chunk of the table is in flight
	ordered bool         // order is set for the table's current shape
	// truncXid is the source transaction that last truncated the table: a
	// chunk whose snapshot does not see it yet is read again.
	truncXid uint32
	// emptied: a copy of the table this one replaced (started again in
	// this run) had committed chunks, so the target table holds part of
	// its rows even before this copy's first chunk.
	emptied bool
	// mustSee are transactions with changes to rows not yet copied that
	// are not held: its next chunk waits until its snapshot sees them.
	mustSee []uint32
	// mustSettle, when set, is a transaction every one before which must
	// have ended for the next chunk (TableCopy.MustSettle).
	mustSettle uint32
	// openBound is a transaction id the source assigned when the copy's
	// first chunk was first tried (openTaken): every transaction in
	// progress then has a smaller one, and the first chunk waits until all
	// of those have ended, as PostgreSQL's own subscriber's copy does.
	// Their changes from before the table was published (ALTER
	// PUBLICATION ... ADD TABLE, a widened row filter, a partitioned root's
	// publishing switched do not wait for them) are in no stream, and a
	// snapshot taken while they run does not show them: a transaction open
	// across the join lost them from the copy, exit 0 (helper-93). Not the
	// snapshot's list of running ones: it leaves out ids at or past its
	// xmax, those of a quiet source's newest transactions (helper-147).
	openBound             uint64
	openTaken             bool
	openSince, openLogged time.Time
	// shapeRounds counts the chunks in a row that found the table's shape
	// differing from the stream's (see nextChunk).
	shapeRounds int
	keys        map[string]bool // copy.Keys as a set (hasKey)
	// lockedSince: chunks have found the table locked since then
	// (tableLocked); lockWarned: the log said so.
	lockedSince time.Time
	lockWarned  bool
	// size is the rows its next chunk reads (0: Config.CopyChunkRows);
	// adaptChunk changes it (Config.CopyChunkTime).
	size int
	// whole: the table is read in one chunk (restartUnsentMove).
	whole bool
	// binary says whether chunks of binaryOf (the table's shape) go from
	// the source's binary COPY into the target's (binaryChunks).
	binary   bool
	binaryOf *schema.Table
}

// Bounds of an adaptive chunk size, from Config.CopyChunkRows (the first
// chunk's): a chunk reads at least a chunkShrink-th and at most chunkGrow
// times as many rows.
const (
	chunkShrink = 8
	chunkGrow   = 16
	// chunkHeld is how many changes to rows not yet copied may arrive
	// during a chunk before the next one is made smaller.
	chunkHeld = 10_000
)

type heldChange struct {
	xid uint32
	c   schema.RowChange
}

// chunkWait is a chunk whose rows are written, waiting for its watermark.
type chunkWait struct {
	relid uint32
	token string
	snap  source.XidSnapshot
	last  []string // key of its last row (nil: no rows)
	final bool     // the table has no rows after it
	rows  int
	// shape, when set, is the table as the chunk's snapshot shows it,
	// which the stream has not described yet: the chunk read no rows.
	shape  *schema.Table
	held   int // changes held while it was in flight
	timing chunkTiming
}

// chunkTiming is where a chunk's time went, for the debug log.
type chunkTiming struct {
	began  time.Time
	begin  time.Duration // opening the chunk: lock, snapshot, describe
	rows   time.Duration // reading its rows and writing them
	write  time.Duration // of which writing into the target
	end    time.Duration // writing the watermark
	ended  time.Time     // when the watermark was written
	wait   time.Duration // until the stream delivered it
	commit time.Duration // the target commit (its submission when pipelining)
}

// keyOrder compares keys as PostgreSQL orders them, for the key types where
// that is easy to do exactly; ok is false for any other key.
type keyOrder struct {
	cols  []int     // key column indexes in the table
	kinds []keyKind // per key column, when ok
	ok    bool
	// matchable: the table has a key (not REPLICA IDENTITY FULL), of any
	// types. Keys in the text form the stream gives (pgoutput's, or ::text
	// in a source session with the same settings: source/config.go) match
	// its changes by that text; keys from elsewhere (resync --key, verify)
	// only when ok, which canonical brings to that form.
	matchable bool
}

// keyKind is how keyOrder compares a key column's values.
type keyKind uint8

const (
	keyInt keyKind = iota
	keyUUID
	// Dates and timestamps, in the ISO forms the source's sessions give
	// (DateStyle ISO, TimeZone UTC: source/config.go), with ±infinity: a
	// partitioned table's key holds its partition key, most often a time
	// (helper-102's tables were keyed by (id, ts)), and such a table was
	// copied in one chunk, which a restart read again from the start.
	keyDate
	keyTimestamp
	keyTimestampTZ
	// Text and varchar under a collation that sorts by bytes (C, POSIX,
	// C.UTF-8: code point order, which UTF-8 bytes keep): the source says
	// so per table (source.Chunk.TextKeysBytewise, kept in
	// TableCopy.TextBytes). Others sort by a language's rules.
	keyText
	// numeric, by value (1.5 = 1.50): -Infinity, finite values, Infinity,
	// NaN, as PostgreSQL orders them (cmpNumeric).
	keyNumeric
)

// orderedKind is how keyOrder compares values of type oid; false for a
// type it does not order (text under a collation that does not sort by
// bytes, textBytes false; char(n), floats, others).
func orderedKind(oid uint32, textBytes bool) (keyKind, bool) {
	switch oid {
	case schema.OIDText, schema.OIDVarchar:
		return keyText, textBytes
	case schema.OIDNumeric:
		return keyNumeric, true
	case 20, 21, 23, 26: // int8, int2, int4, oid
		return keyInt, true
	case 2950:
		return keyUUID, true
	case 1082:
		return keyDate, true
	case 1114:
		return keyTimestamp, true
	case 1184:
		return keyTimestampTZ, true
	}
	return 0, false
}

// orderOf is the order of t's key; textBytes: its text and varchar
// columns sort by bytes (TableCopy.TextBytes).
func orderOf(t *schema.Table, textBytes bool) keyOrder {
	var k keyOrder
	other := false
	for i, c := range t.Columns {
		if !c.Key {
			continue
		}
		kind, ok := orderedKind(c.TypeID, textBytes)
		other = other || !ok
		k.kinds = append(k.kinds, kind)
		k.cols = append(k.cols, i)
	}
	k.matchable = len(k.cols) > 0 && t.Identity != schema.IdentityFull
	k.ok = k.matchable && !other
	if !k.ok {
		k.kinds = nil
		if !k.matchable {
			k.cols = nil
		}
	}
	return k
}

// beyond reports whether tup's key is past after (after nil: nothing is
// copied yet, so every key is). A key it cannot read is past.
func (k keyOrder) beyond(tup schema.Tuple, after []string) bool {
	if after == nil {
		return true
	}
	if !k.ok || len(after) != len(k.cols) {
		return true
	}
	for i, ci := range k.cols {
		if ci >= len(tup) || tup[ci].State != schema.Text {
			return true
		}
		if c := k.compare(i, tup[ci].Data, after[i]); c != 0 {
			return c > 0
		}
	}
	return false
}

func (k keyOrder) compare(i int, a []byte, b string) int {
	switch k.kinds[i] {
	case keyUUID, keyText:
		return bytes.Compare(a, []byte(b))
	case keyNumeric:
		c, ok := cmpNumeric(a, []byte(b))
		if !ok { // not in the sessions' output form: say "past"
			return 1
		}
		return c
	case keyDate, keyTimestamp, keyTimestampTZ:
		x, okA := timeKey(k.kinds[i], a)
		y, okB := timeKey(k.kinds[i], []byte(b))
		if !okA || !okB { // not in the sessions' output form: say "past"
			return 1
		}
		if x.inf != y.inf {
			return cmpInt(int64(x.inf), int64(y.inf))
		}
		return cmpInt(x.at, y.at)
	}
	x, errA := strconv.ParseInt(string(a), 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	if errA != nil || errB != nil { // oid above MaxInt64 cannot be; say "past"
		return 1
	}
	return cmpInt(x, y)
}

// readable reports whether compare reads every value of key, a key of
// the table's in its sessions' text form.
func (k keyOrder) readable(key []string) bool {
	if !k.ok || len(key) != len(k.kinds) {
		return false
	}
	for i, v := range key {
		switch k.kinds[i] {
		case keyUUID, keyText:
		case keyNumeric:
			if _, err := pgtext.ParseNumeric([]byte(v), pgtext.Exact); err != nil {
				return false
			}
		case keyInt:
			if _, err := strconv.ParseInt(v, 10, 64); err != nil {
				return false
			}
		default:
			if _, ok := timeKey(k.kinds[i], []byte(v)); !ok {
				return false
			}
		}
	}
	return true
}

// cmpNumeric compares two numeric values in numeric_out's form
// (pgtext.ParseNumeric, Exact) as PostgreSQL orders them: by value (1.5 =
// 1.50), -Infinity first, then finite values, then Infinity, then NaN. ok
// is false when either is not in that form.
func cmpNumeric(a, b []byte) (int, bool) {
	x, errA := pgtext.ParseNumeric(a, pgtext.Exact)
	y, errB := pgtext.ParseNumeric(b, pgtext.Exact)
	if errA != nil || errB != nil {
		return 0, false
	}
	if c := cmpInt(numericRank(x), numericRank(y)); c != 0 || x.NaN || x.Inf != pgtext.Finite {
		return c, true
	}
	if x.Neg != y.Neg {
		if x.Neg {
			return -1, true
		}
		return 1, true
	}
	// numeric_out prints no superfluous leading zero (but "0.5"), nor a
	// negative zero; a fraction's trailing zeros are its scale.
	xi, yi := bytes.TrimLeft(x.Int, "0"), bytes.TrimLeft(y.Int, "0")
	c := cmpInt(int64(len(xi)), int64(len(yi)))
	if c == 0 {
		c = bytes.Compare(xi, yi)
	}
	if c == 0 {
		c = bytes.Compare(bytes.TrimRight(x.Frac, "0"), bytes.TrimRight(y.Frac, "0"))
	}
	if x.Neg {
		c = -c
	}
	return c, true
}

// numericRank orders numeric's special values: -Infinity, finite values,
// Infinity, NaN.
func numericRank(n pgtext.Numeric) int64 {
	if n.NaN {
		return 2
	}
	return int64(n.Inf)
}

// instant is a date (days) or timestamp (microseconds) as PostgreSQL
// orders them: -infinity, then finite values, then infinity.
type instant struct {
	inf pgtext.Inf
	at  int64
}

// timeKey reads a date or timestamp key value of kind; false when it is
// not one.
func timeKey(kind keyKind, b []byte) (instant, bool) {
	var v instant
	var err error
	switch kind {
	case keyDate:
		v.at, v.inf, err = pgtext.ParseDate(b, pgtext.Lenient)
	case keyTimestamp:
		v.at, v.inf, err = pgtext.ParseTimestamp(b, pgtext.Lenient)
	default:
		v.at, v.inf, err = pgtext.ParseTimestampTZ(b, pgtext.Lenient)
	}
	return v, err == nil
}

// canonical is key in the text form pgoutput gives the key's columns
// (keyValue; values of other types as they are); ok is false when a value
// is not of its column's type.
func (k keyOrder) canonical(t *schema.Table, key []string) ([]string, bool) {
	if !k.matchable || len(key) != len(k.cols) {
		return nil, false
	}
	out := make([]string, len(key))
	for i, v := range key {
		s, ok, exact := keyValue(t.Columns[k.cols[i]].TypeID, v)
		if !exact {
			s, ok = v, true // in the stream's form already
		}
		if !ok {
			return nil, false
		}
		out[i] = s
	}
	return out, true
}

// keyValue is v, a value of a key column of type oid, in the text form
// pgoutput gives it: integers in decimal, uuids in lowercase with hyphens,
// text and varchar as they are (UTF-8 without NUL). ok is false when v is
// no value of the type; exact is false for other types, whose values have
// other spellings than the stream's (numeric 1.0 and 1.00, a timestamptz
// in another time zone).
func keyValue(oid uint32, v string) (s string, ok, exact bool) {
	bits, lo := 64, int64(math.MinInt64)
	switch oid {
	case 2950: // uuid
		hex := strings.ToLower(strings.NewReplacer("-", "", "{", "", "}", "").Replace(strings.TrimSpace(v)))
		if len(hex) != 32 || strings.Trim(hex, "0123456789abcdef") != "" {
			return "", false, true
		}
		return hex[:8] + "-" + hex[8:12] + "-" + hex[12:16] + "-" + hex[16:20] + "-" + hex[20:], true, true
	case 25, 1043: // text, varchar
		return v, utf8.ValidString(v) && !strings.Contains(v, "\x00"), true
	case 20:
	case 21:
		bits, lo = 16, math.MinInt16
	case 23:
		bits, lo = 32, math.MinInt32
	case 26: // oid: unsigned 32 bits
		bits, lo = 33, 0
	default:
		return v, true, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, bits)
	if err != nil || n < lo {
		return "", false, true
	}
	return strconv.FormatInt(n, 10), true, true
}

// CheckResyncKeys checks keys (each the values of t's key columns, in
// column order) for a resync of rows of t, as walmirror resync does before
// it writes the request: it returns them in the form the stream gives keys,
// or exact false when t's key cannot be matched exactly (columns other
// than integers, uuids, text and varchar, or no key): the whole table is
// then copied again. A key with the wrong number of values, or a value its
// column cannot hold, is an error naming it.
func CheckResyncKeys(t *schema.Table, keys [][]string) (canon [][]string, exact bool, err error) {
	k := orderOf(t, false)
	if !k.matchable || !exactKeys(t) {
		return nil, false, nil
	}
	var cols []string
	for _, i := range k.cols {
		cols = append(cols, t.Columns[i].Name+" "+keyTypeName(t.Columns[i].TypeID))
	}
	for _, key := range keys {
		if len(key) != len(k.cols) {
			return nil, false, fmt.Errorf("--key %s has %d values; the key of %s has %d columns (%s), given in that order, separated by commas",
				strings.Join(key, ","), len(key), t.QualifiedName(), len(k.cols), strings.Join(cols, ", "))
		}
		c, ok := k.canonical(t, key)
		if !ok {
			return nil, false, fmt.Errorf("--key %s is not a key of %s: its key is (%s)", strings.Join(key, ","), t.QualifiedName(), strings.Join(cols, ", "))
		}
		canon = append(canon, c)
	}
	return canon, true, nil
}

func keyTypeName(oid uint32) string {
	switch oid {
	case 20:
		return "bigint"
	case 21:
		return "smallint"
	case 23:
		return "integer"
	case 26:
		return "oid"
	case 2950:
		return "uuid"
	case 25:
		return "text"
	case 1043:
		return "varchar"
	}
	return "type " + strconv.FormatUint(uint64(oid), 10)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// keyTuple is the tuple that carries a change's key before the change.
func keyTuple(c schema.RowChange) schema.Tuple {
	if c.Old != nil {
		return c.Old
	}
	return c.New
}

// newKeyTuple is the tuple that carries an UPDATE's key after the change
// (c.Old set): a key column stored out of line goes unsent in the new row
// when the key kept its value (unchanged TOAST), and in full in the old
// key, which PostgreSQL logs for that reason. Read as unsent, a long text
// key looked moved across the copy's progress, which started the copy
// over.
func newKeyTuple(c schema.RowChange) schema.Tuple {
	if c.New.HasUnchanged() {
		return fillUnchanged(c.New, c.Old)
	}
	return c.New
}

// resyncRequest is the content of a ResyncPrefix message.
type resyncRequest struct {
	Slot   string   `json:"slot"`
	RelIDs []uint32 `json:"relids"`
	Tables []string `json:"tables"` // for the log
	// Keys, per table (nil: the whole table), limits its copy to these
	// rows (TableCopy.Keys).
	Keys [][][]string `json:"keys,omitempty"`
}

// EncodeResync is the message `walmirror resync` writes into the WAL.
func EncodeResync(slot string, relids []uint32, names []string) string {
	return EncodeResyncKeys(slot, relids, names, nil)
}

// EncodeResyncKeys is a resync request that copies again only the rows
// with the given keys of each table (keys[i] for relids[i]; nil or a
// missing entry: the whole table). A key is the key columns' values in
// PostgreSQL's text form, in key column order. A table whose key is not
// all integers or uuids, or whose rows move into or out of the set while
// they are copied, is copied whole instead.
func EncodeResyncKeys(slot string, relids []uint32, names []string, keys [][][]string) string {
	b, _ := json.Marshal(resyncRequest{Slot: slot, RelIDs: relids, Tables: names, Keys: keys})
	return string(b)
}

// startFill begins (or begins again) an online copy of relid.
func (e *engine) startFill(relid uint32, name string, estimate int64, reason string) {
	e.beginFill(relid, name, estimate, reason, nil)
}

// requestKeys starts a copy of the rows of relid with the given keys, or
// of the whole table when the copy does not hold it (rows alone would
// leave it partial).
func (e *engine) requestKeys(ctx context.Context, relid uint32, name string, keys [][]string) error {
	if _, filling := e.fills[relid]; !filling {
		have, err := e.copied(ctx, relid)
		if err != nil {
			return err
		}
		if !have {
			e.startFill(relid, name, -1, "resync of rows requested for a table the copy does not hold")
			return nil
		}
	}
	e.startKeysFill(relid, name, keys, "resync of rows requested")
	return nil
}

// startKeysFill begins an online copy of the rows of relid with the given
// keys; with a copy of the table already under way, the rows join it.
func (e *engine) startKeysFill(relid uint32, name string, keys [][]string, reason string) {
	if old := e.fills[relid]; old != nil {
		if old.copy.Keys == nil {
			return // the whole table is being copied
		}
		seen := map[string]bool{}
		var all [][]string
		for _, k := range append(slices.Clone(old.copy.Keys), keys...) {
			if s := strings.Join(k, "\x00"); !seen[s] {
				seen[s] = true
				all = append(all, k)
			}
		}
		keys = all
	}
	e.beginFill(relid, name, -1, reason, keys)
}

func (e *engine) beginFill(relid uint32, name string, estimate int64, reason string, keys [][]string) {
	if e.inflight != nil && e.inflight.relid == relid {
		e.inflight = nil // its watermark will be ignored
	}
	f := &fill{copy: schema.TableCopy{RelID: relid, Table: name, Estimate: estimate, Reason: reason, Keys: keys}}
	prev := e.fills[relid]
	if old := prev; old != nil {
		// A copy that starts again is still the table's initial one for
		// status (initial_copy_complete), whatever made it start again.
		f.copy.Initial = old.copy.PartOfInitial() && reason != schema.InitialCopy
		f.truncXid = old.truncXid
		f.emptied = old.emptied || old.copy.Chunks > 0
		// Its held changes go: the copy's next snapshot has them, once it
		// sees their transactions (a commit the stream delivered can still
		// be on its way to being visible).
		f.mustSee, f.mustSettle = old.mustSee, old.mustSettle
		for _, h := range old.held {
			e.see(f, h.xid)
		}
	}
	// The target table is emptied by the first chunk, in the transaction
	// that writes its rows; until then changes to the table are held.
	if _, ok := e.fills[relid]; !ok {
		e.fillOrder = append(e.fillOrder, relid)
	}
	e.fills[relid] = f
	e.copiedCache[relid] = false
	e.fillsChanged = true
	if keys != nil {
		if prev != nil && prev.copy.Keys != nil {
			// Said once per copy, not once per key joining it.
			e.log.Debug("more rows join an online copy", "table", name, "reason", reason, "rows", len(keys))
			return
		}
		e.log.Info("copying rows again online", "table", name, "reason", reason, "rows", len(keys))
		return
	}
	e.log.Info("copying table online", "table", name, "reason", reason, "estimated_rows", estimate)
}

// fillsState is the Copies part of the state to commit.
func (e *engine) fillsState() []schema.TableCopy {
	if len(e.fillOrder) == 0 {
		return nil
	}
	out := make([]schema.TableCopy, 0, len(e.fillOrder))
	for _, id := range e.fillOrder {
		f := e.fills[id]
		c := f.copy
		c.MustSee = slices.Clone(f.mustSee)
		if f.truncXid != 0 && !slices.Contains(c.MustSee, f.truncXid) {
			c.MustSee = append(c.MustSee, f.truncXid)
		}
		if c.MustSettle = f.mustSettle; len(c.MustSee) > maxStoredMustSee {
			// Many (a first chunk waiting long under writes): stored as
			// the newest, which every one of them is older than or is.
			for _, x := range c.MustSee {
				if c.MustSettle == 0 || int32(x-c.MustSettle) > 0 {
					c.MustSettle = x
				}
			}
			c.MustSee = nil
		}
		out = append(out, c)
	}
	return out
}

// loadFills resumes the stored online copies.
func (e *engine) loadFills(copies []schema.TableCopy) {
	for _, c := range copies {
		if c.Chunks > 0 {
			e.log.Info("resuming online copy after its last committed chunk", "table", c.Table, "chunks_done", c.Chunks, "rows_done", c.Rows)
		}
		// Transactions the run before dropped changes of (or that
		// truncated the table) may not show yet: the next chunk waits for
		// them, as that run's would have. Before, they went with that
		// run: a commit waiting for a synchronous standby, its change to a
		// row past the copy's progress dropped and the position past it,
		// and the resumed copy read the row without it, exit 0
		// (helper-124).
		f := &fill{copy: c, mustSee: c.MustSee, mustSettle: c.MustSettle}
		f.copy.MustSee, f.copy.MustSettle = nil, 0
		e.fills[c.RelID] = f
		e.fillOrder = append(e.fillOrder, c.RelID)
		e.copiedCache[c.RelID] = false
	}
}

// route decides about a change to a table being copied: it returns true
// when the change is held (or dropped), false when it is to be applied now.
func (e *engine) route(ctx context.Context, f *fill, t *schema.Table, c schema.RowChange) (bool, error) {
	if !f.ordered {
		f.order, f.ordered = orderOf(t, f.copy.TextBytes), true
	}
	if f.copy.Keys != nil && f.order.matchable {
		in := f.hasKey(t, keyTuple(c))
		out := in
		if c.Op == schema.Update && c.Old != nil {
			out = f.hasKey(t, c.New)
		}
		switch {
		case !in && !out:
			return false, nil
		case in && out:
			return e.hold(f, c), nil
		}
		e.startFill(t.ID, f.copy.Table, -1, "a key moved into or out of the rows being copied again")
		return e.hold(e.fills[t.ID], c), nil
	}
	if f.copy.After == nil || !f.order.ok {
		return e.hold(f, c), nil
	}
	before := f.order.beyond(keyTuple(c), f.copy.After)
	after := before
	if c.Op == schema.Update && c.Old != nil {
		after = f.order.beyond(newKeyTuple(c), f.copy.After)
	}
	switch {
	case !before && !after:
		return false, nil
	case before && after:
		return e.hold(f, c), nil
	}
	// A key moved across the copy's frontier: the row left one side and
	// entered the other. Its old key's row goes now (copied already) or is
	// held like any change ahead of the copy; its new row is applied now
	// (behind the frontier) or held. Restarting the table instead kept a
	// copy from ever finishing while an application changed keys.
	if del, ins, ok := moved(c); ok {
		if before {
			e.hold(f, del)
			return true, e.buffer(ctx, t.ID, t, ins)
		}
		if err := e.buffer(ctx, t.ID, t, del); err != nil {
			return true, err
		}
		return e.hold(f, ins), nil
	}
	// Its unchanged TOAST values are not in it: start the table again.
	e.restartUnsentMove(t.ID, f)
	return e.hold(e.fills[t.ID], c), nil
}

// restartUnsentMove starts the copy of f's table again: a key moved across
// its progress, and the moved row's large values went unsent (unchanged
// TOAST), which only the source has. Under a workload that keeps moving
// such keys a chunked copy never finished (helper-81: nine restarts in 40
// s, exit 0 never reached); from the second restart the table is read in
// one chunk, across which no key can move: the stream waits while it is
// read, as for any chunk.
// The count is kept for the run (engine.unsentMoves), across reconnects:
// a crash or a restart of walmirror resets it.
func (e *engine) restartUnsentMove(relid uint32, f *fill) {
	if e.unsentMoves == nil {
		e.unsentMoves = map[uint32]int{}
	}
	e.unsentMoves[relid]++
	moves := e.unsentMoves[relid]
	e.startFill(relid, f.copy.Table, f.copy.Estimate, "a key moved across the copy's progress, its row's large values unsent")
	if moves >= 2 {
		e.fills[relid].whole = true
		e.log.Info("copying the table again in one chunk: keys keep moving across the copy's progress with large values unsent",
			"table", f.copy.Table, "restarts", moves)
	}
}

// exactKeys says whether every key column of t prints each value one way
// (ExactKeyType), so a row read by key has the key asked for, byte for
// byte, when it is that row.
func exactKeys(t *schema.Table) bool {
	for _, i := range t.KeyIndexes() {
		if !ExactKeyType(t.Columns[i].TypeID) {
			return false
		}
	}
	return true
}

// ExactKeyType says whether the engine copies rows by key exactly for a key
// column of type oid (integers, uuid, text, varchar): each value has one
// text form, the stream's. Other types' values have other spellings
// (numeric 1.0 and 1.00), so a table keyed by them is copied whole.
func ExactKeyType(oid uint32) bool {
	_, _, exact := keyValue(oid, "")
	return exact
}

// moved splits an UPDATE that changed its row's key into the DELETE of the
// old key and the INSERT of the new row. ok is false when the new row
// lacks unchanged TOASTed values (only the source has them) or c is no
// such UPDATE.
func moved(c schema.RowChange) (del, ins schema.RowChange, ok bool) {
	if c.Op != schema.Update || c.Old == nil || c.New.HasUnchanged() {
		return del, ins, false
	}
	return schema.RowChange{Op: schema.Delete, Old: c.Old}, schema.RowChange{Op: schema.Insert, New: c.New}, true
}

// lockWarnAfter is how long a table's copy waits for a lock before the
// log says who holds it.
const lockWarnAfter = 30 * time.Second

// tableLocked puts a chunk that found its table locked off for a second,
// and past lockWarnAfter says so once, naming the lock's holders: until
// then the copy waits silently, and so do WaitFor, /wait and /readyz.
func (e *engine) tableLocked(ctx context.Context, f *fill) {
	e.retryAt = time.Now().Add(time.Second)
	if f.lockedSince.IsZero() {
		f.lockedSince = time.Now()
	}
	e.log.Debug("table locked; chunk read later", "table", f.copy.Table)
	if f.lockWarned || time.Since(f.lockedSince) < lockWarnAfter {
		return
	}
	f.lockWarned = true
	holders := e.lockHolders(ctx, f.copy.RelID)
	e.log.Warn("the online copy of a table waits for a lock another session holds on it: changes to other tables keep streaming, but the copy, and waits for a position (/wait, /readyz), wait until that session ends",
		"table", f.copy.Table, "waiting", time.Since(f.lockedSince).Round(time.Second), "holders", holders)
}

// lockHolders names who holds the lock on relid (0: on any table) that a
// chunk or a listing waits for, as the copier can tell.
func (e *engine) lockHolders(ctx context.Context, relid uint32) string {
	if lr, ok := e.copier.(interface {
		LockHolders(context.Context, uint32) (string, error)
	}); ok {
		if h, err := lr.LockHolders(ctx, relid); err == nil && h != "" {
			return h
		}
	}
	return "unknown (see pg_locks)"
}

// listLocked notes a listing of the publication that a lock held on a
// published table stopped, and past lockWarnAfter says which (once): a load
// that began with TRUNCATE, or a prepared transaction, can hold one for
// hours, and a run bounded by --stop-at-lsn waits for a listing to end
// (before, it waited with nothing said, helper-103).
func (e *engine) listLocked(ctx context.Context) {
	if e.listStuck.IsZero() {
		e.listStuck = time.Now()
	}
	if e.listWarned || time.Since(e.listStuck) < lockWarnAfter {
		return
	}
	e.listWarned = true
	holders := e.lockHolders(ctx, 0)
	e.log.Warn("the publication cannot be listed while another session holds a lock on a published table: changes keep streaming, but tables that joined the publication or were rewritten are looked for once it is released, and a run bounded by --stop-at-lsn waits for that",
		"waiting", time.Since(e.listStuck).Round(time.Second), "holders", holders)
}

// keyRow is a row of t holding key (the key columns' text, in order) in
// its key columns, for a delete by key.
func keyRow(t *schema.Table, key []string) (schema.Tuple, error) {
	idx := t.KeyIndexes()
	if len(key) != len(idx) {
		return nil, fmt.Errorf("copy rows of %s again: a key has %d columns, the table's key %d", t.QualifiedName(), len(key), len(idx))
	}
	row := make(schema.Tuple, len(t.Columns))
	for i := range row {
		row[i].State = schema.Null
	}
	for i, k := range idx {
		row[k] = schema.Datum{State: schema.Text, Data: []byte(key[i])}
	}
	return row, nil
}

// hasKey reports whether tup's key is one of the fill's Keys.
func (f *fill) hasKey(t *schema.Table, tup schema.Tuple) bool {
	if f.keys == nil {
		f.keys = make(map[string]bool, len(f.copy.Keys))
		for _, k := range f.copy.Keys {
			f.keys[strings.Join(k, "\x00")] = true
		}
	}
	var b strings.Builder
	for i, k := range t.KeyIndexes() {
		if i > 0 {
			b.WriteString("\x00")
		}
		if k < len(tup) {
			b.Write(tup[k].Data)
		}
	}
	return f.keys[b.String()]
}

// hold keeps a change to rows the copy has not reached, unless the chunk in
// flight for the table saw it (then the chunk, or a later one, has it).
// With no chunk of the table in flight, only its transaction is kept: the
// next chunk's snapshot has the change once it sees that transaction (its
// commit, which the stream delivered, can still be on its way to being
// visible), so held rows stay bounded by what arrives during one chunk.
func (e *engine) hold(f *fill, c schema.RowChange) bool {
	if w := e.inflight; w != nil && w.relid == f.copy.RelID && w.shape == nil {
		if !w.snap.Sees(e.xid) {
			f.held = append(f.held, heldChange{xid: e.xid, c: c})
		}
		return true
	}
	e.see(f, e.xid)
	return true
}

// unseenXids are source transactions the stream delivered that no snapshot
// taken since has shown yet. A commit reaches the stream once it is in the
// WAL, before other sessions' snapshots show it: at once normally, after
// the wait for a synchronous standby with one (the transaction's xid is
// then at or past the snapshot's xmax, in no list of running ones). A
// snapshot taken meanwhile is older than the copy: reading rows with it
// lost that transaction's (a table copied again, helper-65), or found keys
// it wrote missing (a partitioned table's tracked keys, deleted from the
// copy), exit 0.
type unseenXids struct{ xids []uint32 }

// maxUnseen bounds the transactions kept between two snapshots; past it the
// oldest go (one still unseen by then is a stall of thousands of later
// commits, which a synchronous standby's wait is not: every commit waits).
const maxUnseen = 1 << 16

func (u *unseenXids) add(xid uint32) {
	if len(u.xids) >= maxUnseen {
		u.xids = append(u.xids[:0], u.xids[maxUnseen/4:]...)
	}
	u.xids = append(u.xids, xid)
}

// unsettled says whether ch's snapshot is older than the copy: it does not
// show a transaction the stream delivered. Such a chunk is read again
// shortly. Those it shows are forgotten: later snapshots show them too.
func (e *engine) unsettled(ch *source.Chunk) bool {
	e.unseen.xids = slices.DeleteFunc(e.unseen.xids, ch.Snapshot.Sees)
	return len(e.unseen.xids) > 0
}

// mayMissOpen says whether a copy for reason may lack changes of source
// transactions open when it began (fill.open): not a chunked initial copy,
// whose slot became consistent only once every transaction running at its
// creation had ended, its tables published all along, so that a long
// transaction on the source does not hold it up. (A resync's table may
// have joined the publication just before.)
func mayMissOpen(reason string) bool {
	return reason != schema.InitialCopy
}

// takeOpen notes, before f's first chunk is first tried, the bound of the
// source transactions open then (fill.openBound).
func (e *engine) takeOpen(ctx context.Context, f *fill) error {
	if f.openTaken || f.copy.Chunks > 0 || f.copy.After != nil || !mayMissOpen(f.copy.Reason) {
		return nil
	}
	x, err := e.copier.XidNow(ctx)
	if err != nil {
		return err
	}
	f.openBound, f.openTaken = x, true
	return nil
}

// waitOpen says whether f's first chunk must wait for transactions open
// when it was first tried (fill.openBound, taken only for a copy that may
// miss them); snap is this try's snapshot.
func (e *engine) waitOpen(f *fill, snap source.XidSnapshot) bool {
	if !f.openTaken || snap.Xmin > f.openBound {
		return false
	}
	now := time.Now()
	if f.openSince.IsZero() {
		f.openSince, f.openLogged = now, now
	} else if now.Sub(f.openLogged) >= 10*time.Second {
		f.openLogged = now.Add(50 * time.Second) // then every minute
		e.log.Info("online copy waits for source transactions that were open when it began to end (their changes from before the table was published are in no stream)",
			"table", f.copy.Table, "oldest_xid", snap.Xmin, "waiting", now.Sub(f.openSince).Round(time.Second))
	}
	e.retryAt = now.Add(100 * time.Millisecond)
	return true
}

// maxStoredMustSee bounds the transactions stored with a copy one by one
// (TableCopy.MustSee), which every commit writes while the copy lasts.
const maxStoredMustSee = 1024

// keyNums are the attnums of t's key columns (nil when t has none, or its
// attnums are not all known).
func keyNums(t *schema.Table) []int16 {
	if t == nil {
		return nil
	}
	var out []int16
	for i, c := range t.Columns {
		if !c.Key {
			continue
		}
		if i >= len(t.Nums) || t.Nums[i] == 0 {
			return nil
		}
		out = append(out, t.Nums[i])
	}
	return out
}

// see notes that f's next snapshot must see xid. The list is stored with
// the copy's progress (TableCopy.MustSee) by the next commit.
func (e *engine) see(f *fill, xid uint32) {
	if n := len(f.mustSee); n == 0 || f.mustSee[n-1] != xid {
		f.mustSee = append(f.mustSee, xid)
		e.fillsChanged = true
	}
}

// nextChunk reads the next chunk of the first table waiting to be copied
// into the open target transaction and writes its watermark. Called only
// between source transactions, with the stream caught up.
// maxChunkLag is how far behind the source's WAL the stream may be for a
// chunk to start; maxChunkDefer how long chunks wait for it at most.
const (
	maxChunkLag   = 16 << 20
	maxChunkDefer = time.Minute
)

// walPositioner reads where the source's WAL ends now (source.Copier).
type walPositioner interface {
	WALPosition(ctx context.Context) (lsn.LSN, error)
}

// farBehind says whether the next chunk should wait because the stream is
// far behind the source: a chunk's rows commit with its watermark, written
// at the WAL's end now, and no target transaction commits until the stream
// reaches it. Started in a backlog, a chunk held the copy's position still
// for minutes, and a walmirror restarted every few seconds (a liveness
// probe, a crash loop) never got past it (helper-72). Chunks wait while the
// stream catches up, for maxChunkDefer at most (a source that stays that
// far ahead still gets its copies made).
func (e *engine) farBehind(ctx context.Context) (bool, error) {
	w, ok := e.copier.(walPositioner)
	if !ok {
		return false, nil
	}
	end, err := w.WALPosition(ctx)
	if err != nil {
		return false, err
	}
	if end <= max(e.lastEnd, e.keepaliveEnd)+maxChunkLag {
		e.behindSince = time.Time{}
		return false, nil
	}
	if e.behindSince.IsZero() {
		e.behindSince = time.Now()
		e.log.Debug("online copies wait for the stream to catch up with the source (a chunk holds the target transaction open until the stream reaches it)",
			"source_wal", end, "received", max(e.lastEnd, e.keepaliveEnd))
	}
	if time.Since(e.behindSince) >= maxChunkDefer {
		return false, nil
	}
	e.retryAt = time.Now().Add(500 * time.Millisecond)
	return true, nil
}

func (e *engine) nextChunk(ctx context.Context) error {
	if len(e.fillOrder) == 0 {
		e.behindSince = time.Time{} // the next copy waits for a backlog afresh
	}
	if e.inflight != nil || len(e.fillOrder) == 0 || e.copier == nil {
		return nil
	}
	if !e.retryAt.IsZero() && time.Now().Before(e.retryAt) {
		return nil
	}
	if wait, err := e.farBehind(ctx); err != nil || wait {
		return err
	}
	relid := e.fillOrder[0]
	f := e.fills[relid]
	if err := e.takeOpen(ctx, f); err != nil {
		return err
	}
	began := time.Now()
	ch, err := e.copier.BeginChunk(ctx, relid)
	if source.IsLockTimeout(err) {
		// DDL holds the table: read it a little later, the stream flowing.
		e.tableLocked(ctx, f)
		return nil
	}
	if err != nil {
		return err
	}
	defer ch.Abort(context.WithoutCancel(ctx))
	for _, o := range e.fills {
		// Ended before this snapshot: every later one sees them.
		o.mustSee = slices.DeleteFunc(o.mustSee, ch.Snapshot.Settled)
		if o.mustSettle != 0 && ch.Snapshot.Settled(o.mustSettle) {
			o.mustSettle = 0
		}
	}
	if ch.Snapshot.Xmax != 0 && e.unsettled(ch) {
		e.retryAt = time.Now().Add(10 * time.Millisecond)
		return nil
	}
	if ch.Snapshot.Xmax != 0 {
		// The stream delivered these transactions; a snapshot taken while
		// their commits are still being made visible does not show them
		// (nor, for a table created with its first rows, the table: it
		// would look unpublished). Read again shortly.
		for _, xid := range f.mustSee {
			if !ch.Snapshot.Sees(xid) {
				e.retryAt = time.Now().Add(10 * time.Millisecond)
				return nil
			}
		}
		if f.truncXid != 0 && !ch.Snapshot.Sees(f.truncXid) || f.mustSettle != 0 && !ch.Snapshot.Settled(f.mustSettle) {
			e.retryAt = time.Now().Add(10 * time.Millisecond)
			return nil
		}
	}
	if ch.Published && e.waitOpen(f, ch.Snapshot) {
		return nil
	}
	if !ch.Published {
		if f.copy.Chunks > 0 || f.emptied {
			// The first chunk emptied the target table: it now holds only
			// the rows of the chunks done, and nothing will complete it.
			e.log.Warn("table left the publication (or was dropped) part-way through its copy: the copy of it holds only the rows copied so far, "+
				"and is made afresh if the table joins again", "table", f.copy.Table, "chunks_done", f.copy.Chunks, "rows_done", f.copy.Rows)
		} else if f.copy.Reason == "resync requested" && e.knownName(relid) == "" {
			// A table this copy never held: the request was resolved
			// against another publication (helper-98: said as an info
			// line naming the table "left", the request seemingly taken).
			e.log.Warn("a resync request names a table this copy's publication does not publish: nothing copied (walmirror resync looks tables up in its --publication: pass the copy's --target or --publication)",
				"table", f.copy.Table, "publication", e.state.Publication)
		} else {
			e.log.Info("table left the publication before its copy began", "table", f.copy.Table)
		}
		e.finishFill(relid)
		return e.forget(ctx, relid)
	}
	if e.links != nil && !e.links.valid(relid, inhPart(ch.Table.Storage)) {
		// PostgreSQL 14: the snapshot shows the table's partitions linked
		// otherwise than this session's decoder is known to handle
		// (linkWatch). A chunk stored now would record the new links with
		// the table, and the poll would then find nothing changed: changes
		// this session dropped or gave the wrong table would stay. The
		// poll reconnects first; the chunk is read again after.
		e.pollSoon = true
		e.retryAt = time.Now().Add(100 * time.Millisecond)
		return nil
	}
	t := e.tables[relid]
	if t == nil || !t.SameShape(ch.Table) || !sameNums(t.Nums, ch.Table.Nums) {
		// The stream has not described the table in this session, or the
		// source changed it since the stream's last word on it (the stream
		// lags, or no row changed since; a column dropped and added again
		// under its name and type has a new attnum alone: before, the next
		// chunks read the new column beside rows holding the old one's
		// values until the next poll, helper-125). The snapshot's shape is the
		// table's at the watermark (End): the chunk reads no rows, and the
		// engine takes that shape when the watermark arrives, as if the
		// stream described the table there. Taking it now would reshape
		// the target while the stream still delivers changes in the old
		// shape.
		if f.shapeRounds++; f.shapeRounds > 10 {
			return fmt.Errorf("the shape of %s keeps changing between its chunks (%d times); copy it again later with walmirror resync", f.copy.Table, f.shapeRounds)
		}
		w := &chunkWait{relid: relid, token: newToken(), snap: ch.Snapshot, shape: ch.Table}
		if _, err := ch.End(ctx, w.token); err != nil {
			return err
		}
		e.inflight = w
		e.retryAt = time.Time{}
		return nil
	}
	f.shapeRounds = 0
	f.mustSee, f.mustSettle = nil, 0 // the snapshot sees them all (above)
	e.retryAt = time.Time{}
	if f.copy.After == nil {
		if f.copy.Estimate <= 0 {
			f.copy.Estimate = ch.Estimate
		}
	}
	switch {
	case f.copy.After == nil && f.copy.TextBytes != ch.TextKeysBytewise:
		// The first chunk: how its text keys sort, under the table's lock.
		// (Until now every change to the table was held.)
		f.copy.TextBytes, f.ordered = ch.TextKeysBytewise, false
	case f.copy.After != nil && f.copy.TextBytes && !ch.TextKeysBytewise:
		// A collation changed (ALTER COLUMN ... COLLATE, no rewrite): the
		// chunks before went by an order the source no longer keeps.
		e.startFill(relid, f.copy.Table, f.copy.Estimate, "the collation of its key changed while it was copied")
		return nil
	}
	if !f.ordered {
		f.order, f.ordered = orderOf(t, f.copy.TextBytes), true
	}
	if f.copy.After != nil && (!f.order.ok || f.copy.KeyNums != nil && !slices.Equal(f.copy.KeyNums, keyNums(t))) {
		// After is a key of the columns the chunks before went by: read
		// by another key (a primary key or replica identity replaced while
		// the copy was paused, walmirror stopped or reconnecting), the
		// rows still to come were skipped wherever the new key sorts at
		// or before it: rows missing, the copy complete, exit 0
		// (helper-125). Before, a table left without a key stopped every
		// run.
		e.startFill(relid, f.copy.Table, f.copy.Estimate, "its key changed while it was copied")
		return nil
	}
	keyed := f.copy.Keys != nil
	if keyed && !f.order.matchable {
		e.startFill(relid, f.copy.Table, -1, "its key cannot be matched exactly, so the whole table is copied again")
		return nil
	}
	if keyed {
		keys := make([][]string, 0, len(f.copy.Keys))
		for _, k := range f.copy.Keys {
			if n, ok := f.order.canonical(t, k); ok {
				keys = append(keys, n)
			} else {
				e.log.Warn("ignoring a key to copy again that the table's key cannot hold", "table", f.copy.Table, "key", strings.Join(k, ","))
			}
		}
		if len(keys) == 0 {
			e.finishFill(relid)
			e.copiedCache[relid] = true
			return nil
		}
		f.copy.Keys, f.keys = keys, nil
	}
	limit := f.rows(e.chunkRows)
	if !f.order.ok || keyed || f.whole {
		limit = 0 // one chunk
	}
	if f.copy.After != nil && t.Storage == "" {
		// A copy resumed in this run: the chunks before were read from the
		// storage the target recorded with the table's shape.
		old, found, err := e.storedShape(ctx, relid)
		if err != nil {
			return err
		}
		if found {
			t.Storage = old.Storage
		}
	}
	if f.copy.After != nil && t.Storage != "" {
		// Rewritten since the chunks before: they may hold other values.
		// Or attached as a partition and detached again: its changes
		// meanwhile went to the partitioned table's copy.
		was, attached := columnsOnly(upgradeSig(t.Storage, ch.Table.Storage), ch.Table.Storage)
		if attached || was != ch.Table.Storage {
			e.startFill(relid, f.copy.Table, f.copy.Estimate, "the source rewrote it while it was copied")
			return nil
		}
		if t.Storage != ch.Table.Storage {
			// DDL on some columns: compared from now on with their rows'
			// new versions, so that DDL spread over a long copy is not
			// taken for an attach (helper-132).
			t.Storage, e.storage[relid] = ch.Table.Storage, ch.Table.Storage
			delete(e.ensured, t)
		}
	}
	if f.copy.After == nil && !keyed {
		// The first chunk replaces every row: what older rows would hold in
		// a new column, or how they convert to a new type, is moot.
		if err := e.replacing(ctx, t); err != nil {
			return err
		}
		// Every attribute the snapshot's catalog had, dropped ones too, is
		// older than what the stream describes after the copy: none of
		// them makes a later match ambiguous (unambiguous), which would
		// copy the table again at its next added column.
		t.MaxNum = max(t.MaxNum, ch.Table.MaxNum)
		delete(e.ensured, t)
	}
	if f.copy.After == nil && !keyed && t.Storage != ch.Table.Storage {
		// The copy is of the table's data as the snapshot shows it: the
		// target stores that storage with the shape.
		t.Storage = ch.Table.Storage
		delete(e.ensured, t)
	}
	if f.copy.After == nil && !keyed {
		e.trackFrom(relid, ch.Table.Storage)
		if ch.Table.Storage != "" {
			// What the listings compare with from now on (checkStorage): a
			// rewrite this copy's snapshot already shows (the one that
			// started it: a column added with a volatile default, or a
			// stored generated one) is no reason to copy it again
			// (helper-109: every such column copied the table twice).
			e.storage[relid] = ch.Table.Storage
		}
	}
	if err := e.ensureOpen(ctx); err != nil {
		return err
	}
	if err := e.ensure(ctx, t); err != nil {
		return err
	}
	if t.Replacing {
		// Only for this shaping: later ones keep rows as usual.
		if err := e.sync(ctx, func(context.Context) error { t.Replacing = false; return nil }); err != nil {
			return err
		}
	}
	// Changes to the table still buffered (applied before this copy began,
	// in transactions the snapshot sees) go first: after the chunk's rows
	// they would be applied twice.
	if err := e.flushTable(ctx, relid); err != nil {
		return err
	}
	switch {
	case keyed:
		// Whatever the target holds for these keys goes.
		del := &schema.Batch{Table: t, Deletes: make([]schema.Tuple, len(f.copy.Keys))}
		for i, k := range f.copy.Keys {
			if del.Deletes[i], err = keyRow(t, k); err != nil {
				return err
			}
		}
		if err := e.call(ctx, func(ctx context.Context) error { return e.sink.Write(ctx, del) }); err != nil {
			return fmt.Errorf("delete the rows of %s to copy again: %w", t.QualifiedName(), err)
		}
	case f.copy.After == nil:
		// The first chunk: whatever the target held for the table goes.
		if err := e.call(ctx, func(ctx context.Context) error { return e.sink.Truncate(ctx, []*schema.Table{t}) }); err != nil {
			return fmt.Errorf("empty %s for its copy: %w", t.QualifiedName(), err)
		}
	}
	tm := chunkTiming{began: began}
	readAt := time.Now()
	tm.begin = readAt.Sub(began)
	// Rows past the copy's progress are new to the target table (emptied
	// for the first chunk; the stream's changes to rows past the progress
	// are held until a chunk covers them); a keyed re-copy deleted its rows
	// first and goes the usual way.
	nw, _ := e.sink.(newRowsWriter)
	if keyed {
		nw = nil
	}
	write := func(rows []schema.Tuple) error {
		defer func(at time.Time) { tm.write += time.Since(at) }(time.Now())
		if keyed {
			if err := e.trackCopied(ctx, t, rows); err != nil {
				return err
			}
		}
		b := &schema.Batch{Table: t, Inserts: rows}
		return e.call(ctx, func(ctx context.Context) error {
			write := e.sink.Write
			if nw != nil {
				write = func(ctx context.Context, b *schema.Batch) error { return nw.WriteNew(ctx, b.Table, b.Inserts) }
			}
			if err := write(ctx, b); err != nil {
				return fmt.Errorf("copy into %s: %w", t.QualifiedName(), err)
			}
			return nil
		})
	}
	read := func(ctx context.Context, add func(schema.Tuple) error) (int, []string, error) {
		if keyed {
			// A key column with a nondeterministic collation matches other
			// spellings too ('abc' = 'ABC'): only the rows whose keys are
			// exactly those asked for, which the delete above took, come.
			exact := exactKeys(t)
			skipped := 0
			n, err := ch.RowsWithKeys(ctx, t, f.copy.Keys, func(r schema.Tuple) error {
				if exact && !f.hasKey(t, r) {
					skipped++
					return nil
				}
				return add(r)
			})
			return n - skipped, nil, err
		}
		return ch.Rows(ctx, t, f.copy.After, limit, add)
	}
	var n int
	var last []string
	final := false
	binary := false
	bc, _ := e.sink.(binaryCopier)
	if bc != nil && !keyed {
		if binary, err = e.binaryChunks(ctx, f, t, ch, bc); err != nil {
			return err
		}
	}
	if binary {
		n, last, final, err = e.copyChunkBinary(ctx, t, ch, bc, f.copy.After, limit)
		tm.write = time.Since(readAt)
	} else {
		n, last, err = e.copyChunk(ctx, read, write)
		final = limit == 0 || n < limit
	}
	if n == 0 && source.IsLockTimeout(err) {
		// DDL holds the table: read it a little later, the stream flowing.
		e.tableLocked(ctx, f)
		return nil
	}
	f.lockedSince, f.lockWarned = time.Time{}, false
	if err != nil {
		return err
	}
	if !final && !f.order.readable(last) {
		// Every change to a row up to this key would look past the copy,
		// and be left to chunks that never read it again.
		return fmt.Errorf("copy %s in chunks: its key %q is in no form walmirror orders; copy it in one transaction (--initial-copy single)", t.QualifiedName(), last)
	}
	e.pendingN += n
	if e.track {
		e.changes.all(t)
	}
	faultpoint.Hit("backfill.chunk-read")
	endAt := time.Now()
	tm.rows = endAt.Sub(readAt)
	w := &chunkWait{relid: relid, token: newToken(), snap: ch.Snapshot, last: last, final: final, rows: n}
	if _, err := ch.End(ctx, w.token); err != nil {
		return err
	}
	tm.ended = time.Now()
	tm.end = tm.ended.Sub(endAt)
	w.timing = tm
	e.inflight = w
	// Held changes the chunk saw are in it (or in a later chunk).
	kept := f.held[:0]
	for _, h := range f.held {
		if !w.snap.Sees(h.xid) {
			kept = append(kept, h)
		}
	}
	clear(f.held[len(kept):])
	f.held = kept
	faultpoint.Hit("backfill.watermark-written")
	return nil
}

// copyChunk reads a chunk's rows (read) on a goroutine of its own, in
// batches of at most Limits.ChunkRows rows or ChunkBytes bytes, while this
// goroutine writes the batches read before (write): the source's server,
// the decoding and the target work at the same time instead of in turn, as
// in the initial copy (copypipe.go). At most three batches are held: one
// being filled, one handed over, one being written. Nothing else changes:
// the rows go into the open target transaction in the order read, and a
// failure on either side stops both and is returned (the reader's when it
// failed first). It returns what read returned.
func (e *engine) copyChunk(ctx context.Context, read func(context.Context, func(schema.Tuple) error) (int, []string, error),
	write func([]schema.Tuple) error) (int, []string, error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []schema.Tuple, 1)
	var n int
	var last []string
	var readErr error
	go func() {
		defer close(batches)
		var batch []schema.Tuple
		size := 0
		send := func() error {
			select {
			case batches <- batch:
				batch, size = nil, 0
				return nil
			case <-rctx.Done():
				return rctx.Err()
			}
		}
		n, last, readErr = read(rctx, func(row schema.Tuple) error {
			batch = append(batch, row)
			size += row.Size()
			if len(batch) < e.limits.ChunkRows && size < e.limits.ChunkBytes {
				return nil
			}
			return send()
		})
		if readErr == nil && len(batch) > 0 {
			readErr = send()
		}
	}()
	var writeErr error
	for rows := range batches { // until the reader has stopped
		if writeErr != nil {
			continue
		}
		if writeErr = write(rows); writeErr != nil {
			cancel()
		}
	}
	switch {
	case readErr != nil && (writeErr == nil || !errors.Is(readErr, context.Canceled)):
		return n, nil, readErr
	case writeErr != nil:
		return n, nil, writeErr
	}
	return n, last, nil
}

// binaryChunks reports whether t's chunks go from the source's binary COPY
// stream straight into the target, undecoded, as the initial copy does
// (copypipe.go): a sink that loads such a stream, and column types that
// both servers send and take in binary. Asked once per shape of the table.
func (e *engine) binaryChunks(ctx context.Context, f *fill, t *schema.Table, ch *source.Chunk, bc binaryCopier) (bool, error) {
	if f.binaryOf == t {
		return f.binary, nil
	}
	ok, err := ch.BinaryCopyable(ctx, t)
	if err != nil {
		return false, err
	}
	if ok {
		if err := e.sync(ctx, func(ctx context.Context) (err error) { ok, err = bc.CopiesBinary(ctx, t); return err }); err != nil {
			return false, fmt.Errorf("prepare target table for %s: %w", t.QualifiedName(), err)
		}
	}
	f.binary, f.binaryOf = ok, t
	return ok, nil
}

// copyChunkBinary copies a chunk of up to limit rows (all when limit is 0)
// of t past after, from the source's binary COPY stream into the target's
// (binaryChunks): a goroutine reads the stream in pieces while the target
// loads the pieces before. The chunk's last key is found first (Upper), so
// the rows are read by key range in no order. It returns the rows copied,
// the chunk's last key (nil for the last chunk) and whether it is the last.
func (e *engine) copyChunkBinary(ctx context.Context, t *schema.Table, ch *source.Chunk, bc binaryCopier, after []string, limit int) (int, []string, bool, error) {
	var upto []string
	if limit > 0 {
		var err error
		if upto, err = ch.Upper(ctx, t, after, limit); err != nil {
			return 0, nil, false, err
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	items := make(chan copyItem, 1)
	pieces := make(chan []byte, copyPieces)
	for range copyPieces {
		pieces <- nil
	}
	send := func(it copyItem) error {
		select {
		case items <- it:
			return nil
		case <-rctx.Done():
			return rctx.Err()
		}
	}
	var readErr error
	go func() {
		defer close(items)
		readErr = readBinary(rctx, func(fn func([]byte, int64) error) (int64, error) {
			return ch.RowsBinary(rctx, t, after, upto, fn)
		}, 0, send, pieces)
	}()
	sr := &streamReader{items: items, pieces: pieces}
	var loaded int64
	err := e.sync(ctx, func(ctx context.Context) (err error) { loaded, err = bc.CopyBinary(ctx, t, sr); return err })
	if err != nil {
		cancel()
	}
	for range items { // until the reader has stopped
	}
	if source.IsLockTimeout(readErr) {
		// The target's load has begun: not a chunk to read again later
		// (nextChunk), the target transaction is lost.
		readErr = fmt.Errorf("copy a chunk of %s: %s", t.QualifiedName(), readErr.Error())
	}
	switch {
	case sr.cut.Load() && readErr != nil:
		return 0, nil, false, readErr
	case sr.cut.Load():
		return 0, nil, false, errCopyCut
	case err != nil:
		return 0, nil, false, fmt.Errorf("copy into %s: %w", t.QualifiedName(), err)
	case readErr != nil:
		return 0, nil, false, readErr
	case !sr.done || loaded != sr.read:
		return 0, nil, false, fmt.Errorf("copy into %s: the source sent %d rows, the target loaded %d", t.QualifiedName(), sr.read, loaded)
	case upto != nil && loaded != int64(limit):
		return 0, nil, false, fmt.Errorf("copy a chunk of %s: %d rows up to its last key, want %d", t.QualifiedName(), loaded, limit)
	}
	return int(loaded), upto, upto == nil, nil
}

// watermark completes the chunk in flight when its watermark arrives.
func (e *engine) watermark(ctx context.Context, token string) error {
	w := e.inflight
	if w == nil || w.token != token {
		return nil // an abandoned chunk's, or another walmirror's
	}
	e.inflight = nil
	w.timing.wait = time.Since(w.timing.ended)
	if w.shape != nil {
		return e.shapeWatermark(ctx, w)
	}
	f := e.fills[w.relid]
	t := e.tables[w.relid]
	if f == nil || t == nil {
		return nil
	}
	w.held = len(f.held)
	// Changes the chunk's snapshot did not see, to rows it covers, go on
	// top of its rows, in stream order.
	for _, h := range f.held {
		covered := w.final || !f.order.beyond(keyTuple(h.c), w.last)
		if h.c.Op == schema.Update && h.c.Old != nil && !w.final && covered != !f.order.beyond(newKeyTuple(h.c), w.last) {
			// A key moved across the chunk's end: the side the chunk
			// covers is applied on top of its rows (the old key's row it
			// copied goes, or the new row it could not see comes), a
			// later chunk reads the other.
			del, ins, ok := moved(h.c)
			if !ok {
				e.restartUnsentMove(w.relid, f)
				return nil
			}
			part := ins
			if covered {
				part = del
			}
			e.see(f, h.xid)
			if err := e.buffer(ctx, w.relid, t, part); err != nil {
				return err
			}
			continue
		}
		if !covered {
			e.see(f, h.xid) // a later chunk's snapshot has it
			continue
		}
		if err := e.buffer(ctx, w.relid, t, h.c); err != nil {
			return err
		}
	}
	clear(f.held)
	f.held = f.held[:0]
	f.copy.Rows += int64(w.rows)
	f.copy.Chunks++
	if w.last != nil {
		f.copy.After, f.copy.KeyNums = w.last, keyNums(t)
	}
	e.fillsChanged = true
	if w.final {
		if f.copy.Keys != nil {
			e.log.Info("rows copied again online", "table", f.copy.Table, "keys", len(f.copy.Keys), "rows", f.copy.Rows)
		} else {
			e.log.Info("table copied online", "table", f.copy.Table, "rows", f.copy.Rows, "chunks", f.copy.Chunks)
		}
		e.finishFill(w.relid)
		e.copiedCache[w.relid] = true
	} else {
		if f.copy.After == nil {
			// Rows so far but no key read: cannot be (a keyed chunk has a last row).
			return errors.New("online copy: a chunk with rows left no key")
		}
	}
	e.chunkDone = w // commit now: the chunk's rows and progress together
	return nil
}

// chunkCommitted logs a committed chunk and where its time went, and sizes
// the table's next chunk.
func (e *engine) chunkCommitted(w *chunkWait) {
	f := e.fills[w.relid]
	name, next := "", 0
	if f != nil {
		name = f.copy.Table
		e.adaptChunk(f, w)
		next = f.rows(e.chunkRows)
	} else if t := e.tables[w.relid]; t != nil {
		name = schema.DisplayName(t.Schema, t.Name)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	tm := w.timing
	e.log.Debug("copied chunk", "table", name, "rows", w.rows, "after", w.last, "final", w.final, "held", w.held,
		"begin_ms", ms(tm.begin), "rows_ms", ms(tm.rows), "write_ms", ms(tm.write), "end_ms", ms(tm.end),
		"wait_ms", ms(tm.wait), "commit_ms", ms(tm.commit), "next_rows", next)
}

// rows is how many rows the fill's next chunk reads.
func (f *fill) rows(initial int) int {
	if f.size > 0 {
		return f.size
	}
	return initial
}

// adaptChunk sizes a table's next chunk from how its last one went
// (Config.CopyChunkTime): twice as many rows when it took under half the
// time allowed, half as many when it took longer, or when the stream held
// more than chunkHeld changes to rows not yet copied meanwhile (each chunk
// keeps those in memory and applies them on top of its rows). The time
// counts from opening the chunk to its commit returning: while its rows are
// read and written, the stream waits, so it bounds the delay a chunk adds
// to the changes of other tables, and what a crash redoes. The size stays
// between Config.CopyChunkRows/chunkShrink and chunkGrow times it. A sink
// with a chunk grain (chunkGrainer) within those bounds gets chunks of at
// least the grain after a chunk within the time, and keeps them there
// unless the stream presses: smaller ones cost it more per row.
func (e *engine) adaptChunk(f *fill, w *chunkWait) {
	if e.chunkTime <= 0 || w.final || w.timing.began.IsZero() {
		return
	}
	took := time.Since(w.timing.began)
	size := f.rows(e.chunkRows)
	full := w.rows >= size // not the table's last rows
	grain, most := 0, e.chunkRows*chunkGrow
	if g, ok := e.sink.(chunkGrainer); ok && g.CopyChunkGrain() <= most {
		grain = g.CopyChunkGrain()
	}
	pressed := w.held > chunkHeld
	switch {
	case took > e.chunkTime || pressed:
		least := max(e.chunkRows/chunkShrink, 1)
		if !pressed && size >= grain {
			least = max(least, grain)
		}
		size = max(size/2, least)
	case took < e.chunkTime/2 && full:
		size = min(size*2, most)
	}
	if size < grain && took <= e.chunkTime && !pressed && full {
		size = grain // costs less per row than a chunk below it
	}
	f.size = size
}

// shapeWatermark takes the table's shape a chunk's snapshot showed, at the
// chunk's watermark: the stream has then passed exactly the schema changes
// that snapshot saw, so this is the description pgoutput would give there.
func (e *engine) shapeWatermark(ctx context.Context, w *chunkWait) error {
	f := e.fills[w.relid]
	if f == nil {
		return nil
	}
	_, known := e.tables[w.relid]
	st := w.shape
	cols := slices.Clone(st.Columns)
	if err := e.describe(ctx, st.ID, st.Schema, st.Name, st.Identity, cols, st.TypeNames); err != nil {
		return err
	}
	t := e.tables[w.relid]
	if !known && f.copy.After == nil && f.copy.Keys == nil && t != nil {
		// The copy has not begun: its first chunk replaces every row (a
		// copy of some keys, verify --repair's, does not), so the target
		// may take this shape however its rows would convert (a SQLite
		// column whose type class changed in a rewrite).
		if err := e.replacing(ctx, t); err != nil {
			return err
		}
	}
	if known || f.copy.After == nil || t == nil {
		return nil // describe started the copy again if the shape changed
	}
	// A copy resumed in this run: its earlier chunks were written in the
	// shape the target stored with them.
	old, found, err := e.storedShape(ctx, w.relid)
	if err != nil || !found {
		return err
	}
	if change, _, err := schema.Diff(old, t); err != nil || !change.Empty() {
		e.startFill(w.relid, f.copy.Table, f.copy.Estimate, "the table changed shape while it was copied")
		return e.replacing(ctx, t)
	}
	return nil
}

// replacing says the target table's rows are about to be replaced by t's
// copy (t.Replacing), once the queued sink work is done: with --pipeline,
// an ensure of this very table still queued from the transaction before
// would otherwise empty it in a commit whose state does not hold the copy.
func (e *engine) replacing(ctx context.Context, t *schema.Table) error {
	return e.sync(ctx, func(context.Context) error {
		e.unknownFills(t)
		t.Replacing = true
		return nil
	})
}

// storedShape is the shape the target holds for relid, as of the open
// target transaction (found false: none, or the sink stores no shapes).
func (e *engine) storedShape(ctx context.Context, relid uint32) (schema.Stored, bool, error) {
	ss, ok := e.sink.(shapeStore)
	if !ok {
		return schema.Stored{}, false, nil
	}
	var text string
	var found bool
	if err := e.sync(ctx, func(ctx context.Context) (err error) { text, found, err = ss.Shape(ctx, relid); return err }); err != nil || !found {
		return schema.Stored{}, false, err
	}
	old, err := schema.DecodeStored(text)
	return old, err == nil, err
}

func (e *engine) finishFill(relid uint32) {
	delete(e.fills, relid)
	delete(e.storedCols, relid) // the copy stored its shape
	e.fillOrder = slices.DeleteFunc(e.fillOrder, func(id uint32) bool { return id == relid })
	e.fillsChanged = true
	if tr := e.partTracks[relid]; tr != nil && len(tr.keys) > 0 {
		// Polls skipped the table while it was copied: the keys written
		// meanwhile are checked at the next (storageKnown), which a
		// bounded run waits for.
		e.pollSoon = true
	}
}

// copied reports whether the target holds relid's table completely (or
// is copying it): a change to any other table starts its copy.
func (e *engine) copied(ctx context.Context, relid uint32) (bool, error) {
	if v, ok := e.copiedCache[relid]; ok || e.copier == nil {
		return v || !ok, nil
	}
	if _, ok := e.fills[relid]; ok {
		return true, nil
	}
	ss, ok := e.sink.(shapeStore)
	if !ok {
		e.copiedCache[relid] = true
		return true, nil
	}
	var found bool
	err := e.sync(ctx, func(ctx context.Context) error {
		var err error
		_, found, err = ss.Shape(ctx, relid)
		return err
	})
	if err != nil {
		return false, err
	}
	e.copiedCache[relid] = found
	return found, nil
}

// poll looks for tables that joined the publication without a change the
// stream would have shown (rows that existed before they were published).
//
// It runs only when the stream is caught up (the last event a keepalive):
// the catalog then shows no change the stream has yet to deliver, so a
// storage changed by a TRUNCATE the stream carried is told from a rewrite.
//
// A listing is acted on only once the stream has passed the WAL position of
// the moment it was taken (streamed: a keepalive's position), so every
// change the catalog shows has been delivered and applied first.
func (e *engine) poll(ctx context.Context, streamed lsn.LSN) error {
	if e.copier == nil || !e.waiting {
		return nil
	}
	if e.polled == nil {
		if !e.pollSoon && (e.pollEvery <= 0 || time.Since(e.lastPoll) < e.pollEvery) {
			return nil
		}
		// A bounded run past its stop position waits for nothing else.
		if time.Now().Before(e.pollAfter) && (e.stopAt == 0 || streamed < e.stopAt) {
			return nil
		}
		e.lastPoll, e.pollSoon = time.Now(), false
		l, err := e.copier.Published(ctx)
		// The stream waits while the publication is listed, and a Relation
		// message asks for a listing (pollSoon), which a source with many
		// tables sends all the time (at each table's first change in a
		// session, and after changes to its catalog entry): listings take
		// at most a tenth of the time (3,000 tables each changed in turn
		// had the publication listed back to back, 0.3-1.5 s each).
		e.pollAfter = time.Now().Add(9 * time.Since(e.lastPoll))
		if source.IsLockTimeout(err) {
			// DDL holds a published table (PostgreSQL 16+ opens each one to
			// list them): look again shortly, the stream flowing.
			e.log.Debug("a published table is locked; publication listed again later", "err", err)
			e.pollSoon, e.pollAfter = true, time.Now().Add(time.Second)
			e.listLocked(ctx)
			return nil
		}
		if err != nil {
			return err
		}
		if e.listWarned {
			e.log.Info("the publication was listed again", "after", time.Since(e.listStuck).Round(time.Second))
		}
		e.listStuck, e.listWarned = time.Time{}, false
		e.listings++
		e.polled = &polled{Listing: l, gen: e.listings}
	}
	if streamed < e.polled.At {
		e.conf.RequestReply() // the next keepalive may show it passed
		return nil
	}
	l, gen := e.polled, e.polled.gen
	tables, at := l.Tables, l.At
	e.polled = nil
	e.log.Debug("publication listed", "at", at, "tables", len(tables), "copying", len(e.fills))
	acted := time.Now()
	defer func() {
		// Acting on it (the stored shapes read from the target) counts too.
		if next := time.Now().Add(9 * time.Since(acted)); next.After(e.pollAfter) {
			e.pollAfter = next
		}
	}()
	if e.links != nil {
		table, moved, err := e.linksMoved(ctx, tables, at)
		switch {
		case err != nil:
			return err
		case moved && e.pause != nil && e.pause.active() != nil:
			// A verify holds the copy at a position: the reconnect would
			// store a later one. Listed again once it lets go.
			e.pollSoon, e.pollAfter = true, time.Now().Add(time.Second)
			return nil
		case moved:
			return e.relink(ctx, streamed, table)
		}
	}
	if err := e.forgetLeft(ctx, l); err != nil {
		return err
	}
	for _, p := range tables {
		if err := e.checkStorage(ctx, p, l, gen); err != nil {
			return err
		}
		if err := e.checkColumns(ctx, p, l); err != nil {
			return err
		}
		if v, ok := e.copiedCache[p.RelID]; ok && (v || e.fills[p.RelID] != nil) {
			continue
		}
		have, err := e.copied(ctx, p.RelID)
		if err != nil {
			return err
		}
		if have {
			continue
		}
		e.startFill(p.RelID, p.Name, p.Estimate, "joined the publication")
	}
	return nil
}

// checkColumns copies a table again when a column the copy holds was
// renamed or changed type in the source with no row of the table changed
// since: pgoutput describes a table only before a row change, so the stream
// has not told, and a cold table would keep the old name or type for good.
// The copy's first chunk takes the table's shape at its watermark, as a
// Relation message would have. Compared with the shape this run described
// (unless the stream described it after the listing was taken), or once per
// run with the shape the target stored.
func (e *engine) checkColumns(ctx context.Context, p source.PublishedTable, l *polled) error {
	if e.fills[p.RelID] != nil || len(p.Columns) == 0 || e.describedSince(p.RelID, l) {
		return nil
	}
	var cols []schema.StoredColumn
	if t := e.tables[p.RelID]; t != nil {
		if len(t.Nums) != len(t.Columns) {
			return nil
		}
		cols = schema.StoredOf(t, t.Nums).Columns
	} else {
		// Read once per run (the stored shape changes only with a copy of
		// the table), compared at every poll: the columns can change
		// after the first.
		var ok bool
		if cols, ok = e.storedCols[p.RelID]; !ok {
			old, found, err := e.storedShape(ctx, p.RelID)
			if err != nil {
				return err
			}
			if found {
				cols = old.Columns
			}
			e.storedCols[p.RelID] = cols
		}
		if cols == nil {
			return nil
		}
	}
	live := make(map[int16]source.ColumnSig, len(p.Columns))
	for _, c := range p.Columns {
		live[c.Num] = c
	}
	had := make(map[int16]bool, len(cols))
	numbered := true
	for _, c := range cols {
		had[c.Num] = true
		numbered = numbered && c.Num != 0
		l, ok := live[c.Num]
		if c.Num == 0 || !ok {
			continue // not known, or dropped (the copy keeps dropped columns)
		}
		if l.Name != c.Name || l.TypeID != c.TypeID || l.Typmod != c.Typmod {
			e.startFill(p.RelID, p.Name, p.Estimate, "column "+strconv.Quote(c.Name)+" was renamed or changed type with no row changed since, which the stream does not tell")
			return nil
		}
	}
	if !numbered {
		return nil // which live column is new cannot be told
	}
	for _, l := range p.Columns {
		if l.Published && !had[l.Num] {
			// Its value in every row (a default, or NULL) is in no row
			// change yet: the copy would lack the column until one comes.
			e.startFill(p.RelID, p.Name, p.Estimate, "column "+strconv.Quote(l.Name)+" was added with no row changed since, which the stream does not tell")
			return nil
		}
	}
	return nil
}

// polled is a publication listing waiting for the stream to pass it.
type polled struct {
	source.Listing
	gen uint64 // engine.listings when it was taken
}

// describedSince says the stream described relid after listing l was
// taken, so the table's name and columns it holds are newer than the
// listing's. By the describing transaction where there was one: a
// transaction that committed before the listing's position can still be
// one its snapshot does not see (committed in the WAL, not yet to other
// sessions). Compared by position only, a listing that showed a table
// renamed away under its old name renamed the copy back over a new table
// that took the name (TestRenameAwayNewSameName under load,
// TestRenameAwayNotYetVisible).
func (e *engine) describedSince(relid uint32, l *polled) bool {
	if x, ok := e.describedXid[relid]; ok {
		return !l.Snapshot.Sees(x)
	}
	return e.describedAt[relid] > l.At
}

// shapeLister is a shapeStore that lists and forgets stored shapes: a table
// that left the publication is then copied afresh if it joins again (its
// changes meanwhile were not streamed).
type shapeLister interface {
	ShapeIDs(ctx context.Context) ([]uint32, error)
	ForgetShape(ctx context.Context, relid uint32) error
}

// forgetLeft forgets the tables the copy holds that are no longer
// published as of listing l; their target tables stay as they are. A
// table the stream described since joined since (the stream carried it
// there): the listing is older than that.
func (e *engine) forgetLeft(ctx context.Context, l *polled) error {
	published := l.Tables
	sl, ok := e.sink.(shapeLister)
	if !ok {
		return nil
	}
	var ids []uint32
	if err := e.sync(ctx, func(ctx context.Context) (err error) { ids, err = sl.ShapeIDs(ctx); return err }); err != nil {
		return err
	}
	in := make(map[uint32]bool, len(published))
	for _, p := range published {
		in[p.RelID] = true
	}
	for _, id := range ids {
		if in[id] || e.fills[id] != nil || e.describedSince(id, l) {
			continue
		}
		if err := e.forget(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// forget drops relid's stored shape in the open target transaction.
func (e *engine) forget(ctx context.Context, relid uint32) error {
	sl, ok := e.sink.(shapeLister)
	if !ok {
		return nil
	}
	if err := e.ensureOpen(ctx); err != nil {
		return err
	}
	e.pendingN++
	var nsp, rel string // as this run or the stored shape knows it
	if t := e.tables[relid]; t != nil {
		nsp, rel = t.Schema, t.Name
		delete(e.ensured, t)
	} else if old, found, err := e.storedShape(ctx, relid); err == nil && found {
		nsp, rel = old.Schema, old.Name
	}
	name := e.knownName(relid)
	if name == "" && rel != "" {
		name = schema.DisplayName(nsp, rel)
	} else if name == "" {
		name = "relid " + strconv.FormatUint(uint64(relid), 10)
	}
	e.logLeft(ctx, relid, nsp, rel, name)
	e.copiedCache[relid] = false
	delete(e.storage, relid)
	return e.call(ctx, func(ctx context.Context) error { return sl.ForgetShape(ctx, relid) })
}

// leftLooker is a Catalog that says what became of a table that left the
// publication.
type leftLooker interface {
	LeftTable(ctx context.Context, relid uint32, nsp, name string) (source.LeftTable, error)
}

// logLeft says that relid left the publication, and warns when its copy,
// kept as it was, no longer follows a source table that goes on changing
// (helper-97: a table made UNLOGGED, or swapped for a new one by renames,
// was only an info line while the copy went stale).
func (e *engine) logLeft(ctx context.Context, relid uint32, nsp, rel, name string) {
	var now source.LeftTable
	looked := false
	if ll, ok := e.catalog.(leftLooker); ok && rel != "" {
		var err error
		if now, err = ll.LeftTable(ctx, relid, nsp, rel); err != nil {
			e.log.Debug("could not look up a table that left the publication", "table", name, "err", err)
		}
		looked = err == nil
	}
	switch {
	case now.Exists && now.Unlogged:
		e.log.Warn("table left the publication: it is UNLOGGED now, so its changes are in no WAL; its copy stays as it was and no longer follows the source table (ALTER TABLE ... SET LOGGED on the source has it copied afresh)", "table", name)
	case now.Exists && now.Partition:
		e.log.Info("table left the publication: it is a partition now (published through its root, its rows are in the root's copy); its own copy stays as it was, and is made afresh if it joins again", "table", name)
	case now.Exists:
		e.log.Warn("table left the publication but is still on the source: its copy stays as it was and no longer follows the source table; it is copied afresh if it joins again", "table", name)
	case now.Replaced:
		e.log.Warn("table left the publication (dropped), and a table that took its name on the source is not published: the copy under this name keeps the dropped table's rows; add the new table to the publication to copy it", "table", name)
	case looked:
		// helper-111: a DROP TABLE read as if only the publication changed.
		e.log.Info("table left the publication (dropped on the source): its copy stays as it is", "table", name)
	default:
		e.log.Info("table left the publication: its copy stays as it is, and is made afresh if the table joins again", "table", name)
	}
}

// checkStorage copies a table again when the source rewrote it since the
// target's copy was made: a rewrite with no change after it sends no
// Relation message. p is from listing l.
func (e *engine) checkStorage(ctx context.Context, p source.PublishedTable, l *polled, gen uint64) error {
	if e.fills[p.RelID] != nil || p.Storage == "" {
		return nil
	}
	seen, attached := columnsOnly(e.storage[p.RelID], p.Storage)
	// The signature names the table's schema by oid: a schema renamed
	// (ALTER SCHEMA ... RENAME) leaves it as it was.
	if seen == p.Storage && e.knownName(p.RelID) == p.Name {
		if seen != e.storage[p.RelID] {
			// DDL on some of its columns: the copy keeps their rows' new
			// versions, so that more DDL later is not taken for an attach.
			if err := e.keepColumnRows(ctx, p.RelID, p.Storage); err != nil {
				return err
			}
		}
		return e.storageKnown(ctx, p.RelID, p.Name, p.Storage, gen)
	}
	old, found, err := e.storedShape(ctx, p.RelID)
	if err != nil {
		return err
	}
	if seen == "" {
		if !found {
			return nil
		}
		e.storedNames[p.RelID] = schema.DisplayName(old.Schema, old.Name)
		if _, err := e.tracker(ctx, p.RelID); err != nil {
			return err
		}
		// The stored signature may differ in the table's name alone while
		// the copy already has the name: a rename the stream carried,
		// which only a listing stores (a run that ended before one, such
		// as a swap's old table renamed in the copy at its first change
		// after the swap, copied the table again at the next start).
		seen, attached = columnsOnly(upgradeSig(old.Storage, p.Storage), p.Storage)
		if seen == "" || sameData(seen, p.Storage) && e.knownName(p.RelID) == p.Name {
			e.storage[p.RelID] = p.Storage
			if err := e.storageKnown(ctx, p.RelID, p.Name, p.Storage, gen); err != nil {
				return err
			}
			if seen != "" && old.Storage != p.Storage {
				// Stored by an older version, or under the old name:
				// store it as read now, once, so that later runs compare
				// the parts it lacked.
				return e.storeStorage(ctx, p.RelID, old, p.Storage)
			}
			return nil
		}
	}
	e.storage[p.RelID] = p.Storage
	t := e.tables[p.RelID]
	// The last change to the table's pg_class row was a TRUNCATE the copy
	// applied: in this run (truncXids) or in an earlier one (its stored
	// shape), which may have ended before a poll saw the new data files.
	// It explains new data files only: the rest of the signature (enum
	// labels, composites, membership, column rows) must be as it was
	// (helper-131: a TRUNCATE once applied excused every later change
	// that left the pg_class row alone, an enum value renamed or a row
	// filter widened, exit 0).
	truncated := p.StorageXmin != 0 && (e.truncXids[p.RelID].row == p.StorageXmin || found && old.TruncXid == p.StorageXmin) && filesAlone(seen, p.Storage)
	// A schema renamed since (no change to the pg_class row) still has to
	// be followed.
	named := e.knownName(p.RelID) == p.Name
	if truncated && t == nil && named {
		// Not described in this run yet: the stored shape keeps the old
		// files and the TRUNCATE's xid, which a later poll checks again.
		return nil
	}
	// Only the name changed: a partitioned table's partitions are as known
	// (storageKnown, once the copy's table has its name).
	known := func() error {
		if !sameData(seen, p.Storage) {
			return nil
		}
		return e.storageKnown(ctx, p.RelID, p.Name, p.Storage, gen)
	}
	renamed := t != nil && sameData(seen, p.Storage) && schema.DisplayName(t.Schema, t.Name) == p.Name
	if renamed || t != nil && truncated && named {
		// Only renamed, and the stream already told; or the last change to
		// the table's pg_class row was a TRUNCATE the stream carried (and
		// the copy applied): remember the new storage.
		t.Storage = p.Storage
		delete(e.ensured, t)
		if err := e.ensureOpen(ctx); err != nil {
			return err
		}
		e.pendingN++
		if err := e.ensure(ctx, t); err != nil {
			return err
		}
		return known()
	}
	if t != nil && (sameData(seen, p.Storage) || truncated) && e.describedSince(p.RelID, l) {
		// The stream described the table after the listing was taken: the
		// name it holds is the newer one. The next listing compares again.
		e.storage[p.RelID] = seen
		return nil
	}
	if t != nil && (sameData(seen, p.Storage) || truncated) {
		// Renamed (or moved to another schema), and the stream has not
		// said so: no row changed since, or pgoutput names a partitioned
		// table as its partitions' cached entries last did. The stream has
		// passed the rename (the listing is acted on only then): rename
		// the copy's table, as a Relation message would have.
		e.log.Info("table renamed in the source: renaming it in the copy", "table", schema.DisplayName(t.Schema, t.Name), "new_name", p.Name)
		if err := e.ensureOpen(ctx); err != nil {
			return err
		}
		e.pendingN++
		if err := e.describe(ctx, t.ID, p.Schema, p.Table, t.Identity, slices.Clone(t.Columns), t.TypeNames); err != nil {
			return err
		}
		if t = e.tables[p.RelID]; t != nil {
			t.Storage = p.Storage
			delete(e.ensured, t)
			if err := e.ensure(ctx, t); err != nil {
				return err
			}
		}
		return known()
	}
	if added := addedPartitions(seen, p.Storage); added != nil && (t != nil || found) {
		outcome, err := e.partitionsAdded(ctx, p.RelID, p.Name, t, seen, p.Storage, added, gen)
		switch {
		case err != nil:
			e.storage[p.RelID] = seen // not acted on
			return err
		case outcome == addedLater:
			e.storage[p.RelID] = seen // look again at the next listing
			e.pollSoon, e.pollAfter = true, time.Now().Add(time.Second)
			return nil
		case outcome == addedCopied && t == nil:
			return e.storeStorage(ctx, p.RelID, old, p.Storage)
		case outcome == addedCopied:
			return nil
		}
	}
	why := "the source rewrote it (ALTER TABLE ... USING, VACUUM FULL, CLUSTER, TRUNCATE, or a partition attached or detached): its rows may have changed without WAL"
	sFiles, _, _ := strings.Cut(seen, "|")
	nFiles, _, _ := strings.Cut(p.Storage, "|")
	switch {
	case attached && !truncated:
		why = "it was attached to a partitioned table published through its root and detached again (every column's catalog row was rewritten): its changes meanwhile were published as that table's"
	case sameData(seen, p.Storage) || truncated:
		why = "renamed, or moved to another schema, and not yet streamed in this run"
	case sFiles == nFiles:
		why = "the publication's hold on it changed (it left and joined again, the publication was created again, or its options changed): changes made meanwhile may not have been published"
	case dataFiles(seen) == dataFiles(p.Storage) && beforeInh(sFiles) != beforeInh(nFiles) && inhPart(sFiles) == inhPart(nFiles):
		why = "an enum or composite type its columns use changed (ALTER TYPE ... RENAME VALUE, ADD VALUE or ADD ATTRIBUTE, or a column added to or dropped from a table whose row type it uses): stored rows may read otherwise, with no WAL for them"
	case beforeInh(sFiles) == beforeInh(nFiles):
		why = "a partition was attached or detached (maybe detached and attached again): changes made to it meanwhile were not published as this table's"
	}
	e.startFill(p.RelID, p.Name, p.Estimate, why)
	return nil
}

// keepColumnRows makes sig, which differs from what the copy keeps in its
// column rows alone (DDL on some columns), the table's storage.
func (e *engine) keepColumnRows(ctx context.Context, relid uint32, sig string) error {
	e.storage[relid] = sig
	if t := e.tables[relid]; t != nil {
		t.Storage = sig
		delete(e.ensured, t)
		if err := e.ensureOpen(ctx); err != nil {
			return err
		}
		e.pendingN++
		return e.ensure(ctx, t)
	}
	old, found, err := e.storedShape(ctx, relid)
	if err != nil || !found || old.Storage == sig {
		return err
	}
	return e.storeStorage(ctx, relid, old, sig)
}

// storeStorage replaces the storage signature of relid's stored shape old.
func (e *engine) storeStorage(ctx context.Context, relid uint32, old schema.Stored, storage string) error {
	ss, ok := e.sink.(shapeStore)
	if !ok {
		return nil
	}
	if err := e.ensureOpen(ctx); err != nil {
		return err
	}
	e.pendingN++
	old.Storage = storage
	return e.call(ctx, func(ctx context.Context) error {
		return ss.SetShape(ctx, &schema.Table{ID: relid, Schema: old.Schema, Name: old.Name}, old.Encode())
	})
}

// knownName is the name the copy knows relid's table by: as this run
// described it, else as its stored shape has it ("" when neither).
func (e *engine) knownName(relid uint32) string {
	if t := e.tables[relid]; t != nil {
		return schema.DisplayName(t.Schema, t.Name)
	}
	return e.storedNames[relid]
}

// storageReader reads one table's storage signature now.
type storageReader interface {
	Storage(ctx context.Context, relid uint32) (string, error)
}

// checkMembership copies t again at once when rows the copy lacks may have
// become published since the copy was made: the publication's hold on the
// table changed (a row filter or column list altered: ALTER PUBLICATION ...
// SET TABLE adds the table anew; or it left and joined again), or a
// partition was attached to it. The changes that follow this Relation
// message can touch those rows, and the poll, which would copy the table,
// comes only at the next caught-up moment: an update of such a row would
// find no row in the target. old is the table as this run knew it (nil:
// not yet described in this run).
//
// So for a table being copied whole, part of it done: rows of a partition
// attached now lie behind the copy's progress too. Its next chunk would
// find the storage changed and start the copy again, but only after the
// changes that follow this message, in the ATTACH's own transaction or
// just after it, were applied to rows the copy does not hold (a
// divergence, a stop with --stop-on-divergence). The copy starts again
// now, holding every change to the table until its first chunk.
func (e *engine) checkMembership(ctx context.Context, t *schema.Table, old *schema.Table) error {
	sr, ok := e.copier.(storageReader)
	if !ok {
		return nil
	}
	f := e.fills[t.ID]
	if f != nil && (f.copy.Keys != nil || f.copy.After == nil) {
		// A copy by key, or one whose first chunk is still to come (every
		// change to the table is held until then).
		return nil
	}
	prev := e.storage[t.ID]
	if prev == "" && old != nil {
		prev = old.Storage
	}
	if prev == "" {
		stored, found, err := e.storedShape(ctx, t.ID)
		if err != nil || !found {
			return err
		}
		prev = stored.Storage
	}
	sig, err := sr.Storage(ctx, t.ID)
	if err != nil {
		return fmt.Errorf("look up %s in the source catalog: %w", t.QualifiedName(), err)
	}
	if _, attached := columnsOnly(upgradeSig(prev, sig), sig); attached {
		// Attached as a partition and detached again since the poll: its
		// changes meanwhile went to the partitioned table's copy, and
		// those that follow may touch the rows they wrote.
		delete(e.storage, t.ID)
		e.startFill(t.ID, schema.DisplayName(t.Schema, t.Name), -1,
			"it was attached to a partitioned table published through its root and detached again: its changes meanwhile were published as that table's")
		return nil
	}
	was, ok := holds(upgradeSig(prev, sig))
	if !ok {
		return nil
	}
	now, ok := holds(sig)
	if !ok || now == was {
		return nil
	}
	if f != nil {
		e.startFill(t.ID, f.copy.Table, f.copy.Estimate, "partitions were attached or detached, or its publication changed, while it was copied")
		return nil
	}
	prevNow, _ := columnsOnly(upgradeSig(prev, sig), sig) // not attached: above
	if added := addedPartitions(prevNow, sig); added != nil {
		if _, err := e.tracker(ctx, t.ID); err != nil {
			return err
		}
		// at 0: the catalog may be ahead of the stream, so the storage is
		// not taken as known here; the next poll looks again.
		outcome, err := e.partitionsAdded(ctx, t.ID, schema.DisplayName(t.Schema, t.Name), t, prevNow, sig, added, 0)
		if err != nil || outcome == addedCopied {
			return err
		}
	}
	// The copy's first chunk stores the storage it read; the poll compares
	// with that from then on.
	delete(e.storage, t.ID)
	e.startFill(t.ID, schema.DisplayName(t.Schema, t.Name), -1,
		"the rows it publishes may have changed without WAL (its row filter or column list altered, it left the publication and joined again, or a partition was attached or detached)")
	return nil
}

// holds is what decides which rows a storage signature's table publishes,
// short of their data: the tables holding its rows (itself, or a
// partitioned table's leaves) and its publication membership; ok is false
// for a signature without them.
func holds(sig string) (string, bool) {
	// data files | membership | schema.name; data files are oid:relfilenode
	// pairs, then maybe ";enums:" and a hash.
	files, rest, ok := strings.Cut(sig, "|")
	member, _, _ := strings.Cut(rest, "|")
	if !ok || member == "" {
		return "", false
	}
	files, _, _ = strings.Cut(files, ";")
	var b strings.Builder
	for f := range strings.SplitSeq(files, ",") {
		oid, _, _ := strings.Cut(f, ":")
		b.WriteString(oid)
		b.WriteByte(',')
	}
	b.WriteString("|" + member)
	return b.String(), true
}

// upgradeSig reads a stored signature as it would be written now, where
// what is written has grown since: the membership of a FOR ALL TABLES
// publication was "all" (now "all" and the publication's oid), that of a
// FOR TABLES IN SCHEMA one had no schema link ("@"), a partition published
// through its root's membership had the publication's "all", and the
// publication's transaction (";pub:"), a partitioned table's links
// (";inh:"), the enums and composites nested in its columns' types
// (";nested:") and its column rows (";att:") were not there. Those parts are taken as now's, so an upgrade
// copies nothing again.
func upgradeSig(stored, now string) string {
	sFiles, sRest, ok1 := strings.Cut(stored, "|")
	nFiles, nRest, ok2 := strings.Cut(now, "|")
	if !ok1 || !ok2 {
		return stored
	}
	sMember, sName, _ := strings.Cut(sRest, "|")
	nMember, _, _ := strings.Cut(nRest, "|")
	if _, nested, ok := strings.Cut(nFiles, ";nested:"); ok && !strings.Contains(sFiles, ";nested:") {
		// Before the partition links, which stay last.
		nested, _, _ = strings.Cut(nested, ";")
		head, inh, hasInh := strings.Cut(sFiles, ";inh:")
		sFiles = head + ";nested:" + nested
		if hasInh {
			sFiles += ";inh:" + inh
		}
	}
	if _, inh, ok := strings.Cut(nFiles, ";inh:"); ok && !strings.Contains(sFiles, ";inh:") {
		sFiles += ";inh:" + inh
	}
	nBase, nPub, nHasPub := strings.Cut(nMember, ";pub:")
	if sMember == "all" && strings.HasPrefix(nBase, "all") {
		sMember = nBase
	}
	sBase, sPub, hasPub := strings.Cut(sMember, ";pub:")
	// A FOR TABLES IN SCHEMA membership before its schema link.
	schemaLink := strings.HasPrefix(sBase, "s") && !strings.Contains(sBase, "@") && strings.HasPrefix(nBase, sBase+"@")
	// A partition's before its root's membership counted as its own: with
	// no row of its own it read as FOR ALL TABLES', which no publication
	// turns into a list of tables or schemas.
	viaRoot := strings.HasPrefix(sBase, "all") && strings.Contains(nFiles, ";inh:") &&
		(strings.HasPrefix(nBase, "r") || strings.HasPrefix(nBase, "s"))
	if schemaLink || viaRoot {
		sMember = nBase
		if hasPub {
			sMember += ";pub:" + sPub
		}
	}
	if nHasPub && !strings.Contains(sMember, ";pub:") {
		sMember += ";pub:" + nPub
	}
	if att := attPart(now); att != "" && attPart(sFiles) == "" {
		sFiles = withAtt(sFiles, att) // column rows (";att:")
	}
	return sFiles + "|" + sMember + "|" + sName
}

// beforeInh is a signature's data files part without its partition links.
func beforeInh(files string) string {
	files, _, _ = strings.Cut(files, ";inh:")
	return files
}

// dataFiles is the data files part of a storage signature (oid:relfilenode
// pairs of the table or its leaves).
func dataFiles(sig string) string { return schema.DataFiles(sig) }

// filesAlone reports whether two storage signatures differ at most in
// their leaves' data files (relfilenodes) and the table's name.
func filesAlone(a, b string) bool {
	aFiles, aRest, _ := strings.Cut(a, "|")
	bFiles, bRest, _ := strings.Cut(b, "|")
	aMember, _, _ := strings.Cut(aRest, "|")
	bMember, _, _ := strings.Cut(bRest, "|")
	aLeaves, aOther := splitFiles(aFiles)
	bLeaves, bOther := splitFiles(bFiles)
	oids := func(leaves string) string {
		var out []string
		for f := range strings.SplitSeq(leaves, ",") {
			oid, _, _ := strings.Cut(f, ":")
			out = append(out, oid)
		}
		return strings.Join(out, ",")
	}
	return aMember == bMember && aOther == bOther && inhPart(a) == inhPart(b) && oids(aLeaves) == oids(bLeaves)
}

// sameData reports whether two storage signatures differ at most in the
// table's name: the same data files and publication membership.
func sameData(a, b string) bool {
	// data files | membership | schema.name (the name may hold "|")
	cut := func(s string) string {
		i := strings.Index(s, "|")
		if i < 0 {
			return s
		}
		j := strings.Index(s[i+1:], "|")
		if j < 0 {
			return s
		}
		return s[:i+1+j]
	}
	return cut(a) == cut(b)
}

// resync handles a ResyncPrefix message.
func (e *engine) resync(ctx context.Context, content []byte) error {
	var r resyncRequest
	if err := json.Unmarshal(content, &r); err != nil {
		e.log.Warn("ignoring a malformed resync request", "err", err)
		return nil
	}
	if r.Slot != e.state.Slot {
		return nil
	}
	for i, id := range r.RelIDs {
		name := strconv.FormatUint(uint64(id), 10)
		if i < len(r.Tables) {
			name = r.Tables[i]
		}
		if i < len(r.Keys) && r.Keys[i] != nil {
			if err := e.requestKeys(ctx, id, name, r.Keys[i]); err != nil {
				return err
			}
			continue
		}
		e.startFill(id, name, -1, "resync requested")
	}
	return nil
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
