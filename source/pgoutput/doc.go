// Package pgoutput decodes PostgreSQL logical replication messages produced by
// the built-in pgoutput plugin, protocol version 1 (proto_version '1').
//
// Decode takes the payload of one XLogData message (the bytes after its
// 24-byte header) and returns one of *Begin, *Commit, *Origin, *Relation,
// *TypeMsg, *Insert, *Update, *Delete, *Truncate or *LogicalMessage.
//
// The decoder is pure and bounds-checked: every length and count is checked
// against the bytes that remain before anything is sliced or allocated, and
// malformed or truncated input yields a *DecodeError naming the message type,
// the field and its offset in src. It never panics.
//
// It is also allocation-lean: tuple column values (schema.Datum.Data) and
// LogicalMessage.Content alias src rather than being copied, so the caller
// must keep src alive and unmodified while it uses the decoded message (copy
// any value it keeps longer). Each aliased slice is capped at its own length,
// so appending to it never overwrites src. Strings (names) are copied.
//
// Tuple columns sent in binary form ('b') keep State Binary and their raw
// bytes; package schema itself only defines the n/u/t states, since the
// replication slot is normally opened without the binary option.
//
// Streaming (protocol v2) and two-phase (v3) messages are not decoded: they
// only appear when those protocol versions or options were requested.
package pgoutput
