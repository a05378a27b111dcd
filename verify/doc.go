// Package verify proves that a copy equals its source as of one source
// position, table by table, and names the rows that differ.
//
// Run takes a snapshot of the source through a temporary logical slot (its
// exported snapshot shows exactly the transactions committed before the
// slot's consistent point C), brings the copy to exactly C with the
// ordinary engine (apply.Run with StopAt C-1: see Run), and then compares
// each published table: the source in the snapshot, the copy in one read
// transaction. Values are compared in one canonical form (canon.go) that
// every target's type mapping reads back to, so equal values compare equal
// whatever a target stores them as.
//
// Each side is read through a Reader of this package's own (SourceReader,
// OpenSQLite, DuckDB, OpenPostgres), never through a sink's internals.
// Each side computes checksums itself (a row count and a sum of row
// hashes per group of rows: checksum.go): PostgreSQL with
// hash_record_extended, a DuckDB or SQLite copy the same hashes with a Go
// port of PostgreSQL's hashing (pghash.go, targethash.go); only the groups
// that differ are read and compared row by row. A table keyed by one
// integer column is grouped by ranges of keys; any other table by buckets
// of its key's hash, or of its row's hash without a key (buckets.go), since
// other keys do not sort alike in every database. Where checksums cannot
// be used (PostgreSQL before 14; a DuckDB LIST of times, JSON or LISTs),
// tables with a key
// that sorts alike in every database (integers, text in byte order, uuid,
// dates and timestamps) are read once per side in key order and merged;
// others are matched by key in memory; tables without a key are compared
// as multisets of rows.
//
// RepairTables (verify --repair) has what a Report found different copied
// again by online copies the engine starts from the copy's position (as a
// walmirror resync request there would): just the differing rows, by key, for a table whose key is
// of integers, uuids, text and varchar and whose differing rows the comparison named
// (Options.Keys, at most so many per table: keys.go), else the whole
// table. It brings the copy up to date with the engine and verifies those
// tables again. RunLive and RepairLive do the same in the process that
// replicates into the copy (walmirror run's POST /verify): the engine is
// paused only while the copy's read transaction begins, and the copies are
// asked of it by a resync request in the source's WAL.
package verify
