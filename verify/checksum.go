package verify

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/walmirror/walmirror/schema"
)

// Checksums by key range (MethodChecksum). When the table's key is one
// integer column (other tables: buckets.go), each side computes, inside its database, per range of
// keys the number of rows and the sum (modulo 2^64) of a 64-bit hash of
// each row: on PostgreSQL (the source, and a PostgreSQL copy)
// hash_record_extended (PostgreSQL 14 and later) over the row's values;
// on a DuckDB or SQLite copy the same hashes, computed by a Go port of
// PostgreSQL's hashing registered as a function on the copy's connection
// (targethash.go, pghash.go). Only those sums cross to verify, one row per
// range. Ranges whose count and sum are equal on both sides are equal (but
// for a hash collision, probability about 2^-64 per differing range); a
// range that differs is split into smaller ranges, computed again, until a
// range is small enough to be compared row by row (merge, as without
// checksums), which names the rows. A sum that differs when the rows do
// not (a value the copy keeps in another spelling) only costs that row
// comparison.
//
// For a PostgreSQL copy each value is hashed either as its type hashes
// it, for the types whose equality is exactly the canonical form's
// (integers, bool, bytea, floats, numeric, date, time, timestamp,
// timestamptz, uuid, and text and varchar by their bytes: COLLATE "C"),
// when the copy's column has the source's type; or else by its text output
// (json and jsonb, intervals, enums, arrays, every other type), which is
// what the row comparison builds the canonical form from on both
// PostgreSQL sides, so equal text is an equal canonical form. For DuckDB
// and SQLite copies, targethash.go says which form each type is hashed by.

// summer is a side that can compute checksums of a table's key ranges
// inside its database and read one range of it in key order.
type summer interface {
	Reader
	// sumRanges calls fn with each bucket (key >> shift) of the rows whose
	// key lies in lo..hi and its rows' count and sum of hashes (rowHash:
	// what this side hashes rows by).
	sumRanges(ctx context.Context, t *Table, rowHash string, shift uint, lo, hi int64, fn func(bucket *int64, s rangeSum) error) error
	// scanRange is Scan in key order of the rows whose key lies in lo..hi.
	scanRange(ctx context.Context, t *Table, lo, hi int64, fn func(Row) error) error
	// keyBounds returns the smallest and largest key (ok false: no rows).
	keyBounds(ctx context.Context, t *Table) (lo, hi int64, ok bool, err error)
}

// sumSetup is the query a PostgreSQL side answers sumTypes's ok with
// (hash_record_extended: PostgreSQL 14 and later), which also turns JIT
// compilation off for the rest of the read transaction (set_config's
// is_local). The checksum queries are a scan calling the same few
// functions for every row, which JIT cannot inline: it only adds its
// compilation, in each parallel worker, to every query (150-180 ms per
// process for the 1M-row bench table; more on larger tables, whose cost
// passes jit_optimize_above_cost).
const sumSetup = `SELECT CASE WHEN current_setting('server_version_num')::int >= 140000
	THEN set_config('jit', 'off', true) = 'off' ELSE false END`

// pgSummer is a PostgreSQL side: it hashes rows with hash_record_extended.
type pgSummer interface {
	summer
	// sumTypes returns the type each of t's columns has on this side (0
	// for a column it lacks), or ok false when this side cannot compute
	// the checksums. A side without the table returns ErrNoTable.
	sumTypes(ctx context.Context, t *Table) (types []uint32, ok bool, err error)
}

// foreignSummer is a copy in another database (DuckDB, SQLite) that
// computes PostgreSQL's hashes of its rows.
type foreignSummer interface {
	summer
	// hashPlan returns how t's rows are hashed on both sides, or an
	// *errNoChecksum. A side without the table returns ErrNoTable.
	hashPlan(ctx context.Context, t *Table) (*targetPlan, error)
}

const (
	// sumBuckets is about how many ranges a table (or a range that
	// differs) is split into per pass.
	sumBucketBits = 10
	// sumLeafRows: a range that differs with at most so many rows on
	// either side is compared row by row rather than split again.
	sumLeafRows = 4096
	// sumMaxRanges: with more ranges to compare row by row than this, the
	// whole table is compared row by row.
	sumMaxRanges = 256
)

// checksumKey reports whether t's key suits checksums by range: one
// integer column.
func (t *Table) checksumKey() bool {
	if len(t.keys) != 1 {
		return false
	}
	switch t.Columns[t.keys[0]].TypeID {
	case schema.OIDInt2, schema.OIDInt4, schema.OIDInt8:
		return true
	}
	return false
}

// nativeHash are the types whose values are hashed as their type hashes
// them (when both sides have that type): their equality holds exactly for
// values whose canonical forms are equal, their hash functions (those of
// hash partitioning) do not change between PostgreSQL versions, and they
// hash every bit of the value.
// Not int8, timestamp, timestamptz and time: their hashes fold 64 bits
// into 32 (int8 1 and 4294967296 hash alike); not numeric: its hash ignores
// the sign and puts NaN and both infinities at 0. Those are hashed by
// their binary form (sendHash). Not floats: their hash of 0 is a NULL's
// (floatHashExpr).
var nativeHash = map[uint32]bool{
	schema.OIDInt2: true, schema.OIDInt4: true, schema.OIDOid: true, schema.OIDBool: true,
	schema.OIDBytea: true, schema.OIDDate: true,
	schema.OIDUUID: true,
}

// sendHash are the types hashed by their binary form (their send
// function's bytea), which is exact: for numeric, value and display scale
// (1.5 and 1.50 hash differently, which costs a row comparison, never a
// false equality).
var sendHash = map[uint32]string{
	schema.OIDInt8: "int8send", schema.OIDTimestamp: "timestamp_send", schema.OIDTimestampTZ: "timestamptz_send",
	schema.OIDTime: "time_send", schema.OIDNumeric: "numeric_send",
}

// rowHashExpr is the SQL expression both sides hash a row of t with,
// given the copy's column types.
func rowHashExpr(t *Table, target []uint32) string {
	return recordHash(pgHashParts(t, target), nil)
}

// pgHashParts is, per column of t, the SQL expression both PostgreSQL
// sides hash it by, given the copy's column types.
func pgHashParts(t *Table, target []uint32) []string {
	parts := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		q := quoteIdent(c.Name)
		same := target[i] == c.TypeID
		switch {
		case same && (c.TypeID == schema.OIDFloat4 || c.TypeID == schema.OIDFloat8):
			parts[i] = floatHashExpr(q, c.TypeID == schema.OIDFloat4)
		case same && nativeHash[c.TypeID]:
			parts[i] = q
		case same && sendHash[c.TypeID] != "":
			parts[i] = sendHash[c.TypeID] + "(" + q + ")"
		case same:
			parts[i] = pgTextHashExpr(c)
		default:
			// The copy's column has another type: the text of each side's
			// output function.
			parts[i] = pgOutputExpr(q)
		}
	}
	return parts
}

// recordHash is hash_record_extended over the parts at cols (all of them
// when cols is nil).
func recordHash(parts []string, cols []int) string {
	if cols != nil {
		sub := make([]string, len(cols))
		for i, k := range cols {
			sub[i] = parts[k]
		}
		parts = sub
	}
	return "hashint8extended(0::int8, hash_record_extended(ROW(" + strings.Join(parts, ", ") + "), 0))"
}

// floatHashExpr is the source's (and a PostgreSQL copy's) expression a
// float column q is hashed by: its send form, -0 as 0 and every NaN as
// 'NaN' (PostgreSQL's = holds them equal, and SQLite keeps no -0), as
// pgHashFloatSend. Not the type's own hash: hashfloat8extended hashes 0
// as 0, as hash_record_extended hashes a NULL, so NULL and 0 were equal.
func floatHashExpr(q string, f4 bool) string {
	typ, send := "float8", "float8send"
	if f4 {
		typ, send = "float4", "float4send"
	}
	return send + "(CASE WHEN " + q + " = 'NaN'::" + typ + " THEN 'NaN'::" + typ + " ELSE " + q + " + 0::" + typ + " END)"
}

// sumQuery is the checksum query over from (a FROM item with t's columns).
func sumQuery(t *Table, from, rowHash string, shift uint, lo, hi int64) string {
	k := quoteIdent(t.Columns[t.keys[0]].Name)
	b := fmt.Sprintf("(%s::int8 >> %d)", k, shift)
	q := fmt.Sprintf(`SELECT %s::text, count(*)::text, sum(%s)::text FROM %s`, b, rowHash, from)
	if lo != math.MinInt64 || hi != math.MaxInt64 {
		q += " WHERE " + rangeWhere(t, lo, hi)
	}
	// Grouped by the integer, not by its text (which costs every row a
	// conversion and a text hash: 15% of the query's CPU on bench_t).
	return q + " GROUP BY " + b
}

// rangeWhere restricts t's rows to keys lo..hi.
func rangeWhere(t *Table, lo, hi int64) string {
	return fmt.Sprintf("%s BETWEEN '%d'::int8 AND '%d'::int8", quoteIdent(t.Columns[t.keys[0]].Name), lo, hi)
}

func keyBoundsQuery(t *Table, from string) string {
	k := quoteIdent(t.Columns[t.keys[0]].Name)
	return "SELECT min(" + k + ")::text, max(" + k + ")::text FROM " + from
}

// rangeSum is one range's row count and the sum of its rows' hashes.
type rangeSum struct {
	rows int64
	sum  uint64
	// unhashed: a row's value could not be hashed as the source hashes
	// it, so the range is compared row by row.
	unhashed bool
}

var two64 = new(big.Int).Lsh(big.NewInt(1), 64)

// sumMod64 reads a sum as PostgreSQL prints a numeric (an integer here),
// modulo 2^64.
func sumMod64(s string) (uint64, error) {
	if s == "" {
		return 0, nil // sum of no rows (NULL)
	}
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return 0, fmt.Errorf("checksum %q is not an integer", s)
	}
	return n.Mod(n, two64).Uint64(), nil
}

// errNoChecksum: the checksums cannot be used for this table; compare it
// row by row.
type errNoChecksum struct{ why string }

func (e *errNoChecksum) Error() string { return e.why }

// keyRange is lo..hi, inclusive.
type keyRange struct{ lo, hi int64 }

// bucketRange is the range of keys bucket b holds at shift.
func bucketRange(b int64, shift uint) keyRange {
	lo := b << shift
	return keyRange{lo, lo | int64(uint64(1)<<shift-1)}
}

// checksum compares t by checksums of key ranges, and the ranges that
// differ row by row. An *errNoChecksum means nothing was compared.
func (c *comparison) checksum(ctx context.Context, src, dst summer) error {
	t := c.t
	ps, ok := src.(pgSummer)
	if !ok {
		return &errNoChecksum{"the source cannot compute checksums"}
	}
	styp, ok, err := ps.sumTypes(ctx, t)
	if err != nil {
		return fmt.Errorf("read the source: %w", err)
	}
	if !ok {
		return &errNoChecksum{"the source has no hash_record_extended (PostgreSQL before 14)"}
	}
	for i, c := range t.Columns {
		if styp[i] != c.TypeID {
			return &errNoChecksum{"the source's column types changed"}
		}
	}
	srcHash, dstHash, err := c.rowHashes(ctx, dst)
	if err != nil {
		return err
	}
	lo, hi, ok, err := src.keyBounds(ctx, t)
	if err != nil {
		return fmt.Errorf("read the source: %w", err)
	}
	if !ok {
		return &errNoChecksum{"the source table is empty"}
	}
	// The first pass covers every key (the copy may hold keys outside the
	// source's), in about 2^sumBucketBits ranges of the source's keys.
	shift := uint(0)
	for uint64(hi>>shift)-uint64(lo>>shift) >= 1<<sumBucketBits { // as uint64: no overflow
		shift++
	}
	var leaves []keyRange
	if err := c.sumPass(ctx, src, dst, srcHash, dstHash, shift, keyRange{math.MinInt64, math.MaxInt64}, &leaves); err != nil {
		return err
	}
	if len(leaves) == 0 {
		return nil
	}
	if len(leaves) > sumMaxRanges {
		return &errNoChecksum{fmt.Sprintf("more than %d key ranges differ", sumMaxRanges)}
	}
	// Without an index on the key, each range read is a scan of the whole
	// table: compare the whole table row by row instead.
	if ix, ok := dst.(interface {
		keyIndexed(context.Context, *Table) (bool, error)
	}); ok && len(leaves) > 1 {
		indexed, err := ix.keyIndexed(ctx, t)
		if err != nil {
			return fmt.Errorf("read the copy: %w", err)
		}
		if !indexed {
			return &errNoChecksum{"the copy has no index on the key, and several key ranges differ"}
		}
	}
	for _, r := range leaves {
		c.rng = &r
		err := c.merge(ctx)
		c.rng = nil
		if err != nil {
			return err
		}
	}
	c.rep.Note = fmt.Sprintf("checksums differed in %d key ranges: compared row by row there", len(leaves))
	return nil
}

// rowHashes returns the expressions the source and the copy hash t's rows
// with, or an *errNoChecksum.
func (c *comparison) rowHashes(ctx context.Context, dst summer) (srcHash, dstHash string, err error) {
	h, err := c.hashing(ctx, dst)
	if err != nil {
		return "", "", err
	}
	k := c.t.keys[0]
	if p := h.foreign; p != nil && p.codes[k] != hcInt32 && p.codes[k] != hcInt8 || p == nil && h.types[k] != c.t.Columns[k].TypeID {
		return "", "", &errNoChecksum{"the copy's key column has another type"}
	}
	return h.srcHash(nil), h.dstHash(nil), nil
}

// hashing is how both sides hash t's values: per column, an expression
// on each side that gives the same 64-bit hash for the same value.
type hashing struct {
	src     []string    // the source's SQL per column
	pg      []string    // a PostgreSQL copy's SQL per column
	types   []uint32    // a PostgreSQL copy's column types
	foreign *targetPlan // a DuckDB or SQLite copy's plan
}

// srcHash is the source's SQL hashing the columns at cols (all when nil)
// as a record.
func (h *hashing) srcHash(cols []int) string { return recordHash(h.src, cols) }

// dstHash is the copy's: SQL for a PostgreSQL copy, the hash codes and
// columns (targetArgs) for a DuckDB or SQLite one.
func (h *hashing) dstHash(cols []int) string {
	if h.foreign != nil {
		return h.foreign.targetArgsOf(cols)
	}
	return recordHash(h.pg, cols)
}

// hashing returns how both sides hash t's values, or an *errNoChecksum.
func (c *comparison) hashing(ctx context.Context, dst Reader) (*hashing, error) {
	t := c.t
	if fs, ok := dst.(foreignSummer); ok {
		p, err := fs.hashPlan(ctx, t)
		switch {
		case errors.Is(err, ErrNoTable):
			return nil, &errNoChecksum{"the copy has no such table"}
		case err != nil:
			var nc *errNoChecksum
			if errors.As(err, &nc) {
				return nil, err
			}
			return nil, fmt.Errorf("read the copy: %w", err)
		}
		return &hashing{src: p.sourceParts(t), foreign: p}, nil
	}
	ps, ok := dst.(pgSummer)
	if !ok {
		return nil, &errNoChecksum{"the copy cannot compute checksums"}
	}
	dtyp, ok, err := ps.sumTypes(ctx, t)
	if errors.Is(err, ErrNoTable) {
		return nil, &errNoChecksum{"the copy has no such table"}
	}
	if err != nil {
		return nil, fmt.Errorf("read the copy: %w", err)
	}
	if !ok {
		return nil, &errNoChecksum{"the copy's PostgreSQL has no hash_record_extended (before 14)"}
	}
	for i, c := range t.Columns {
		if dtyp[i] == 0 {
			return nil, &errNoChecksum{fmt.Sprintf("the copy's table has no column %q", c.Name)}
		}
	}
	parts := pgHashParts(t, dtyp)
	return &hashing{src: parts, pg: parts, types: dtyp}, nil
}

// sumPass computes the checksums of the buckets of r at shift on both
// sides, counts the rows of equal ones, and splits those that differ,
// adding to leaves (merged when adjacent) the ranges to compare row by row.
func (c *comparison) sumPass(ctx context.Context, src, dst summer, srcHash, dstHash string, shift uint, r keyRange, leaves *[]keyRange) error {
	if len(*leaves) > sumMaxRanges {
		return nil
	}
	type pair struct{ s, d rangeSum }
	collect := func(side summer, rowHash string, into map[int64]rangeSum) error {
		return side.sumRanges(ctx, c.t, rowHash, shift, r.lo, r.hi, func(b *int64, s rangeSum) error {
			if b == nil {
				return &errNoChecksum{"a key is NULL (or, in SQLite, not an integer)"}
			}
			into[*b] = s
			return nil
		})
	}
	// Both sides compute at once.
	ssums, dsums := map[int64]rangeSum{}, map[int64]rangeSum{}
	var derr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		derr = collect(dst, dstHash, dsums)
	}()
	serr := collect(src, srcHash, ssums)
	<-done
	var nc *errNoChecksum
	switch {
	case errors.As(serr, &nc) || errors.As(derr, &nc):
		return nc
	case serr != nil:
		return fmt.Errorf("read the source: %w", serr)
	case derr != nil:
		return fmt.Errorf("read the copy: %w", derr)
	}
	sums := make(map[int64]*pair, len(ssums))
	for b, s := range ssums {
		sums[b] = &pair{s: s}
	}
	for b, d := range dsums {
		if p := sums[b]; p != nil {
			p.d = d
		} else {
			sums[b] = &pair{d: d}
		}
	}
	buckets := make([]int64, 0, len(sums))
	for b := range sums {
		buckets = append(buckets, b)
	}
	slices.Sort(buckets)
	for _, b := range buckets {
		p := sums[b]
		if p.s == p.d {
			c.rep.SourceRows += p.s.rows
			c.rep.TargetRows += p.d.rows
			continue
		}
		br := bucketRange(b, shift)
		br.lo, br.hi = max(br.lo, r.lo), min(br.hi, r.hi)
		if shift == 0 || max(p.s.rows, p.d.rows) <= sumLeafRows {
			if n := len(*leaves); n > 0 && (*leaves)[n-1].hi+1 == br.lo {
				(*leaves)[n-1].hi = br.hi
			} else {
				*leaves = append(*leaves, br)
			}
			continue
		}
		sub := uint(0)
		if shift > sumBucketBits {
			sub = shift - sumBucketBits
		}
		if err := c.sumPass(ctx, src, dst, srcHash, dstHash, sub, br, leaves); err != nil {
			return err
		}
	}
	return nil
}

// parseInt64 reads an integer PostgreSQL printed.
func parseInt64(b []byte) (int64, error) { return strconv.ParseInt(string(b), 10, 64) }

// readSums calls fn with the rows of a sumQuery, values in text form.
func readSums(vals [][]byte, fn func(bucket *int64, s rangeSum) error) error {
	if len(vals) != 3 {
		return fmt.Errorf("checksum query returned %d columns", len(vals))
	}
	var b *int64
	if vals[0] != nil {
		v, err := parseInt64(vals[0])
		if err != nil {
			return err
		}
		b = &v
	}
	n, err := parseInt64(vals[1])
	if err != nil {
		return err
	}
	sum, err := sumMod64(string(vals[2]))
	if err != nil {
		return err
	}
	return fn(b, rangeSum{rows: n, sum: sum})
}

// readBounds reads the row of a keyBoundsQuery.
func readBounds(vals [][]byte) (lo, hi int64, ok bool, err error) {
	if len(vals) != 2 || vals[0] == nil || vals[1] == nil {
		return 0, 0, false, nil
	}
	if lo, err = parseInt64(vals[0]); err == nil {
		hi, err = parseInt64(vals[1])
	}
	return lo, hi, err == nil, err
}
