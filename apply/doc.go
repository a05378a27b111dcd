// Package apply joins a source and a sink: it assembles source transactions,
// groups many of them into one target transaction, compacts each table's
// changes to their net effect per key and hands the sink set-wise batches. The
// position it confirms to the source is always one the sink committed in the
// same transaction as the data it covers.
package apply
