package verify

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
)

// Checksums by key hash (MethodChecksum for every table whose key is not
// one integer column, and for tables without a key).
//
// Ranges of keys only partition both sides alike where both order keys
// alike, and for most key types they do not: text sorts by the column's
// collation in PostgreSQL ('a' < 'B' < 'é' in most locales, 'B' < 'a' <
// 'é' in C), by its bytes in SQLite and DuckDB; a SQLite copy keeps
// numerics, timestamps (BC dates sort after AD ones as ISO text), uuids
// and intervals as text; a numeric key 1.5 is also 1.50. So these tables
// are partitioned by a hash of the key instead: a row's bucket is the low
// bits of the same 64-bit hash of its key's values on both sides
// (hash_record_extended over the key columns, hashed as the row hash
// hashes them: text by its bytes, never by a collation; pghash.go ports it
// for DuckDB and SQLite). Equal keys in the same form fall in the same
// bucket on both sides whatever either database's ordering, collation or
// storage form. Per bucket each side computes, as for key ranges, the
// number of rows and the sum of their row hashes; buckets whose sums agree
// are equal. The rows of the buckets that differ are then read on both
// sides (each side keeps the rows it places in one of them) and compared
// row by row as without checksums (merged in key order, or matched by key
// in memory), which names them. A key the copy holds in another form than
// the source hashes (a value it keeps in another spelling, one it cannot
// hash at all) puts its row in another bucket than the source's or in
// none: both buckets differ and are compared row by row together, where
// the canonical forms decide. So a false difference only costs the row
// comparison of its buckets; a difference goes unseen only through a hash
// collision.
//
// A table without a key is bucketed by its row hash itself: a bucket's
// count and sum are those of a multiset of rows (a duplicated row adds its
// hash once more, a removed one takes it away), and the rows of the
// buckets that differ are compared as multisets.
//
// The number of buckets follows the source's row estimate (about
// bucketRows rows a bucket, at least 2^minBucketBits buckets); a bucket
// that differs and holds more than bucketLeafRows rows on either side is
// split by more bits of the hash in another pass before its rows are read.

// bucketLeafRows: a differing bucket with more rows than this on either
// side is split before its rows are read (a variable for the tests).
var bucketLeafRows int64 = 16384

const (
	bucketRows    = 512
	minBucketBits = 8
	maxBucketBits = 20
	// bucketSplitBits: how many more bits of the hash a pass splitting
	// large differing buckets uses.
	bucketSplitBits = 8
	// With more than 1/bucketWholeShare of the buckets differing, the
	// whole table is compared row by row (reading the buckets would read
	// most of it anyway).
	bucketWholeShare = 4
)

// sideHash is how one side computes a row's bucket and hash: SQL
// expressions (PostgreSQL), or the hash codes and columns (DuckDB, SQLite:
// targetArgs). key is empty for a table without a key: its rows are
// bucketed by row.
type sideHash struct{ key, row string }

// bucketKey is the expression a row's bucket is taken from.
func (h sideHash) bucketKey() string {
	if h.key == "" {
		return h.row
	}
	return h.key
}

// bucketFilter selects the rows of some buckets: those whose hash's low
// bits are one of a level's buckets (levels select disjoint rows: a deeper
// level splits buckets of the one above that it does not name itself),
// and with null those whose key a side could not hash.
type bucketFilter struct {
	levels []bucketLevel
	null   bool
}

// bucketLevel is some buckets (sorted) of the low bits bits of the hash.
type bucketLevel struct {
	bits    uint
	buckets []int64
}

func (l bucketLevel) mask() int64 { return int64(uint64(1)<<l.bits - 1) }

func (f *bucketFilter) empty() bool { return !f.null && len(f.levels) == 0 }

// count is how many buckets f names.
func (f *bucketFilter) count() int {
	n := 0
	for _, l := range f.levels {
		n += len(l.buckets)
	}
	if f.null {
		n++
	}
	return n
}

// has reports whether a row whose key hashes to h is in f.
func (f *bucketFilter) has(h uint64) bool {
	for _, l := range f.levels {
		if _, ok := slices.BinarySearch(l.buckets, int64(h&uint64(l.mask()))); ok {
			return true
		}
	}
	return false
}

// sql is the condition selecting the filter's rows, given the expression
// of the hash they are bucketed by (NULL: not hashed).
func (f *bucketFilter) sql(hash string) string {
	var conds []string
	for _, l := range f.levels {
		list := make([]string, len(l.buckets))
		for i, b := range l.buckets {
			list[i] = strconv.FormatInt(b, 10)
		}
		conds = append(conds, fmt.Sprintf("(%s & %d) IN (%s)", hash, l.mask(), strings.Join(list, ", ")))
	}
	if f.null {
		conds = append(conds, hash+" IS NULL")
	}
	if len(conds) == 0 {
		return "false"
	}
	return "(" + strings.Join(conds, " OR ") + ")"
}

// bucketSummer is a side that computes checksums of a table's buckets
// inside its database and reads the rows of some buckets.
type bucketSummer interface {
	Reader
	// sumBuckets calls fn with each bucket (the low bits bits of the key's
	// hash) of the rows within (nil: all rows), its rows' count and sum of
	// row hashes; bucket nil: the rows whose key could not be hashed.
	sumBuckets(ctx context.Context, t *Table, h sideHash, bits uint, within *bucketFilter, fn func(bucket *int64, s rangeSum) error) error
	// scanBuckets is Scan of the rows in f's buckets.
	scanBuckets(ctx context.Context, t *Table, h sideHash, f *bucketFilter, sorted bool, fn func(Row) error) error
}

// pgBucketSums is the checksum query by bucket on a PostgreSQL side.
func pgBucketSums(from string, h sideHash, bits uint, within *bucketFilter) string {
	where := ""
	if within != nil {
		where = " WHERE " + within.sql(h.bucketKey())
	}
	mask := int64(uint64(1)<<bits - 1)
	if h.key == "" {
		// OFFSET 0 keeps the subquery from being pulled up into the
		// query, which would compute the row hash twice for every row
		// (once for the group, once for the sum). It also keeps the
		// source from scanning in parallel: the hash is computed once per
		// row, a verification taking as little of the source's CPU as it
		// can.
		return fmt.Sprintf(`SELECT (h & %d)::text, count(*)::text, sum(h)::text FROM (SELECT %s AS h FROM %s%s OFFSET 0) x GROUP BY h & %d`,
			mask, h.row, from, where, mask)
	}
	return fmt.Sprintf(`SELECT b::text, count(*)::text, sum(h)::text FROM (SELECT %s & %d AS b, %s AS h FROM %s%s) x GROUP BY b`,
		h.key, mask, h.row, from, where)
}

// bucketBits is how many bits of the hash the first pass buckets a table
// of about rows rows by.
func bucketBits(rows int64) uint {
	b := uint(minBucketBits)
	if rows > 0 {
		b = max(b, uint(bits.Len64(uint64(rows/bucketRows))))
	}
	return min(b, maxBucketBits)
}

// bucketChecksum compares t by checksums of buckets of its key's hash (of
// its rows' for a table without a key), and the buckets that differ row
// by row. An *errNoChecksum means nothing was compared.
func (c *comparison) bucketChecksum(ctx context.Context, src, dst bucketSummer, estimate int64) error {
	t := c.t
	ps, ok := src.(pgSummer)
	if !ok {
		return &errNoChecksum{"the source cannot compute checksums"}
	}
	if err := c.sourceSums(ctx, ps); err != nil {
		return err
	}
	h, err := c.hashing(ctx, dst)
	if err != nil {
		return err
	}
	var keys []int
	if t.Keyed() {
		keys = t.keys
	}
	sh := sideHash{row: h.srcHash(nil)}
	dh := sideHash{row: h.dstHash(nil)}
	if keys != nil {
		sh.key, dh.key = h.srcHash(keys), h.dstHash(keys)
	}
	nbits := bucketBits(estimate)
	leaves := &bucketFilter{}
	var within *bucketFilter
	passes := 0
	for {
		passes++
		small, large, null, err := c.bucketPass(ctx, src, dst, sh, dh, nbits, within)
		if err != nil {
			return err
		}
		leaves.null = leaves.null || null
		if passes == 1 && len(small)+len(large) > (1<<nbits)/bucketWholeShare {
			return &errNoChecksum{fmt.Sprintf("%d of %d buckets of the key's hash differ", len(small)+len(large), 1<<nbits)}
		}
		if len(large) > 0 && nbits+bucketSplitBits > 62 {
			small, large = slices.Concat(small, large), nil
			slices.Sort(small)
		}
		if len(small) > 0 {
			leaves.levels = append(leaves.levels, bucketLevel{bits: nbits, buckets: small})
		}
		if len(large) == 0 {
			break
		}
		// Split the large buckets that differ by more bits of the hash.
		within = &bucketFilter{levels: []bucketLevel{{bits: nbits, buckets: large}}}
		nbits += bucketSplitBits
	}
	if leaves.empty() {
		return nil
	}
	c.bkt = &bucketRead{src: sh, dst: dh, f: leaves}
	defer func() { c.bkt = nil }()
	var cerr error
	switch {
	case !t.Keyed():
		cerr = c.multiset(ctx)
	case t.Sorted():
		cerr = c.merge(ctx)
		var u *unorderedError
		if errors.As(cerr, &u) {
			// The rows counted so far are counted again.
			return &errNoChecksum{u.Error()}
		}
	default:
		cerr = c.hash(ctx)
	}
	if cerr != nil {
		return cerr
	}
	n := leaves.count()
	c.rep.Note = fmt.Sprintf("checksums differed in %d of the buckets of the key's hash (%d passes): compared row by row there", n, passes)
	if !t.Keyed() {
		c.rep.Note = fmt.Sprintf("checksums differed in %d of the buckets of the rows' hash (%d passes): compared as multisets there", n, passes)
	}
	return nil
}

// bucketRead restricts the rows a comparison reads to some buckets.
type bucketRead struct {
	src, dst sideHash
	f        *bucketFilter
}

// sourceSums checks that the source can compute the checksums of t.
func (c *comparison) sourceSums(ctx context.Context, ps pgSummer) error {
	styp, ok, err := ps.sumTypes(ctx, c.t)
	if err != nil {
		return fmt.Errorf("read the source: %w", err)
	}
	if !ok {
		return &errNoChecksum{"the source has no hash_record_extended (PostgreSQL before 14)"}
	}
	for i, col := range c.t.Columns {
		if styp[i] != col.TypeID {
			return &errNoChecksum{"the source's column types changed"}
		}
	}
	return nil
}

// bucketPass computes the checksums of the buckets at nbits of the rows
// within on both sides, counts the rows of the equal ones, and returns
// those that differ (sorted), split into those that hold at most
// bucketLeafRows rows on either side and larger ones, and whether the copy
// holds rows whose key it could not hash.
func (c *comparison) bucketPass(ctx context.Context, src, dst bucketSummer, sh, dh sideHash, nbits uint, within *bucketFilter) (small, large []int64, null bool, err error) {
	type pair struct{ s, d rangeSum }
	sums := map[int64]*pair{}
	var dnull *rangeSum
	ssums, dsums := map[int64]rangeSum{}, map[int64]rangeSum{}
	var derr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		derr = dst.sumBuckets(ctx, c.t, dh, nbits, within, func(b *int64, s rangeSum) error {
			if b == nil {
				dnull = &s
				return nil
			}
			dsums[*b] = s
			return nil
		})
	}()
	serr := src.sumBuckets(ctx, c.t, sh, nbits, within, func(b *int64, s rangeSum) error {
		if b == nil {
			return errors.New("the source could not hash a key")
		}
		ssums[*b] = s
		return nil
	})
	<-done
	var nc *errNoChecksum
	switch {
	case errors.As(serr, &nc) || errors.As(derr, &nc):
		return nil, nil, false, nc
	case errors.Is(derr, ErrNoTable):
		return nil, nil, false, &errNoChecksum{"the copy has no such table"}
	case serr != nil:
		return nil, nil, false, fmt.Errorf("read the source: %w", serr)
	case derr != nil:
		return nil, nil, false, fmt.Errorf("read the copy: %w", derr)
	}
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
	for b, p := range sums {
		switch {
		case p.s == p.d:
			c.rep.SourceRows += p.s.rows
			c.rep.TargetRows += p.d.rows
		case max(p.s.rows, p.d.rows) > bucketLeafRows:
			large = append(large, b)
		default:
			small = append(small, b)
		}
	}
	slices.Sort(small)
	slices.Sort(large)
	return small, large, dnull != nil, nil
}
