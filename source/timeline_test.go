package source

import (
	"testing"

	"github.com/walmirror/walmirror/lsn"
)

// TestTimelineHistory: a timeline history file (TIMELINE_HISTORY) says
// where each earlier timeline ended; a position on the current timeline
// is always held, one on an earlier timeline up to where it ended, one on
// a timeline of another branch never.
func TestTimelineHistory(t *testing.T) {
	forks, err := parseTimelineHistory([]byte("1\t0/3000000\tno recovery target specified\n\n2\t0/5000158\tbefore 2026-12-03 12:00:00+00\n# comment\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Source{timeline: 3, forks: forks}
	for _, c := range []struct {
		tli  uint32
		at   lsn.LSN
		want bool
	}{
		{3, 0xFFFFFFFF00000000, true},
		{1, 0x3000000, true},
		{1, 0x3000001, false},
		{2, 0x5000158, true},
		{2, 0x5000159, false},
		{4, 0x10, false}, // another branch
	} {
		end, ok, err := s.TimelineEnd(t.Context(), c.tli)
		if got := err == nil && ok && c.at <= end; got != c.want {
			t.Errorf("timeline %d holds %s: %v, want %v", c.tli, c.at, got, c.want)
		}
	}
	// Timeline 3 forked from 2 before 2 had reached where 1 ended: 1's
	// WAL is shared only up to that earlier fork.
	if end, ok := sharedEnd(map[uint32]lsn.LSN{1: 0x5000000, 2: 0x4000000}, 1); !ok || end != 0x4000000 {
		t.Errorf("shared end of timeline 1 = %s, %v; want 0/4000000", end, ok)
	}
	if _, err := parseTimelineHistory([]byte("x\t0/1\treason\n")); err == nil {
		t.Error("a history line with no timeline number was read")
	}
}
