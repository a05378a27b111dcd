package apply

import (
	"context"

	"github.com/walmirror/walmirror/schema"
)

// Sink is a replication target. Calls between Begin and Commit or Rollback
// form one target transaction; a sink holds at most one open.
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
	Close() error
}
