package apply

import (
	"errors"

	"github.com/walmirror/walmirror/schema"
)

// Errors Run returns that a caller may need to tell apart, with errors.Is.
// Each is wrapped around an error whose message says what happened and
// what to do; the message is the operator's, the value the program's.
var (
	// ErrSlotLost: the replication slot the target follows is gone or was
	// invalidated (the server removed WAL it still needed), so the changes
	// since the stored position cannot be streamed; or the source's history
	// no longer holds the stored position (a standby promoted before it had
	// everything the copy applied). Run with Config.Resync to take a new
	// slot and copy every table again.
	ErrSlotLost = errors.New("replication slot lost")

	// ErrTargetMismatch: the target holds a copy of another source: it
	// follows another replication slot, or was copied from another
	// PostgreSQL cluster. Use a fresh target, or the slot it follows.
	ErrTargetMismatch = errors.New("target follows another slot or cluster")

	// ErrSlotExists: the replication slot exists but the target has no
	// walmirror state, so another copy (or a leftover) follows that slot.
	// When another connection streams from it, the error also wraps a
	// *source.SlotActiveError naming it.
	ErrSlotExists = errors.New("replication slot belongs to another copy")

	// ErrTargetNotOwned: a target table walmirror would write already
	// exists and walmirror did not create it (Sinks refuse such a table
	// unless told to adopt it). The same value as schema.ErrNotOwned.
	ErrTargetNotOwned = schema.ErrNotOwned

	// ErrDiverged: a change could not apply because the copy no longer
	// holds what the source held (someone else changed it): a row updated
	// at the source is missing, or one inserted there exists already. Run
	// copies such a table again online and goes on; it returns
	// ErrDiverged with Config.StopOnDivergence, for a publication that
	// leaves operations out, or when the table differs again at once. The
	// error is then also a *schema.DivergedError naming the table. The
	// same value as schema.ErrDiverged. Every sink marks an inserted row
	// that is there already; PostgreSQL, DuckDB and memory a row a full
	// update misses (SQLite puts the row in); SQLite and memory one an
	// update that left TOASTed values unsent misses.
	ErrDiverged = schema.ErrDiverged

	// ErrTargetFull: the target ran out of space (SQLite's "database or
	// disk is full", DuckDB's "No space left on device", PostgreSQL's
	// disk_full). The transaction was neither stored nor confirmed to the
	// source: free space and Run again, nothing is lost. The same value
	// as schema.ErrTargetFull; a sink of your own reports it with a
	// DiskFull method or by wrapping schema.ErrTargetFull.
	ErrTargetFull = schema.ErrTargetFull

	// ErrPanicked: Run panicked, in a hook most likely; what Config.OnStop
	// hears before the panic goes on to Run's caller (whose recover gets
	// the value, and the runtime the stack). The stream is closed by then:
	// the slot is free for the next Run once the server's walsender has
	// seen the disconnect (milliseconds; a Run started at once waits for
	// it, Config.SlotBusyWait).
	ErrPanicked = errors.New("walmirror: Run panicked")
)

// kindError is an error marked with one of the sentinels above: its
// message is err's, unchanged, and both err and kind are found by
// errors.Is and errors.As.
type kindError struct {
	err  error
	kind error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.err, e.kind} }

// mark returns err marked with kind.
func mark(kind, err error) error { return &kindError{err: err, kind: kind} }
