// Package apply joins a source and a sink: it assembles source transactions,
// groups many of them into one target transaction, compacts each table's
// changes to their net effect per key and hands the sink set-wise batches. The
// position it confirms to the source is always one the sink committed in the
// same transaction as the data it covers.
//
// # Getting started
//
// [Run] is the whole replication job of the walmirror command, for a Go
// service that keeps its copy in process: open a sink (package
// sinks/sqlite, sinks/duckdb, sinks/postgres or sinks/memory, or your own
// [Sink] that also implements [ShapeStore] and passes the contract suite
// in sinks/sinktest), fill a [Config] (Source.DSN at least; every other
// field has a default, see [Config.Validate]) and call Run on a goroutine
// you own; it returns when its context ends, at Config.StopAt, or on a
// permanent error, which errors.Is tells apart ([ErrSlotLost],
// [ErrDiverged], [ErrTargetFull], ...). Run it in a loop to restart.
//
// For read-your-writes, hook a [Progress] to the Config ([Progress.Hook])
// and call [Progress.WaitFor] with the source position taken after a
// commit (pg_current_wal_lsn()) before reading the copy;
// [Progress.Notify] wakes a cache when the copy moves. Config.OnCommit
// says which tables (and, with Config.ChangeKeys, which keys) each target
// commit changed, and Config.OnReady when the copy is complete. The
// examples below, and the program in examples/readyourwrites, show each.
package apply
