package apply

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/walmirror/walmirror/schema"
)

// TestStoredMustSee: the transactions a copy must see are stored with it
// and come back with a resumed copy; past maxStoredMustSee, as the newest
// of them (wrapping around), which the next chunk waits to see settled.
func TestStoredMustSee(t *testing.T) {
	store := func(mustSee []uint32, trunc uint32) schema.TableCopy {
		e := &engine{fills: map[uint32]*fill{7: {copy: schema.TableCopy{RelID: 7}, mustSee: mustSee, truncXid: trunc}}, fillOrder: []uint32{7}}
		return e.fillsState()[0]
	}
	if c := store([]uint32{5, 9}, 3); !slices.Equal(c.MustSee, []uint32{5, 9, 3}) || c.MustSettle != 0 {
		t.Errorf("a few: %v, settle %d", c.MustSee, c.MustSettle)
	}
	many := make([]uint32, maxStoredMustSee+1)
	for i := range many {
		many[i] = 1<<32 - 100 + uint32(i) // past the wraparound
	}
	c := store(many, 0)
	if c.MustSee != nil || c.MustSettle != many[len(many)-1] {
		t.Errorf("many: %d stored, settle %d, want %d", len(c.MustSee), c.MustSettle, many[len(many)-1])
	}
	e := &engine{log: slog.New(slog.DiscardHandler), fills: map[uint32]*fill{}, copiedCache: map[uint32]bool{}}
	e.loadFills([]schema.TableCopy{{RelID: 7, MustSee: []uint32{4}, MustSettle: 12}})
	if f := e.fills[7]; !slices.Equal(f.mustSee, []uint32{4}) || f.mustSettle != 12 || f.copy.MustSee != nil || f.copy.MustSettle != 0 {
		t.Errorf("loaded: %+v", f)
	}
}

// TestRestartedInitialCopy: a table's initial copy that starts again (the
// table rewritten or reshaped meanwhile) is still part of the initial copy,
// through a stored state too, and so is one that starts again after that
// (helper-128: status said the initial copy was complete while the table
// was being copied again from empty).
func TestRestartedInitialCopy(t *testing.T) {
	e := &engine{log: slog.New(slog.DiscardHandler), fills: map[uint32]*fill{}, copiedCache: map[uint32]bool{}}
	e.loadFills([]schema.TableCopy{{RelID: 7, Table: "public.t", Reason: schema.InitialCopy, Chunks: 3}, {RelID: 8, Table: "public.u", Reason: "resync"}})
	e.beginFill(7, "public.t", -1, "the source rewrote it while it was copied", nil)
	e.beginFill(8, "public.u", -1, "the source rewrote it while it was copied", nil)
	stored := e.fillsState()
	if len(stored) != 2 || !stored[0].PartOfInitial() || stored[0].Reason == schema.InitialCopy || stored[1].PartOfInitial() {
		t.Fatalf("restarted: %+v", stored)
	}
	e = &engine{log: slog.New(slog.DiscardHandler), fills: map[uint32]*fill{}, copiedCache: map[uint32]bool{}}
	e.loadFills(stored)
	e.beginFill(7, "public.t", -1, "its key changed while it was copied", nil)
	if c := e.fillsState()[0]; !c.PartOfInitial() {
		t.Errorf("restarted twice: %+v", c)
	}
}
