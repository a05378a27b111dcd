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
		if got := s.HoldsPosition(c.tli, c.at); got != c.want {
			t.Errorf("HoldsPosition(%d, %s) = %v, want %v", c.tli, c.at, got, c.want)
		}
	}
	if _, err := parseTimelineHistory([]byte("x\t0/1\treason\n")); err == nil {
		t.Error("a history line with no timeline number was read")
	}
}
