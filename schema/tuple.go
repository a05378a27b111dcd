package schema

import (
	"encoding/binary"
	"hash/maphash"
)

// Datum states, as pgoutput marks tuple columns.
const (
	Null      = 'n'
	Unchanged = 'u' // an unchanged TOASTed value the source did not send
	Text      = 't' // Data holds the value in PostgreSQL's text output form
)

// Datum is one column value in PostgreSQL's text form. Data may point into a
// buffer owned by the message it came from: copy it to keep it.
type Datum struct {
	State byte
	Data  []byte
}

// Tuple is a row, positionally matching Table.Columns.
type Tuple []Datum

// Size estimates the memory a tuple holds, for batch limits.
func (t Tuple) Size() int {
	n := 24 * len(t)
	for _, d := range t {
		n += len(d.Data)
	}
	return n
}

// HasUnchanged reports whether any column was not sent (unchanged TOAST).
func (t Tuple) HasUnchanged() bool {
	for _, d := range t {
		if d.State == Unchanged {
			return true
		}
	}
	return false
}

// Op is a row operation.
type Op uint8

const (
	Insert Op = iota + 1
	Update
	Delete
)

func (o Op) String() string {
	switch o {
	case Insert:
		return "insert"
	case Update:
		return "update"
	case Delete:
		return "delete"
	}
	return "unknown"
}

// RowChange is one row operation that must be applied in source order.
type RowChange struct {
	Op  Op
	Old Tuple // key columns (keyed tables) or the whole old row (keyless); nil for inserts
	New Tuple // nil for deletes; may hold Unchanged columns
}

// Batch is the net effect of a run of changes to one table, ready for a sink to
// apply set-wise. A sink applies Deletes, Inserts, Updates and Patches (keys
// are distinct across them, so their relative order is free), then Rows one
// by one in the order given.
type Batch struct {
	Table   *Table
	Deletes []Tuple // key columns set; other columns may be anything
	// Inserts are complete rows the target does not hold (inserted at the
	// source since the target's state): a sink bulk-loads them without any
	// conflict handling, and a conflict is an error worth reporting.
	Inserts []Tuple
	// Updates are complete rows replacing rows the target holds (updated at
	// the source): a sink may apply them as plain set-wise UPDATEs; a row
	// that is missing means the target diverged from the source.
	Updates []Tuple
	Patches []Tuple // rows with Unchanged columns: update only the sent ones, by key
	// Rows are changes that need their order: every change to a keyless table,
	// and the rare keyed change that cannot be merged (a key change that left
	// TOASTed columns unsent).
	Rows []RowChange
	// Snapshot says the Inserts are rows of one snapshot of the source
	// table (an initial copy), each read once, into a target table created
	// or emptied in this transaction: the source's key, a unique index,
	// keeps their keys distinct, so a sink whose key columns hold the
	// source's values exactly need not check them for duplicates.
	Snapshot bool
}

// Len is the number of row operations in the batch.
func (b *Batch) Len() int {
	return len(b.Deletes) + len(b.Inserts) + len(b.Updates) + len(b.Patches) + len(b.Rows)
}

// EachRun walks ordered row changes: each run of consecutive inserts goes
// to inserts at once (a sink bulk-loads it), the other changes to changes,
// a SetRun at a time.
func EachRun(rows []RowChange, inserts func([]Tuple) error, changes func([]RowChange) error) error {
	for len(rows) > 0 {
		if rows[0].Op != Insert {
			n := max(SetRun(rows), 1)
			if err := changes(rows[:n]); err != nil {
				return err
			}
			rows = rows[n:]
			continue
		}
		n := 1
		for n < len(rows) && rows[n].Op == Insert {
			n++
		}
		run := make([]Tuple, n)
		for i := range run {
			run[i] = rows[i].New
		}
		if err := inserts(run); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// SetRun is how many changes at the head of rows, all to one keyless
// (REPLICA IDENTITY FULL) table, a sink may apply as one set instead of one
// statement each: changes of one kind (updates or deletes) that send the same
// columns, none of which changes a row an earlier one of them wrote. Each
// change still changes exactly one row equal to its old row: changes with
// equal old rows take distinct rows, and since such rows are equal in every
// column the source sent, which takes which does not matter. Applied one by
// one, each change looks for its row from the table's start, which makes a
// bulk update of a keyless table quadratic.
//
// A change whose old row equals a row an earlier change wrote ends the run
// (it may be meant for that row, which the set does not see yet). Rows are
// compared by a hash of their sent values: a collision only ends a run early.
func SetRun(rows []RowChange) int {
	if len(rows) < 2 {
		return len(rows)
	}
	first := rows[0]
	if first.Op != Update && first.Op != Delete || first.Old == nil || first.Op == Update && first.New == nil {
		return 1
	}
	seed := maphash.MakeSeed()
	var written map[uint64]struct{}
	n := 0
	for ; n < len(rows); n++ {
		c := rows[n]
		if c.Op != first.Op || !sameSent(c.Old, first.Old) || c.Op == Update && !sameSent(c.New, first.New) {
			break
		}
		if c.Op == Delete {
			continue
		}
		if _, ok := written[hashRow(seed, c.Old, c.Old)]; ok {
			break
		}
		if written == nil {
			written = map[uint64]struct{}{}
		}
		// The row it writes: the sent new values, the old ones elsewhere.
		written[hashRow(seed, c.Old, c.New)] = struct{}{}
	}
	return n
}

// sameSent reports whether two tuples send the same columns.
func sameSent(a, b Tuple) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if (a[i].State == Unchanged) != (b[i].State == Unchanged) {
			return false
		}
	}
	return true
}

// hashRow hashes, over the columns old sent, row's values where row sent
// them and old's elsewhere.
func hashRow(seed maphash.Seed, old, row Tuple) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	var n [8]byte
	for i, d := range old {
		if d.State == Unchanged {
			continue
		}
		if i < len(row) && row[i].State != Unchanged {
			d = row[i]
		}
		binary.LittleEndian.PutUint64(n[:], uint64(len(d.Data)))
		h.WriteByte(d.State)
		h.Write(n[:])
		h.Write(d.Data)
	}
	return h.Sum64()
}
