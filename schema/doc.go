// Package schema is the shared vocabulary between the replication source, the
// apply engine and the sinks: tables as the source describes them (Relation and
// Type messages, or the catalog during the initial snapshot), row values in
// PostgreSQL's text form, and the classification of PostgreSQL types that each
// sink maps to its own column types. It imports nothing else of walmirror's.
package schema
