package apply

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/walmirror/walmirror/schema"
)

// Sink is a replication target. Calls between Begin and Commit or Rollback
// form one target transaction; a sink holds at most one open.
//
// A sink of your own (an in-process map, a key-value store) implements
// Sink and ShapeStore (Run refuses one without the latter), makes what a
// transaction wrote visible at its Commit only, and returns from
// ReadState the state its last Commit stored (a restart resumes from it,
// exactly once). Its tests run the contract suite, sinks/sinktest;
// sinks/memory is a complete example in Go maps.
//
// Optional methods Run finds by type assertion (each bundled sink has
// those it needs; without one, Run does as described):
//   - MoveTable(ctx, schema, from, to string) error moves a table's copy
//     to another name in the open transaction. Without it, a renamed table
//     that takes the name another table's copy still has (two tables
//     swapping names) stops the run. Either way EnsureTable refuses a
//     rename onto a taken name, unless the Change says Vacate (a copy no
//     published table has any more: it moves that one aside,
//     schema.AsideName); the contract suite checks both.
//   - CommitPosition(ctx, schema.State) error commits a transaction in
//     which only the state changed; without it, Commit.
//   - CanRetype(t *schema.Table, from, to schema.Column) bool says whether
//     EnsureTable converts a column's stored values to a new type exactly;
//     without it, every type change is taken as convertible in place.
//   - WriteNew(ctx, t *schema.Table, rows []schema.Tuple) error inserts rows
//     whose keys the table does not hold (online copy chunks); without
//     it, Write's Inserts.
//   - CopyChunkGrain() int: the chunk size in rows below which the sink's
//     online copy chunks cost more per row.
//   - CopiesBinary and CopyBinary load a table from the source's binary
//     COPY stream undecoded (the PostgreSQL sink).
//   - DiskFull(err error) bool says whether err, from one of the sink's
//     calls, is its target running out of space; Run marks such an error
//     with ErrTargetFull. A sink may instead wrap schema.ErrTargetFull
//     itself (schema.TargetFull).
//
// A wrapper around a bundled sink (logging, metrics) that embeds only Sink
// and ShapeStore hides these: Run then does as without them, which for
// CanRetype means converting in place what the sink would have copied
// again (an SQLite copy then stops at a type change it could have
// followed), and for DiskFull an unmarked error. Forward each optional
// method the wrapped sink has (embedding the concrete sink type does).
type Sink interface {
	// ReadState returns the stored state; ok is false on a target walmirror
	// has never written to.
	ReadState(ctx context.Context) (st schema.State, ok bool, err error)
	Begin(ctx context.Context) error
	// EnsureTable creates the target table for t, or brings an existing one in
	// line with t's columns (never dropping data).
	EnsureTable(ctx context.Context, t *schema.Table) error
	// Write applies one batch set-wise. It must not keep b or its tuples.
	Write(ctx context.Context, b *schema.Batch) error
	// Truncate empties the tables.
	Truncate(ctx context.Context, tables []*schema.Table) error
	// Commit stores st in the open transaction and commits it durably.
	Commit(ctx context.Context, st schema.State) error
	// Rollback abandons the open transaction, if any.
	Rollback(ctx context.Context) error
	// Close releases the target; calls after it (ReadState too) return an
	// error saying the sink is closed, as the contract suite checks.
	Close() error
}

// ShapeStore is what a Sink also implements: it keeps, in the open
// transaction, an opaque text per source table (its shape as the engine
// last wrote it). From it the engine knows which tables the copy holds
// and what changed since: without it a table that joins the publication
// would get only the rows changed after it joined (its existing rows
// never copied), and a renamed column would arrive as a dropped and an
// added one. Run refuses a sink without these methods.
type ShapeStore interface {
	// Shape returns the text SetShape stored for relid (found false: none).
	Shape(ctx context.Context, relid uint32) (shape string, found bool, err error)
	// SetShape stores shape for t.ID in the open transaction.
	SetShape(ctx context.Context, t *schema.Table, shape string) error
	// ShapeIDs lists the relids with a stored shape.
	ShapeIDs(ctx context.Context) ([]uint32, error)
	// ForgetShape drops relid's stored shape in the open transaction (the
	// table left the publication; its target table stays).
	ForgetShape(ctx context.Context, relid uint32) error
}

// checkSink refuses a sink Run cannot keep a complete copy with.
func checkSink(s Sink) error {
	if s == nil {
		return errors.New("apply.Run: nil sink")
	}
	if v := reflect.ValueOf(s); v.Kind() == reflect.Pointer && v.IsNil() {
		// Most likely the result of an Open whose error went unchecked.
		return fmt.Errorf("apply.Run: sink is a nil %T (did opening it fail?)", s)
	}
	if _, ok := s.(ShapeStore); !ok {
		return fmt.Errorf("apply.Run: sink %T does not implement apply.ShapeStore (Shape, SetShape, ShapeIDs, ForgetShape): without it, tables that join the publication would miss their existing rows", s)
	}
	return nil
}

// fullReporter is the optional DiskFull method (see Sink).
type fullReporter interface{ DiskFull(err error) bool }

// markFull marks err with ErrTargetFull when the sink says it is its
// target running out of space, whichever call it came from (a table
// created, a row written, a commit).
func markFull(sink Sink, err error) error {
	if fr, ok := sink.(fullReporter); ok && err != nil && fr.DiskFull(err) {
		return schema.TargetFull(err)
	}
	return err
}
