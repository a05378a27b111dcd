package schema

import (
	"encoding/json"
	"fmt"

	"github.com/walmirror/walmirror/lsn"
)

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
	// Timeline is the source's timeline (IDENTIFY_SYSTEM) the position was
	// reached on; 0 when not known (stored by an older version): a sink
	// stores it with the rest.
	Timeline uint32
	// Publication is the publication the copy is made from; "" when not
	// known (stored by an older version): a sink stores it with the rest.
	Publication string
	// SlotGuard: every position the copy confirmed to the source was
	// stored here first, so a slot confirmed past LSN is not this copy's
	// (dropped and made again by someone else, or advanced) and the
	// changes between are missing. False for a copy an older walmirror
	// confirmed idle positions for without storing them.
	SlotGuard bool
	// Copies are the tables being copied online (backfilled) while the
	// stream flows: each holds the source's rows up to its After key.
	Copies []TableCopy
}

// InitialCopy is the Reason of a chunked initial copy's tables: until they
// are copied, the copy is not complete (status, /readyz).
const InitialCopy = "initial copy"

// TableCopy is the stored progress of one table's online copy.
type TableCopy struct {
	RelID uint32 `json:"relid"`
	Table string `json:"table"` // schema.name, for status displays
	// After is the key of the last row copied, in text form: rows with
	// greater keys are still to come. Nil before the first chunk.
	After []string `json:"after,omitempty"`
	// Rows and Chunks copied so far; Estimate is the source's row estimate
	// when the copy began (-1 when unknown).
	Rows     int64  `json:"rows"`
	Chunks   int64  `json:"chunks"`
	Estimate int64  `json:"estimate"`
	Reason   string `json:"reason,omitempty"` // why the table is copied, for logs and status
	// Keys, when set, limits the copy to the rows with these keys (each
	// the key columns' values in text form): rows verify found different.
	// They are deleted from the target and copied again in one chunk; the
	// table's other rows stay as they are.
	Keys [][]string `json:"keys,omitempty"`
	// TextBytes says the table's text and varchar key columns sort by
	// their bytes in the source (collation C, POSIX or C.UTF-8), as its
	// first chunk found: keys compare by bytes, so the copy goes in chunks
	// (and resumes) by them.
	TextBytes bool `json:"text_bytes,omitempty"`
	// MustSee are source transactions (32-bit xids) the copy's next chunk
	// must read with a snapshot that shows them: the stream delivered
	// them, and the copy dropped their changes to rows past After (its
	// later chunks read those rows) or they truncated the table. A commit
	// is delivered once it is in the WAL, before other sessions see it
	// (for the whole wait for a synchronous standby).
	MustSee []uint32 `json:"must_see,omitempty"`
	// MustSettle, when not 0, stands for more MustSee than are worth
	// storing one by one: the next chunk's snapshot must show every
	// transaction up to it ended.
	MustSettle uint32 `json:"must_settle,omitempty"`
	// KeyNums are the attnums of the key columns After is a key of: a
	// copy resumed under another key starts again. Nil when stored by an
	// older version.
	KeyNums []int16 `json:"key_nums,omitempty"`
	// Initial marks a copy that replaced a table's initial copy before it
	// ended (the table rewritten, reshaped or re-keyed meanwhile): the
	// initial copy is not complete until it is (Initial).
	Initial bool `json:"initial,omitempty"`
}

// PartOfInitial says whether c is part of the initial copy: its tables are not
// all copied while one is.
func (c TableCopy) PartOfInitial() bool { return c.Reason == InitialCopy || c.Initial }

// EncodeCopies is the stored text form of State.Copies ("" when none).
func EncodeCopies(c []TableCopy) string {
	if len(c) == 0 {
		return ""
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	return string(b)
}

// DecodeCopies parses EncodeCopies' form.
func DecodeCopies(s string) ([]TableCopy, error) {
	if s == "" {
		return nil, nil
	}
	var c []TableCopy
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return nil, fmt.Errorf("stored table copies: %w", err)
	}
	return c, nil
}
