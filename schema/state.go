package schema

import "github.com/walmirror/walmirror/lsn"

// Replication phases stored in the target.
const (
	// PhaseSnapshot marks an initial copy in progress: not complete, to be redone.
	PhaseSnapshot = "snapshot"
	// PhaseStreaming marks a complete copy kept current from the slot.
	PhaseStreaming = "streaming"
)

// State is walmirror's bookkeeping row in the target, written in the same
// target transaction as the data it describes.
type State struct {
	// LSN is the end of the last source transaction applied (or the slot's
	// consistent point after the snapshot): every source transaction whose
	// commit record lies before it is in the target.
	LSN      lsn.LSN
	Slot     string // the replication slot this target follows
	SystemID string // the source cluster's system identifier
	Phase    string // PhaseSnapshot or PhaseStreaming
}
