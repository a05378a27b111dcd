package lsn

import "testing"

func TestRoundTrip(t *testing.T) {
	for _, s := range []string{"0/0", "0/16B3748", "1/00000001", "FFFFFFFF/FFFFFFFF"} {
		l, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q): %v", s, err)
		}
		back, err := Parse(l.String())
		if err != nil || back != l {
			t.Fatalf("round trip %q -> %s -> %v (%v)", s, l, back, err)
		}
	}
	if got := LSN(0x16B3748).String(); got != "0/016B3748" {
		t.Fatalf("String = %q", got)
	}
	for _, bad := range []string{"", "16B3748", "x/1", "1/y", "100000000/0"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded, want error", bad)
		}
	}
}
