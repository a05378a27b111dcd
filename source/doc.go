// Package source talks to the PostgreSQL being replicated: it checks the
// prerequisites (wal_level, privileges), manages the publication and the
// replication slot, copies the initial snapshot with the snapshot the slot
// exported, and streams pgoutput messages with START_REPLICATION while
// answering keepalives. The flush position it reports to the server is only
// ever what its consumer said is durably applied (Stream.Confirm).
//
// It knows nothing of targets: it hands out schema values and pgoutput messages.
package source
