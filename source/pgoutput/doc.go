// Package pgoutput decodes PostgreSQL logical replication messages produced by
// the built-in pgoutput plugin, protocol versions 1 to 4 (proto_version '1'
// to '4', PostgreSQL 14 and later for v2+): every message those versions
// define, laid out as PostgreSQL's proto.c writes them.
//
//   - v1: Begin, Commit, Origin, Relation, Type, Insert, Update, Delete,
//     Truncate and Message (*Begin, *Commit, *Origin, *Relation, *TypeMsg,
//     *Insert, *Update, *Delete, *Truncate, *LogicalMessage).
//   - v2 (streaming of in-progress transactions): Stream Start, Stop, Commit
//     and Abort (*StreamStart, *StreamStop, *StreamCommit, *StreamAbort);
//     inside a stream block the change messages carry the xid of their
//     (sub)transaction, decoded into their Xid field.
//   - v3 (two-phase commit): Begin Prepare, Prepare, Commit Prepared,
//     Rollback Prepared and Stream Prepare (*BeginPrepare, *Prepare,
//     *CommitPrepared, *RollbackPrepared, *StreamPrepare).
//   - v4 (streaming 'parallel'): Stream Abort also carries the abort LSN and
//     time.
//
// Decode decodes one v1 message and keeps no state. A stream of v2 or later
// needs a Decoder (NewDecoder with DecodeOptions): the layout of a change
// message depends on whether a stream block is open, and that of Stream
// Abort on the streaming option, neither of which the bytes say. Both take
// the payload of one XLogData message (the bytes after its 24-byte header).
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
// so appending to it never overwrites src. Strings (names, GIDs) are copied.
//
// Tuple columns sent in binary form ('b') keep State Binary and their raw
// bytes; package schema itself only defines the n/u/t states, since the
// replication slot is normally opened without the binary option.
package pgoutput
