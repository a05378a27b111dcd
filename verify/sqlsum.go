package verify

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
)

// Checksums of a DuckDB or SQLite copy (targethash.go): SQLReader is a
// foreignSummer.

func (r *SQLReader) hashPlan(ctx context.Context, t *Table) (*targetPlan, error) {
	types, err := r.columnTypes(ctx, t)
	if err != nil {
		return nil, err
	}
	if len(types) == 0 {
		return nil, fmt.Errorf("%s: %w", r.name(t), ErrNoTable)
	}
	p := &targetPlan{dst: make([]string, len(t.Columns))}
	codes := make([]byte, len(t.Columns))
	for i, c := range t.Columns {
		typ, ok := types[strings.ToLower(c.Name)]
		if !ok {
			return nil, &errNoChecksum{fmt.Sprintf("the copy's table has no column %q", c.Name)}
		}
		if r.duckdb {
			codes[i], p.dst[i] = duckHashCode(c, typ)
			if codes[i] == 0 {
				return nil, &errNoChecksum{fmt.Sprintf("column %q is kept as DuckDB %s, which the checksums do not hash as the source does", c.Name, typ)}
			}
		} else {
			codes[i], p.dst[i] = sqliteHashCode(c), quoteIdent(c.Name)
		}
	}
	p.codes = string(codes)
	if r.duckdb {
		// The functions the checksums call: the row's, and the key's.
		for _, args := range []string{p.targetArgs(), p.targetArgsOf(t.keys)} {
			if len(t.keys) == 0 && args != p.targetArgs() {
				continue
			}
			if _, err := r.duckHash(args); err != nil {
				return nil, &errNoChecksum{"the copy cannot register the hash function: " + err.Error()}
			}
		}
	}
	return p, nil
}

// duckHash is the DuckDB expression hashing args (the hash codes and the
// columns, as targetArgs gives them), registering its function on first
// use.
func (r *SQLReader) duckHash(args string) (string, error) {
	codes, cols := splitArgs(args)
	if !r.hashFuncs[codes] {
		if err := registerHash(r.conn, codes); err != nil {
			return "", err
		}
		if r.hashFuncs == nil {
			r.hashFuncs = map[string]bool{}
		}
		r.hashFuncs[codes] = true
	}
	return duckHashName(codes) + "(" + cols + ")", nil
}

// sqlInt is v as an integer literal both DuckDB and SQLite read exactly.
func sqlInt(v int64) string {
	if v == math.MinInt64 {
		return "(-9223372036854775807-1)"
	}
	return strconv.FormatInt(v, 10)
}

// sqlRangeWhere restricts t's rows to keys lo..hi.
func sqlRangeWhere(t *Table, lo, hi int64) string {
	k := quoteIdent(t.Columns[t.keys[0]].Name)
	return k + " >= " + sqlInt(lo) + " AND " + k + " <= " + sqlInt(hi)
}

func (r *SQLReader) sumRanges(ctx context.Context, t *Table, args string, shift uint, lo, hi int64, fn func(*int64, rangeSum) error) error {
	k := quoteIdent(t.Columns[t.keys[0]].Name)
	where := ""
	if lo != math.MinInt64 || hi != math.MaxInt64 {
		where = " WHERE " + sqlRangeWhere(t, lo, hi)
	}
	if !r.duckdb {
		return r.sqliteSums(ctx, t, args, shift, where, fn)
	}
	// The function returns NULL for a row it cannot hash.
	hash, err := r.duckHash(args)
	if err != nil {
		return err
	}
	q := fmt.Sprintf(`SELECT b, count(*), CAST(sum(h) AS VARCHAR), count(*) - count(h) FROM
		(SELECT CAST(%s AS BIGINT) >> %d AS b, %s AS h FROM %s%s) GROUP BY b`,
		k, shift, hash, r.name(t), where)
	return r.duckSums(ctx, q, fn)
}

// sqliteSums computes the checksums of a SQLite copy as it reads the rows
// (args: the hash codes and the columns, as for DuckDB's function), straight
// from the driver. A key that is not an integer (SQLite keeps what it is
// given) is a NULL bucket. The first pass over the whole table is read in
// two halves of the keys at once, on two connections, when the copy has a
// second connection seeing exactly what the first sees (twin): SQLite's
// reading and the driver's handing values to Go take most of verify's time
// on a SQLite copy, and a core each halves it.
func (r *SQLReader) sqliteSums(ctx context.Context, t *Table, args string, shift uint, where string, fn func(*int64, rangeSum) error) error {
	codes, cols := splitArgs(args)
	k := quoteIdent(t.Columns[t.keys[0]].Name)
	q := "SELECT " + k + ", " + cols + " FROM " + r.name(t)
	type part struct {
		conn       *sql.Conn
		q          string
		sums       map[int64]*rangeSum
		nonInteger bool
		err        error
	}
	parts := []*part{{conn: r.conn, q: q + where}}
	if twin := r.twin(ctx); twin != nil && where == "" {
		// Split at the middle of the keys, on a bucket's boundary. The
		// second half has every row the first does not (NULL and text
		// keys too).
		var lo, hi *int64
		err := r.conn.QueryRowContext(ctx, "SELECT min("+k+"), max("+k+") FROM "+r.name(t)+" WHERE typeof("+k+") = 'integer'").Scan(&lo, &hi)
		if err == nil && lo != nil && hi != nil {
			if m := (*lo + (*hi-*lo)/2) >> shift << shift; m > *lo {
				parts = []*part{{conn: r.conn, q: q + " WHERE " + k + " < " + sqlInt(m)},
					{conn: twin, q: q + " WHERE NOT coalesce(" + k + " < " + sqlInt(m) + ", false)"}}
			}
		}
	}
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.sums, p.nonInteger, p.err = sqliteSumsOn(ctx, p.conn, p.q, codes, shift)
		}()
	}
	wg.Wait()
	nonInteger := false
	sums := map[int64]*rangeSum{}
	for _, p := range parts {
		if p.err != nil {
			return p.err
		}
		nonInteger = nonInteger || p.nonInteger
		for b, s := range p.sums {
			if t := sums[b]; t != nil { // not when split on a bucket's boundary
				t.rows, t.sum, t.unhashed = t.rows+s.rows, t.sum+s.sum, t.unhashed || s.unhashed
			} else {
				sums[b] = s
			}
		}
	}
	if nonInteger {
		return fn(nil, rangeSum{})
	}
	for b, s := range sums {
		if err := fn(&b, *s); err != nil {
			return err
		}
	}
	return nil
}

// sqliteSumsOn runs q (the key, then the columns codes hashes) on conn and
// sums its rows by bucket (key >> shift); nonInteger: a key is no integer.
func sqliteSumsOn(ctx context.Context, conn *sql.Conn, q, codes string, shift uint) (sums map[int64]*rangeSum, nonInteger bool, err error) {
	sums = map[int64]*rangeSum{}
	err = conn.Raw(func(dc any) error {
		qc, ok := dc.(driver.QueryerContext)
		if !ok {
			return fmt.Errorf("the SQLite driver cannot query (%T)", dc)
		}
		rows, err := qc.QueryContext(ctx, q, nil)
		if err != nil {
			return err
		}
		defer rows.Close()
		vals := make([]driver.Value, 1+len(codes))
		for {
			if err := rows.Next(vals); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			k, ok := vals[0].(int64)
			if !ok {
				nonInteger = true
				return nil
			}
			b := k >> shift
			s := sums[b]
			if s == nil {
				s = &rangeSum{}
				sums[b] = s
			}
			s.rows++
			h, ok := rowHash(codes, vals[1:])
			s.sum += h
			s.unhashed = s.unhashed || !ok
		}
	})
	return sums, nonInteger, err
}

func (r *SQLReader) scanRange(ctx context.Context, t *Table, lo, hi int64, fn func(Row) error) error {
	return r.scan(ctx, t, true, sqlRangeWhere(t, lo, hi), fn)
}

func (r *SQLReader) keyBounds(ctx context.Context, t *Table) (lo, hi int64, ok bool, err error) {
	k := quoteIdent(t.Columns[t.keys[0]].Name)
	var l, h *int64
	if err := r.conn.QueryRowContext(ctx, "SELECT min("+k+"), max("+k+") FROM "+r.name(t)).Scan(&l, &h); err != nil {
		return 0, 0, false, err
	}
	if l == nil || h == nil {
		return 0, 0, false, nil
	}
	return *l, *h, true, nil
}

var _ foreignSummer = (*SQLReader)(nil)

// splitArgs splits targetArgs's text into the hash codes and the columns.
func splitArgs(args string) (codes, cols string) {
	codes, cols, _ = strings.Cut(args, ", ")
	return strings.Trim(codes, "'"), cols
}

func (r *SQLReader) sumBuckets(ctx context.Context, t *Table, h sideHash, bits uint, within *bucketFilter, fn func(*int64, rangeSum) error) error {
	if !r.duckdb {
		return r.sqliteBucketSums(ctx, t, h, bits, within, fn)
	}
	row, err := r.duckHash(h.row)
	if err != nil {
		return err
	}
	key := row
	if h.key != "" {
		if key, err = r.duckHash(h.key); err != nil {
			return err
		}
	}
	where := ""
	if within != nil {
		where = " WHERE " + within.sql(key)
	}
	mask := int64(uint64(1)<<bits - 1)
	inner := fmt.Sprintf("SELECT %s & %d AS b, %s AS h FROM %s%s", key, mask, row, r.name(t), where)
	if h.key == "" {
		inner = fmt.Sprintf("SELECT h & %d AS b, h FROM (SELECT %s AS h FROM %s%s)", mask, row, r.name(t), where)
	}
	// The function returns NULL for a row it cannot hash.
	return r.duckSums(ctx, "SELECT b, count(*), CAST(sum(h) AS VARCHAR), count(*) - count(h) FROM ("+inner+") GROUP BY b", fn)
}

// duckSums runs a DuckDB checksum query (bucket, count, sum as text, rows
// not hashed) and calls fn with each row.
func (r *SQLReader) duckSums(ctx context.Context, q string, fn func(*int64, rangeSum) error) error {
	rows, err := r.conn.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var b *int64
		var n, unhashed int64
		var sum *string
		if err := rows.Scan(&b, &n, &sum, &unhashed); err != nil {
			return err
		}
		s := rangeSum{rows: n, unhashed: unhashed > 0 || sum == nil}
		if sum != nil {
			if s.sum, err = sumMod64(*sum); err != nil {
				return err
			}
		}
		if err := fn(b, s); err != nil {
			return err
		}
	}
	return rows.Err()
}

// sqliteKeyHash returns how a SQLite copy's row (its columns' values in
// t's order) is placed in a bucket: the hash of its key's values, or of
// the whole row for a table without a key; ok false when they cannot be
// hashed as the source hashes them.
func sqliteKeyHash(t *Table, h sideHash) func(vals []driver.Value) (uint64, bool) {
	codes, _ := splitArgs(h.row)
	if h.key == "" {
		return func(vals []driver.Value) (uint64, bool) { return rowHash(codes, vals) }
	}
	kcodes, _ := splitArgs(h.key)
	kvals := make([]driver.Value, len(t.keys))
	return func(vals []driver.Value) (uint64, bool) {
		for i, k := range t.keys {
			kvals[i] = vals[k]
		}
		return rowHash(kcodes, kvals)
	}
}

// sqliteBucketSums computes the bucket checksums of a SQLite copy as it
// reads the rows, as sqliteSums does for key ranges: a first pass over the
// whole table in two halves of its rowids at once, on two connections,
// when the copy has a twin connection and the table a rowid (the sums of
// any partition of the rows add up to the table's).
func (r *SQLReader) sqliteBucketSums(ctx context.Context, t *Table, h sideHash, bits uint, within *bucketFilter, fn func(*int64, rangeSum) error) error {
	_, cols := splitArgs(h.row)
	q := "SELECT " + cols + " FROM " + r.name(t)
	type part struct {
		conn *sql.Conn
		q    string
		sums map[int64]*rangeSum
		null *rangeSum
		err  error
	}
	parts := []*part{{conn: r.conn, q: q}}
	if twin := r.twin(ctx); twin != nil && within == nil {
		if rowid := sqliteRowid(t); rowid != "" {
			// A table WITHOUT ROWID fails here: read in one.
			var lo, hi *int64
			err := r.conn.QueryRowContext(ctx, "SELECT min("+rowid+"), max("+rowid+") FROM "+r.name(t)).Scan(&lo, &hi)
			if err == nil && lo != nil && hi != nil && *hi > *lo {
				m := *lo + (*hi-*lo)/2 + 1 // rowids are never NULL
				parts = []*part{{conn: r.conn, q: q + " WHERE " + rowid + " < " + sqlInt(m)},
					{conn: twin, q: q + " WHERE " + rowid + " >= " + sqlInt(m)}}
			}
		}
	}
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.sums, p.null, p.err = sqliteBucketSumsOn(ctx, p.conn, p.q, t, h, bits, within)
		}()
	}
	wg.Wait()
	sums := map[int64]*rangeSum{}
	var null *rangeSum
	add := func(into **rangeSum, s *rangeSum) {
		if *into == nil {
			*into = s
			return
		}
		t := *into
		t.rows, t.sum, t.unhashed = t.rows+s.rows, t.sum+s.sum, t.unhashed || s.unhashed
	}
	for _, p := range parts {
		if p.err != nil {
			return p.err
		}
		if p.null != nil {
			add(&null, p.null)
		}
		for b, s := range p.sums {
			t := sums[b]
			add(&t, s)
			sums[b] = t
		}
	}
	if null != nil && within == nil {
		if err := fn(nil, *null); err != nil {
			return err
		}
	}
	for b, s := range sums {
		if err := fn(&b, *s); err != nil {
			return err
		}
	}
	return nil
}

// sqliteRowid is a name of the rowid of t's SQLite copy that no column of
// t takes ("" when its columns take all three).
func sqliteRowid(t *Table) string {
	for _, name := range []string{"rowid", "_rowid_", "oid"} {
		taken := false
		for _, c := range t.Columns {
			if strings.EqualFold(c.Name, name) {
				taken = true
			}
		}
		if !taken {
			return name
		}
	}
	return ""
}

// sqliteBucketSumsOn runs q (the columns h.row hashes) on conn and sums
// its rows by bucket of their key's hash (of the row's without a key),
// keeping those within; null: the rows whose key could not be hashed.
func sqliteBucketSumsOn(ctx context.Context, conn *sql.Conn, q string, t *Table, h sideHash, bits uint, within *bucketFilter) (sums map[int64]*rangeSum, null *rangeSum, err error) {
	codes, _ := splitArgs(h.row)
	keyHash := sqliteKeyHash(t, h) // one per goroutine: it keeps a buffer
	mask := uint64(1)<<bits - 1
	sums = map[int64]*rangeSum{}
	err = conn.Raw(func(dc any) error {
		qc, ok := dc.(driver.QueryerContext)
		if !ok {
			return fmt.Errorf("the SQLite driver cannot query (%T)", dc)
		}
		rows, err := qc.QueryContext(ctx, q, nil)
		if err != nil {
			return err
		}
		defer rows.Close()
		vals := make([]driver.Value, len(codes))
		for {
			if err := rows.Next(vals); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			kh, ok := keyHash(vals)
			var s *rangeSum
			switch {
			case !ok:
				if null == nil {
					null = &rangeSum{}
				}
				s = null
			case within != nil && !within.has(kh):
				continue
			default:
				b := int64(kh & mask)
				if s = sums[b]; s == nil {
					s = &rangeSum{}
					sums[b] = s
				}
			}
			s.rows++
			rh, ok := kh, ok
			if h.key != "" {
				rh, ok = rowHash(codes, vals)
			}
			s.sum += rh
			s.unhashed = s.unhashed || !ok
		}
	})
	return sums, null, err
}

func (r *SQLReader) scanBuckets(ctx context.Context, t *Table, h sideHash, f *bucketFilter, sorted bool, fn func(Row) error) error {
	if r.duckdb {
		key, err := r.duckHash(h.bucketKey())
		if err != nil {
			return err
		}
		return r.scan(ctx, t, sorted, f.sql(key), fn)
	}
	keyHash := sqliteKeyHash(t, h)
	dvals := make([]driver.Value, len(t.Columns))
	return r.scanFiltered(ctx, t, sorted, "", func(vals []any) bool {
		for i, v := range vals {
			dvals[i] = v
		}
		kh, ok := keyHash(dvals)
		if !ok {
			return f.null
		}
		return f.has(kh)
	}, fn)
}

var _ bucketSummer = (*SQLReader)(nil)
