package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Reader reads the rows of one side: the source, or the copy.
type Reader interface {
	// Scan calls fn with every row of t, its values in canonical form in
	// t's column order; in key order when sorted is set (only for tables
	// whose Sorted is true). fn owns each row. A side that has no table
	// for t returns an error wrapping ErrNoTable.
	Scan(ctx context.Context, t *Table, sorted bool, fn func(Row) error) error
}

// ErrNoTable is wrapped by a Reader's error for a table it does not have.
var ErrNoTable = errors.New("no such table")

// Options tune a comparison.
type Options struct {
	// Examples is how many differing rows of each kind (missing, extra,
	// changed) a table's report names; 0 means 5.
	Examples int
	// MaxValue shortens each value shown to this many bytes; 0 means 64.
	MaxValue int
	// Keys, when positive, has a table's report name the keys of all its
	// differing rows (TableReport.Keys) when there are at most this many
	// and its key is of integers, uuids, text and varchar, for verify --repair to copy
	// just those rows again; 0: no keys are collected.
	Keys int
}

func (o *Options) defaults() {
	if o.Examples <= 0 {
		o.Examples = 5
	}
	if o.MaxValue <= 0 {
		o.MaxValue = 64
	}
}

// Compare compares table t on both sides and reports what differs. When
// both sides can compute checksums, they do (by key range, or by bucket of
// the key's hash: checksum.go, buckets.go), and only the groups of rows
// that differ are read and compared row by row; else the whole table is.
// Row by row, a keyed table whose key sorts alike everywhere is merged in
// key order with memory for one batch of rows per side, any other table is
// matched in memory (a key and a hash per column, or a 16-byte digest per
// distinct row, for the rows one side has read and the other not yet); a
// table without a key is read twice when its rows differ, to show them.
func Compare(ctx context.Context, t *Table, source, target Reader, opts Options) TableReport {
	opts.defaults()
	c := &comparison{t: t, src: source, dst: target, opts: opts}
	c.rep = TableReport{Table: t.Qualified(), RelID: t.ID, Key: t.KeyColumns()}
	c.keys = newKeySet(t, opts.Keys)
	var err error
	ss, sok := source.(summer)
	ds, dok := target.(summer)
	bs, bsok := source.(bucketSummer)
	bd, bdok := target.(bucketSummer)
	switch {
	case sok && dok && t.checksumKey():
		c.rep.Method = MethodChecksum
		err = c.checksum(ctx, ss, ds)
	case bsok && bdok:
		c.rep.Method = MethodChecksum
		est := int64(-1)
		if e, ok := source.(interface{ rowEstimate(*Table) int64 }); ok {
			est = e.rowEstimate(t)
		}
		err = c.bucketChecksum(ctx, bs, bd, est)
	default:
		err = &errNoChecksum{}
	}
	var nc *errNoChecksum
	switch {
	case errors.As(err, &nc):
		c.reset()
		c.rep.Method, c.rep.Note = "", ""
		err = c.rows(ctx)
	case err != nil && ctx.Err() == nil:
		// Whatever went wrong, the row comparison decides.
		c.reset()
		c.rep.Method, c.rep.Note = "", "checksums failed ("+err.Error()+"): compared row by row"
		err = c.rows(ctx)
	}
	if err != nil {
		c.reset()
		c.rep.Err = err.Error()
	}
	if c.rep.Different() {
		c.rep.Keys, c.rep.KeysNot = c.keys.keys, c.keys.why
	}
	return c.rep
}

// rows compares the whole table row by row: merged in key order, matched
// by key in memory, or as multisets of rows.
func (c *comparison) rows(ctx context.Context) error {
	t := c.t
	switch {
	case !t.Keyed():
		c.rep.Method = MethodMultiset
		return c.multiset(ctx)
	case t.Sorted():
		c.rep.Method = MethodMerge
		err := c.merge(ctx)
		var u *unorderedError
		if errors.As(err, &u) {
			c.reset()
			c.rep.Method = MethodHash
			c.rep.Note = u.Error() + "; matched by key in memory instead"
			err = c.hash(ctx)
		}
		return err
	}
	c.rep.Method = MethodHash
	return c.hash(ctx)
}

type comparison struct {
	t        *Table
	src, dst Reader
	opts     Options
	rep      TableReport
	keys     *keySet // the keys of the differing rows
	// rng, when set, restricts the rows read to a key range (checksum.go);
	// bkt to some buckets of the key's hash (buckets.go).
	rng *keyRange
	bkt *bucketRead
}

func (c *comparison) reset() {
	r := &c.rep
	r.SourceRows, r.TargetRows, r.Missing, r.Extra, r.Changed, r.Examples, r.Absent = 0, 0, 0, 0, 0, nil, false
	c.keys = newKeySet(c.t, c.opts.Keys)
}

// sides are +1 for the source and -1 for the copy, so a multiset count is
// their sum.
const (
	sourceSide = 1
	targetSide = -1
)

// stream runs a Reader's Scan on its own goroutine and hands rows over in
// batches, so both sides are read (and their values put in canonical form)
// in parallel with the comparison.
type stream struct {
	ch    chan []Row
	err   error // set before ch is closed
	batch []Row
	i     int
}

const (
	batchRows  = 256
	batchBytes = 1 << 20
)

func (c *comparison) scan(ctx context.Context, wg *sync.WaitGroup, r Reader, isDst, sorted bool) *stream {
	s := &stream{ch: make(chan []Row, 4)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(s.ch)
		batch := make([]Row, 0, batchRows)
		size := 0
		send := func() error {
			select {
			case s.ch <- batch:
			case <-ctx.Done():
				return ctx.Err()
			}
			batch, size = make([]Row, 0, batchRows), 0
			return nil
		}
		scan := r.Scan
		if rng := c.rng; rng != nil {
			scan = func(ctx context.Context, t *Table, _ bool, fn func(Row) error) error {
				return r.(summer).scanRange(ctx, t, rng.lo, rng.hi, fn)
			}
		}
		if bkt := c.bkt; bkt != nil {
			h := bkt.src
			if isDst {
				h = bkt.dst
			}
			scan = func(ctx context.Context, t *Table, sorted bool, fn func(Row) error) error {
				return r.(bucketSummer).scanBuckets(ctx, t, h, bkt.f, sorted, fn)
			}
		}
		s.err = scan(ctx, c.t, sorted, func(row Row) error {
			batch = append(batch, row)
			for _, v := range row {
				size += len(v)
			}
			if len(batch) == batchRows || size >= batchBytes {
				return send()
			}
			return nil
		})
		if s.err == nil && len(batch) > 0 {
			s.err = send()
		}
	}()
	return s
}

func (s *stream) next() (Row, bool) {
	for s.i == len(s.batch) {
		b, ok := <-s.ch
		if !ok {
			return nil, false
		}
		s.batch, s.i = b, 0
	}
	r := s.batch[s.i]
	s.batch[s.i] = nil
	s.i++
	return r, true
}

// start reads both sides; stop (deferred) ends the reads and waits for them.
func (c *comparison) start(ctx context.Context, sorted bool) (src, dst *stream, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	src, dst = c.scan(ctx, &wg, c.src, false, sorted), c.scan(ctx, &wg, c.dst, true, sorted)
	return src, dst, func() {
		cancel()
		for _, s := range []*stream{src, dst} {
			for range s.ch { // drain, so the goroutine can finish
			}
		}
		wg.Wait()
	}
}

// finish turns the sides' read errors into the comparison's: a copy
// without the table is a table with no rows, marked absent.
func (c *comparison) finish(src, dst *stream) error {
	if src.err != nil {
		return fmt.Errorf("read the source: %w", src.err)
	}
	if errors.Is(dst.err, ErrNoTable) {
		c.rep.Absent = true
		return nil
	}
	if dst.err != nil {
		return fmt.Errorf("read the copy: %w", dst.err)
	}
	return nil
}

// unorderedError: a side's rows did not arrive in key order, as verify
// expects its ORDER BY to deliver them (a value sorting differently there,
// such as a BC date in a SQLite copy).
type unorderedError struct{ side string }

func (e *unorderedError) Error() string {
	return "the " + e.side + "'s rows did not arrive in the key order verify expects"
}

// merge compares two streams sorted by key.
func (c *comparison) merge(ctx context.Context) error {
	src, dst, stop := c.start(ctx, true)
	defer stop()
	t := c.t
	s, sok := src.next()
	d, dok := dst.next()
	// Equal keys in a row are allowed (a duplicate in the copy shows as
	// extra); a smaller one means the side does not sort as expected.
	advance := func(st *stream, side string, cur Row) (Row, bool, error) {
		next, ok := st.next()
		if ok && t.compareKeys(cur, next) > 0 {
			return nil, false, &unorderedError{side}
		}
		return next, ok, nil
	}
	var err error
	for (sok || dok) && err == nil {
		cmp := 0
		switch {
		case !dok:
			cmp = -1
		case !sok:
			cmp = 1
		default:
			cmp = t.compareKeys(s, d)
		}
		switch {
		case cmp < 0:
			c.missing(s)
			s, sok, err = advance(src, "source", s)
		case cmp > 0:
			c.extra(d)
			d, dok, err = advance(dst, "copy", d)
		default:
			c.rep.SourceRows++
			c.rep.TargetRows++
			if !equalRows(s, d) {
				c.changed(s, t.changedColumns(s, d))
			}
			if s, sok, err = advance(src, "source", s); err == nil {
				d, dok, err = advance(dst, "copy", d)
			}
		}
	}
	if err != nil {
		return err
	}
	if err := c.finish(src, dst); err != nil {
		return err
	}
	return ctx.Err()
}

func (c *comparison) missing(r Row) {
	c.rep.SourceRows++
	c.rep.Missing++
	c.keys.add(r)
	c.example(Missing, r, nil)
}

func (c *comparison) extra(r Row) {
	c.rep.TargetRows++
	c.rep.Extra++
	c.keys.add(r)
	c.example(Extra, r, nil)
}

func (c *comparison) changed(key Row, cols []string) {
	c.rep.Changed++
	c.keys.add(key)
	c.example(Changed, key, cols)
}

// example records a differing row if fewer than Examples of its kind are.
func (c *comparison) example(kind string, r Row, cols []string) {
	n := 0
	for _, e := range c.rep.Examples {
		if e.Kind == kind {
			n++
		}
	}
	if n >= c.opts.Examples {
		return
	}
	c.rep.Examples = append(c.rep.Examples, Example{Kind: kind, Values: c.values(r), Columns: cols})
}

// values shows a row's key values, or all of them for a keyless table.
func (c *comparison) values(r Row) Values {
	idx := c.t.keys
	if len(idx) == 0 {
		idx = make([]int, len(r))
		for i := range idx {
			idx[i] = i
		}
	}
	vs := make(Values, len(idx))
	for i, k := range idx {
		vs[i] = Value{Column: c.t.Columns[k].Name, Value: c.t.cols[k].display(r[k], c.opts.MaxValue)}
	}
	return vs
}

// both reads both sides in any order and calls fn with each row and its
// side, on one goroutine.
func (c *comparison) both(ctx context.Context, fn func(Row, int)) error {
	src, dst, stop := c.start(ctx, false)
	defer stop()
	sch, dch := src.ch, dst.ch
	for sch != nil || dch != nil {
		select {
		case b, ok := <-sch:
			if !ok {
				sch = nil
				continue
			}
			for _, r := range b {
				fn(r, sourceSide)
			}
		case b, ok := <-dch:
			if !ok {
				dch = nil
				continue
			}
			for _, r := range b {
				fn(r, targetSide)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return c.finish(src, dst)
}

// hashEntry is a row one side has read and the other not yet: a hash per
// column, enough to tell whether the other side's row differs and where.
type hashEntry struct {
	side   int
	hashes []uint64
}

// hash matches rows by key in memory.
func (c *comparison) hash(ctx context.Context) error {
	t := c.t
	pending := map[string]hashEntry{}
	var kbuf []byte
	err := c.both(ctx, func(r Row, side int) {
		if side == sourceSide {
			c.rep.SourceRows++
		} else {
			c.rep.TargetRows++
		}
		kbuf = t.key(r, kbuf)
		e, ok := pending[string(kbuf)]
		switch {
		case !ok:
			hs := make([]uint64, len(r))
			for i, v := range r {
				hs[i] = valueHash(v)
			}
			pending[string(kbuf)] = hashEntry{side: side, hashes: hs}
		case e.side == side:
			// A key twice on one side (a copy written behind walmirror's
			// back): the second row has no partner.
			c.unmatched(r, side)
		default:
			delete(pending, string(kbuf))
			var cols []string
			for i, v := range r {
				if valueHash(v) != e.hashes[i] {
					cols = append(cols, t.Columns[i].Name)
				}
			}
			if cols != nil {
				c.changed(r, cols)
			}
		}
	})
	if err != nil {
		return err
	}
	// What is left had no partner; the smallest keys are shown.
	keys := make([]string, 0, len(pending))
	for k := range pending {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		r := t.keyValues([]byte(k))
		c.keys.add(r)
		if pending[k].side == sourceSide {
			c.rep.Missing++
			c.example(Missing, r, nil)
		} else {
			c.rep.Extra++
			c.example(Extra, r, nil)
		}
	}
	// Rows arrived in no particular order: show the examples in one.
	rank := map[string]int{Changed: 0, Missing: 1, Extra: 2}
	slices.SortStableFunc(c.rep.Examples, func(a, b Example) int {
		if a.Kind != b.Kind {
			return rank[a.Kind] - rank[b.Kind]
		}
		return strings.Compare(a.Values.String(), b.Values.String())
	})
	return ctx.Err()
}

func (c *comparison) unmatched(r Row, side int) {
	c.keys.add(r)
	if side == sourceSide {
		c.rep.Missing++
		c.example(Missing, r, nil)
	} else {
		c.rep.Extra++
		c.example(Extra, r, nil)
	}
}

// multiset compares a keyless table: each distinct row's count on the
// source minus on the copy must be zero.
func (c *comparison) multiset(ctx context.Context) error {
	counts := map[digest]int64{}
	var buf []byte
	err := c.both(ctx, func(r Row, side int) {
		if side == sourceSide {
			c.rep.SourceRows++
		} else {
			c.rep.TargetRows++
		}
		buf = appendEncoded(buf[:0], r...)
		d := digestOf(buf)
		if n := counts[d] + int64(side); n == 0 {
			delete(counts, d)
		} else {
			counts[d] = n
		}
	})
	if err != nil {
		return err
	}
	for _, n := range counts {
		if n > 0 {
			c.rep.Missing += n
		} else {
			c.rep.Extra -= n
		}
	}
	if len(counts) == 0 {
		return ctx.Err()
	}
	// Read both sides again to show some of the rows behind the counts.
	var shown []Example
	err = c.both(ctx, func(r Row, side int) {
		buf = appendEncoded(buf[:0], r...)
		d := digestOf(buf)
		n := counts[d]
		if n == 0 || (n > 0) != (side == sourceSide) {
			return
		}
		kind := Missing
		if side == targetSide {
			kind = Extra
		}
		count := 0
		for _, e := range shown {
			if e.Kind == kind {
				count++
			}
		}
		if count >= c.opts.Examples {
			return
		}
		counts[d] = n - int64(side)
		shown = append(shown, Example{Kind: kind, Values: c.values(r)})
	})
	if err != nil {
		return err
	}
	// Missing rows first, then extra ones, each in a stable order.
	slices.SortStableFunc(shown, func(a, b Example) int {
		if a.Kind != b.Kind {
			if a.Kind == Missing {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Values.String(), b.Values.String())
	})
	c.rep.Examples = shown
	return ctx.Err()
}
