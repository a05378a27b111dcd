package schema

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
}

// Len is the number of row operations in the batch.
func (b *Batch) Len() int {
	return len(b.Deletes) + len(b.Inserts) + len(b.Updates) + len(b.Patches) + len(b.Rows)
}

// EachRun walks ordered row changes: each run of consecutive inserts goes to
// inserts at once (a sink bulk-loads it), every other change to change alone.
func EachRun(rows []RowChange, inserts func([]Tuple) error, change func(RowChange) error) error {
	for len(rows) > 0 {
		if rows[0].Op != Insert {
			if err := change(rows[0]); err != nil {
				return err
			}
			rows = rows[1:]
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
