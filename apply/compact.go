package apply

import (
	"github.com/walmirror/walmirror/schema"
)

type netState uint8

const (
	netNone   netState = iota // inserted and deleted again: nothing to do
	netInsert                 // a row the target does not hold yet
	netUpdate                 // a row the target holds: replace it
	netDelete
	netPatch // update only the sent columns
)

// The states follow from the target mirroring the source as of its stored
// position: a key the source inserts is absent from the target, a key it
// updates or deletes is present (or was inserted earlier in this batch).

type entry struct {
	state netState
	row   schema.Tuple
}

// tableBuffer accumulates one table's changes and compacts them to the net
// effect per key. Batches come out in the order they must be applied.
type tableBuffer struct {
	table   *schema.Table
	sealed  []*schema.Batch
	index   map[string]int // key -> position in entries
	entries []entry
	rows    []schema.RowChange // ordered changes (keyless tables, barriers)
	keyBuf  []byte
	n       int // changes buffered
}

func newTableBuffer(t *schema.Table) *tableBuffer {
	return &tableBuffer{table: t, index: make(map[string]int)}
}

// add buffers one change. Tuples are kept, not copied.
func (b *tableBuffer) add(c schema.RowChange) {
	b.n++
	if !b.table.HasKey() {
		b.rows = append(b.rows, c)
		return
	}
	switch c.Op {
	case schema.Insert:
		i, ok := b.at(b.key(c.New, nil))
		if !ok || b.entries[i].state == netNone {
			b.entries[i] = entry{state: netInsert, row: c.New}
		} else {
			b.entries[i] = entry{state: netUpdate, row: c.New} // deleted earlier in this batch: the target still has it
		}
	case schema.Delete:
		k := b.key(c.Old, nil)
		if prev, ok := b.get(k); ok && (prev.state == netInsert || prev.state == netNone) {
			b.set(k, netNone, nil)
		} else {
			b.set(k, netDelete, c.Old)
		}
	case schema.Update:
		b.update(c)
	}
}

func (b *tableBuffer) update(c schema.RowChange) {
	if c.Old != nil && c.New.HasUnchanged() {
		// An unchanged TOASTed value the old tuple holds (a key column
		// stored out of line, sent in the old key; every column of a
		// REPLICA IDENTITY FULL row) is the new value too.
		c.New = fillUnchanged(c.New, c.Old)
	}
	if c.Old == nil && !c.New.HasUnchanged() {
		// The common case (same key, every value sent), in one lookup.
		i, ok := b.at(b.key(c.New, nil))
		if ok && (b.entries[i].state == netInsert || b.entries[i].state == netNone) {
			b.entries[i] = entry{state: netInsert, row: c.New} // inserted in this batch: still an insert
		} else {
			b.entries[i] = entry{state: netUpdate, row: c.New}
		}
		return
	}
	newKey := b.key(c.New, c.Old)
	oldKey := newKey
	if c.Old != nil {
		oldKey = b.key(c.Old, nil)
	}
	prev, ok := b.get(oldKey)
	// fresh: the target does not hold the row yet (it was inserted in this batch).
	fresh := ok && (prev.state == netInsert || prev.state == netNone)
	row := c.New
	if row.HasUnchanged() {
		switch {
		case ok && (prev.state == netInsert || prev.state == netUpdate):
			row = merge(prev.row, row)
		case oldKey != newKey:
			// The unsent values live in the target row under the old key:
			// apply this change in order, as an UPDATE by old key.
			b.rows = append(b.rows, c)
			b.seal()
			return
		case ok && prev.state == netPatch:
			b.set(newKey, netPatch, merge(prev.row, row))
			return
		default:
			b.set(newKey, netPatch, row)
			return
		}
	}
	if oldKey == newKey {
		if fresh {
			b.set(newKey, netInsert, row)
		} else {
			b.set(newKey, netUpdate, row)
		}
		return
	}
	if fresh {
		b.set(oldKey, netNone, nil)
	} else {
		b.set(oldKey, netDelete, c.Old)
	}
	if p, ok := b.get(newKey); !ok || p.state == netNone {
		b.set(newKey, netInsert, row)
	} else {
		b.set(newKey, netUpdate, row) // its old row was deleted earlier in this batch
	}
}

// key encodes the key columns of row; a key column the source did not send
// (an unchanged TOASTed key) is taken from fallback, the old key tuple.
// The string is only built when the map needs a new entry.
func (b *tableBuffer) key(row, fallback schema.Tuple) string {
	k := b.keyBuf[:0]
	for _, i := range b.table.KeyIndexes() {
		d := row[i]
		if d.State == schema.Unchanged && fallback != nil {
			d = fallback[i]
		}
		k = append(k, d.State, byte(len(d.Data)>>24), byte(len(d.Data)>>16), byte(len(d.Data)>>8), byte(len(d.Data)))
		k = append(k, d.Data...)
	}
	b.keyBuf = k
	return string(k)
}

func (b *tableBuffer) get(k string) (entry, bool) {
	i, ok := b.index[k]
	if !ok {
		return entry{}, false
	}
	return b.entries[i], true
}

// at returns k's position in entries, adding an entry (to be filled in) for
// a new key: one map lookup fewer than get then set.
func (b *tableBuffer) at(k string) (int, bool) {
	if i, ok := b.index[k]; ok {
		return i, true
	}
	i := len(b.entries)
	b.index[k] = i
	b.entries = append(b.entries, entry{})
	return i, false
}

func (b *tableBuffer) set(k string, s netState, row schema.Tuple) {
	if i, ok := b.index[k]; ok {
		b.entries[i] = entry{state: s, row: row}
		return
	}
	b.index[k] = len(b.entries)
	b.entries = append(b.entries, entry{state: s, row: row})
}

// merge returns next with its unsent columns filled from prev.
func merge(prev, next schema.Tuple) schema.Tuple {
	out := make(schema.Tuple, len(next))
	for i, d := range next {
		if d.State == schema.Unchanged && i < len(prev) {
			d = prev[i]
		}
		out[i] = d
	}
	return out
}

// fillUnchanged returns row with its unsent columns taken from old where
// old holds a value (in an old key tuple, the other columns are null).
func fillUnchanged(row, old schema.Tuple) schema.Tuple {
	out := make(schema.Tuple, len(row))
	for i, d := range row {
		if d.State == schema.Unchanged && i < len(old) && old[i].State != schema.Null && old[i].State != schema.Unchanged {
			d = old[i]
		}
		out[i] = d
	}
	return out
}

// seal closes the current batch; later changes start a new one.
func (b *tableBuffer) seal() {
	if len(b.entries) == 0 && len(b.rows) == 0 {
		return
	}
	batch := &schema.Batch{Table: b.table, Rows: b.rows}
	for _, e := range b.entries {
		switch e.state {
		case netDelete:
			batch.Deletes = append(batch.Deletes, e.row)
		case netInsert:
			batch.Inserts = append(batch.Inserts, e.row)
		case netUpdate:
			batch.Updates = append(batch.Updates, e.row)
		case netPatch:
			batch.Patches = append(batch.Patches, e.row)
		}
	}
	if batch.Len() > 0 { // everything may have cancelled out
		b.sealed = append(b.sealed, batch)
	}
	b.entries = nil
	b.rows = nil
	clear(b.index)
}

// take seals and returns everything buffered, leaving the buffer empty.
func (b *tableBuffer) take() []*schema.Batch {
	b.seal()
	out := b.sealed
	b.sealed = nil
	b.n = 0
	return out
}
