package lsn

import (
	"log/slog"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{"0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF", "x/1", "1/", "/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			return
		}
		if back, err := Parse(l.String()); err != nil || back != l {
			t.Fatalf("%q -> %v -> %v, %v", s, l, back, err)
		}
	})
}

// TestLogValue: JSON logs print an LSN as PostgreSQL does, not as a number.
func TestLogValue(t *testing.T) {
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "at", LSN(0x1_01FE60F8))
	if !strings.Contains(b.String(), `"at":"1/01FE60F8"`) {
		t.Errorf("JSON log: %s", b.String())
	}
}
