package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
)

// The initial copy runs as a pipeline. A goroutine reads the tables from
// the source one after another, decoding each one's rows into batches or,
// for a table the sink loads from the source's binary COPY stream
// (binaryCopier), cutting that stream into pieces; the calling goroutine
// writes them into the target transaction. So the source's server, the
// decoding and the target's writes work at the same time instead of in
// turn. What is in flight is bounded by tokens: copyBatches batches (each at
// most Limits.ChunkRows rows or Limits.ChunkBytes bytes) and copyPieces
// pieces of copyPiece bytes, taken by the reader and given back by the
// writer once written.

// binaryCopier is a sink that loads a table from the source's binary COPY
// stream as it comes, undecoded (a PostgreSQL target whose table has the
// source's column types).
type binaryCopier interface {
	// CopiesBinary reports whether t's target table takes t's rows in the
	// source's binary COPY format.
	CopiesBinary(ctx context.Context, t *schema.Table) (bool, error)
	// CopyBinary loads r, a binary COPY stream of t's columns, into t's
	// target table in the open transaction, and returns how many rows it
	// loaded. The rows must be new to the table (their keys not in it):
	// the initial copy loads a table emptied in that transaction, a chunk
	// of an online copy rows past those the copy holds.
	CopyBinary(ctx context.Context, t *schema.Table, r io.Reader) (int64, error)
}

// newRowsWriter is a sink that takes rows new to a table, past every key
// it holds, more cheaply than Write's Inserts (DuckDB: their keys checked
// once at commit, not by each statement). An online copy's chunks are such
// rows: keys past those the copy committed before, whose changes the
// stream holds back until the copy reaches them. The rows must still be
// checked: a key the table holds fails the transaction, at commit at the
// latest, rather than being stored twice.
type newRowsWriter interface {
	// WriteNew inserts rows into t's target table in the open transaction.
	WriteNew(ctx context.Context, t *schema.Table, rows []schema.Tuple) error
}

// chunkGrainer is a sink for which an online copy's chunks below some size
// cost more per row: DuckDB writes a transaction's rows for a table
// straight to the file once they fill a row group (122,880 rows), and
// smaller ones to its WAL first, then into the file again at a checkpoint.
type chunkGrainer interface {
	// CopyChunkGrain is the chunk size, in rows, below which chunks cost
	// more per row.
	CopyChunkGrain() int
}

const (
	copyBatches = 2         // decoded batches in flight: one filling, one being written
	copyPieces  = 4         // pieces of a binary COPY stream in flight
	copyPiece   = 256 << 10 // bytes per piece
)

// copyItem is what the reader hands the writer.
type copyItem struct {
	table int            // index in the tables copied
	rows  []schema.Tuple // decoded rows (a batch token)
	data  []byte         // or a piece of the table's binary COPY stream (a piece token)
	read  int64          // rows the source has sent of the table so far
	end   bool           // the table's last item
}

// errCopyCut: the reader stopped before the end; its error says why.
var errCopyCut = errors.New("the source's rows stopped before the end of the table")

// copyTables copies every table into the open target transaction (creating
// or emptying each target table first) and returns how many rows it copied.
func (r *runner) copyTables(ctx context.Context, snap *source.Snapshot, tables []*schema.Table) (int64, error) {
	// The reader must know how each table is copied before it starts.
	binary := make([]bool, len(tables))
	bc, _ := r.sink.(binaryCopier)
	seen := make(map[*schema.Table]bool, len(tables))
	for i, t := range tables {
		// Each table is read once (Batch.Snapshot: its keys are distinct).
		if seen[t] {
			return 0, fmt.Errorf("internal error: %s listed twice for the initial copy", t.QualifiedName())
		}
		seen[t] = true
		if err := ensureShape(ctx, r.sink, t); err != nil {
			return 0, fmt.Errorf("prepare target table for %s: %w", t.QualifiedName(), err)
		}
		// Rows left by an earlier, abandoned copy into an existing table go.
		if err := r.sink.Truncate(ctx, []*schema.Table{t}); err != nil {
			return 0, fmt.Errorf("empty target table for %s: %w", t.QualifiedName(), err)
		}
		if bc != nil && snap.BinaryCopyable(t) {
			ok, err := bc.CopiesBinary(ctx, t)
			if err != nil {
				return 0, fmt.Errorf("prepare target table for %s: %w", t.QualifiedName(), err)
			}
			binary[i] = ok
		}
	}
	p := &copyProgress{r: r, p: SnapshotProgress{Tables: len(tables)}}
	p.update(func(*SnapshotProgress) {})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	items := make(chan copyItem, 1)
	batches := make(chan []schema.Tuple, copyBatches)
	for range copyBatches {
		batches <- nil
	}
	pieces := make(chan []byte, copyPieces)
	for range copyPieces {
		pieces <- nil
	}
	var readErr error
	go func() {
		defer close(items)
		readErr = r.readTables(ctx, snap, tables, binary, items, batches, pieces)
	}()
	total, err := r.writeTables(ctx, tables, binary, bc, items, batches, pieces, p)
	if err != nil {
		cancel()
	}
	for range items { // until the reader has stopped
	}
	if readErr != nil && (err == nil || errors.Is(err, errCopyCut)) {
		return 0, readErr
	}
	return total, err
}

// readTables reads the tables from the source and hands their rows to the
// writer, in order.
func (r *runner) readTables(ctx context.Context, snap *source.Snapshot, tables []*schema.Table, binary []bool,
	items chan<- copyItem, batches chan []schema.Tuple, pieces chan []byte) error {
	send := func(it copyItem) error {
		select {
		case items <- it:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i, t := range tables {
		if binary[i] {
			read := func(fn func([]byte, int64) error) (int64, error) { return snap.CopyBinary(ctx, t, fn) }
			if err := readBinary(ctx, read, i, send, pieces); err != nil {
				return err
			}
			continue
		}
		var batch []schema.Tuple
		take := func() error {
			select {
			case batch = <-batches:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := take(); err != nil {
			return err
		}
		size, n := 0, int64(0)
		err := snap.Copy(ctx, t, func(row schema.Tuple) error {
			batch = append(batch, row)
			size += row.Size()
			n++
			if len(batch) < r.cfg.Limits.ChunkRows && size < r.cfg.Limits.ChunkBytes {
				return nil
			}
			if err := send(copyItem{table: i, rows: batch, read: n}); err != nil {
				return err
			}
			size = 0
			return take()
		})
		if err != nil {
			return err
		}
		if err := send(copyItem{table: i, rows: batch, read: n, end: true}); err != nil {
			return err
		}
	}
	return nil
}

// readBinary hands table i's binary COPY stream, which read passes to its
// function, to the writer in pieces.
func readBinary(ctx context.Context, read func(func(data []byte, rows int64) error) (int64, error), i int, send func(copyItem) error, pieces chan []byte) error {
	var piece []byte
	take := func() error {
		select {
		case piece = <-pieces:
			if piece == nil {
				piece = make([]byte, 0, copyPiece)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := take(); err != nil {
		return err
	}
	n, err := read(func(data []byte, read int64) error {
		for len(data) > 0 {
			k := copy(piece[len(piece):cap(piece)], data)
			piece, data = piece[:len(piece)+k], data[k:]
			if len(piece) < cap(piece) {
				break
			}
			if err := send(copyItem{table: i, data: piece, read: read}); err != nil {
				return err
			}
			if err := take(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return send(copyItem{table: i, data: piece, read: n, end: true})
}

// writeTables writes what the reader hands over into the target tables, in
// order, and returns how many rows it wrote.
func (r *runner) writeTables(ctx context.Context, tables []*schema.Table, binary []bool, bc binaryCopier,
	items <-chan copyItem, batches chan []schema.Tuple, pieces chan []byte, p *copyProgress) (int64, error) {
	var total int64
	for i, t := range tables {
		p.update(func(sp *SnapshotProgress) { sp.Table = t.QualifiedName() })
		var n int64
		var err error
		if binary[i] {
			n, err = r.writeBinary(ctx, t, i, bc, items, pieces, p)
		} else {
			n, err = r.writeRows(ctx, t, i, items, batches, p)
		}
		if err != nil {
			return total, err
		}
		total += n
		p.update(func(sp *SnapshotProgress) { sp.TablesDone, sp.Table = i+1, "" })
		r.log.Info("copied table", "table", t.QualifiedName(), "rows", n)
	}
	return total, nil
}

// writeBinary loads table i from its binary COPY stream.
func (r *runner) writeBinary(ctx context.Context, t *schema.Table, i int, bc binaryCopier,
	items <-chan copyItem, pieces chan []byte, p *copyProgress) (int64, error) {
	sr := &streamReader{items: items, table: i, pieces: pieces, p: p}
	loaded, err := bc.CopyBinary(ctx, t, sr)
	if sr.cut.Load() {
		return 0, errCopyCut // what the sink says about it is an echo
	}
	if err != nil {
		return 0, err
	}
	if !sr.done || loaded != sr.read {
		return 0, fmt.Errorf("copy into %s: the source sent %d rows, the target loaded %d", t.QualifiedName(), sr.read, loaded)
	}
	return loaded, nil
}

// writeRows writes table i's decoded rows, batch by batch.
func (r *runner) writeRows(ctx context.Context, t *schema.Table, i int,
	items <-chan copyItem, batches chan []schema.Tuple, p *copyProgress) (int64, error) {
	for {
		it, ok := <-items
		if !ok {
			return 0, errCopyCut
		}
		if it.table != i {
			return 0, fmt.Errorf("internal error: rows of table %d while copying table %d", it.table, i)
		}
		if len(it.rows) > 0 {
			if err := r.sink.Write(ctx, &schema.Batch{Table: t, Inserts: it.rows, Snapshot: true}); err != nil {
				return 0, fmt.Errorf("copy into %s: %w", t.QualifiedName(), err)
			}
			p.update(func(sp *SnapshotProgress) { sp.Rows += int64(len(it.rows)) })
		}
		clear(it.rows) // the rows' memory goes once written
		batches <- it.rows[:0]
		if it.end {
			return it.read, nil
		}
	}
}

// streamReader is the io.Reader over one table's binary COPY stream that the
// sink reads (possibly from a goroutine of its own).
type streamReader struct {
	items  <-chan copyItem
	table  int
	pieces chan<- []byte
	p      *copyProgress // nil: no progress to report
	piece  []byte        // the piece being read (its token), nil when none
	off    int
	read   int64 // rows the source had sent with the pieces taken so far
	done   bool  // the table's last piece is taken
	// cut: the reader stopped before the end. Set from whichever goroutine
	// reads, which (on a broken connection) may outlive CopyBinary.
	cut atomic.Bool
}

func (s *streamReader) Read(b []byte) (int, error) {
	for s.piece == nil || s.off == len(s.piece) {
		if s.piece != nil {
			s.pieces <- s.piece[:0]
			s.piece = nil
		}
		if s.done {
			return 0, io.EOF
		}
		it, ok := <-s.items
		if !ok {
			s.cut.Store(true)
			return 0, errCopyCut
		}
		if it.table != s.table {
			return 0, fmt.Errorf("internal error: rows of table %d while copying table %d", it.table, s.table)
		}
		if s.p != nil {
			s.p.update(func(sp *SnapshotProgress) { sp.Rows += it.read - s.read })
		}
		s.piece, s.off, s.read, s.done = it.data, 0, it.read, it.end
	}
	n := copy(b, s.piece[s.off:])
	s.off += n
	return n, nil
}

// copyProgress reports the copy's progress from either goroutine, in order.
type copyProgress struct {
	mu sync.Mutex
	r  *runner
	p  SnapshotProgress
}

func (c *copyProgress) update(f func(*SnapshotProgress)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.p)
	c.r.snapshotProgress(c.p)
}
