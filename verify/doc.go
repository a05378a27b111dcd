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
// When a table's key is one integer column, each side computes checksums
// of key ranges itself (a row count and a sum of row hashes per range:
// checksum.go): PostgreSQL with hash_record_extended, a DuckDB or SQLite
// copy the same hashes with a Go port of PostgreSQL's hashing (pghash.go,
// targethash.go); only the ranges that differ are read and compared row by
// row. Otherwise, tables with a key that sorts alike in every database
// (integers, text in byte order, uuid, dates and timestamps) are read once
// per side in key order and merged; others are matched by key in memory;
// tables without a key are compared as multisets of rows.
//
// RepairTables (verify --repair) has what a Report found different copied
// again by online copies the engine starts from the copy's position (as a
// walmirror resync request there would): just the differing rows, by key, for a table whose key is
// of integers and uuids and whose differing rows the comparison named
// (Options.Keys, at most so many per table: keys.go), else the whole
// table. It brings the copy up to date with the engine and verifies those
// tables again.
package verify
