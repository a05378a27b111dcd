package verify

import (
	"context"
	"strings"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
)

// sourceReader reads the source's tables in the comparison snapshot.
type sourceReader struct{ sn *source.Snapshot }

// SourceReader reads the source as a snapshot from source.OpenComparison
// shows it, with the publication's column lists and row filters.
func SourceReader(sn *source.Snapshot) Reader { return sourceReader{sn} }

func (r sourceReader) Scan(ctx context.Context, t *Table, sorted bool, fn func(Row) error) error {
	var b rowBuilder
	conv := func(tup schema.Tuple) error { return fn(b.tuple(t, tup)) }
	if sorted {
		return r.sn.CopyOrdered(ctx, t.Table, pgOrderBy(t), conv)
	}
	return r.sn.Copy(ctx, t.Table, conv)
}

// pgOrderBy sorts a PostgreSQL table by its key as verify compares keys:
// text in the C collation (byte order).
func pgOrderBy(t *Table) string {
	parts := make([]string, len(t.keys))
	for i, k := range t.keys {
		parts[i] = quoteIdent(t.Columns[k].Name)
		if t.cols[k].kind == schema.KindText {
			parts[i] += ` COLLATE "C"`
		}
	}
	return strings.Join(parts, ", ")
}

// tuple builds the Row of a source tuple in PostgreSQL's text form.
func (b *rowBuilder) tuple(t *Table, tup schema.Tuple) Row {
	b.reset()
	for i, d := range tup {
		if d.State == schema.Null {
			b.null()
		} else {
			b.text(t.cols[i], d.Data)
		}
	}
	return b.row()
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func (r sourceReader) sumTypes(ctx context.Context, t *Table) ([]uint32, bool, error) {
	ok := false
	err := r.sn.QueryPublished(ctx, t.Table, func(string) string {
		return sumSetup
	}, func(vals [][]byte) error {
		ok = len(vals) == 1 && string(vals[0]) == "t"
		return nil
	})
	types := make([]uint32, len(t.Columns))
	for i, c := range t.Columns {
		types[i] = c.TypeID
	}
	return types, ok, err
}

func (r sourceReader) sumRanges(ctx context.Context, t *Table, rowHash string, shift uint, lo, hi int64, fn func(*int64, rangeSum) error) error {
	return r.sn.QueryPublished(ctx, t.Table, func(from string) string {
		return sumQuery(t, from, rowHash, shift, lo, hi)
	}, func(vals [][]byte) error { return readSums(vals, fn) })
}

func (r sourceReader) scanRange(ctx context.Context, t *Table, lo, hi int64, fn func(Row) error) error {
	var b rowBuilder
	return r.sn.CopyRange(ctx, t.Table, rangeWhere(t, lo, hi), pgOrderBy(t), func(tup schema.Tuple) error {
		return fn(b.tuple(t, tup))
	})
}

func (r sourceReader) keyBounds(ctx context.Context, t *Table) (lo, hi int64, ok bool, err error) {
	err = r.sn.QueryPublished(ctx, t.Table, func(from string) string { return keyBoundsQuery(t, from) },
		func(vals [][]byte) error {
			lo, hi, ok, err = readBounds(vals)
			return err
		})
	return lo, hi, ok, err
}

var _ pgSummer = sourceReader{}

// rowEstimate is the source's estimate of t's rows (-1: unknown).
func (r sourceReader) rowEstimate(t *Table) int64 {
	if e, ok := r.sn.Estimates[t.ID]; ok {
		return e
	}
	return -1
}

func (r sourceReader) sumBuckets(ctx context.Context, t *Table, h sideHash, bits uint, within *bucketFilter, fn func(*int64, rangeSum) error) error {
	return r.sn.QueryPublished(ctx, t.Table, func(from string) string {
		return pgBucketSums(from, h, bits, within)
	}, func(vals [][]byte) error { return readSums(vals, fn) })
}

// scanBuckets reads the rows in f's buckets in key order (a table without
// a key: in the order of their hash, as CopyRange sorts).
func (r sourceReader) scanBuckets(ctx context.Context, t *Table, h sideHash, f *bucketFilter, _ bool, fn func(Row) error) error {
	order := pgOrderBy(t)
	if order == "" {
		order = h.bucketKey()
	}
	var b rowBuilder
	return r.sn.CopyRange(ctx, t.Table, f.sql(h.bucketKey()), order, func(tup schema.Tuple) error {
		return fn(b.tuple(t, tup))
	})
}

var _ bucketSummer = sourceReader{}
