package source

import "testing"

func TestXidSnapshot(t *testing.T) {
	x, err := ParseXidSnapshot("100:110:102,105")
	if err != nil {
		t.Fatal(err)
	}
	for xid, want := range map[uint32]bool{50: true, 99: true, 100: true, 101: true, 102: false, 105: false, 109: true, 110: false, 200: false} {
		if got := x.Sees(xid); got != want {
			t.Errorf("Sees(%d) = %v, want %v", xid, got, want)
		}
	}
	if !x.Settled(99) || x.Settled(100) {
		t.Error("Settled: only xids below xmin have ended for every later snapshot")
	}
	// Across an epoch boundary: full ids 2^32-5 .. 2^32+3.
	e := uint64(1) << 32
	x = XidSnapshot{Xmin: e - 5, Xmax: e + 3, Xip: []uint64{e - 2, e + 1}}
	for xid, want := range map[uint32]bool{^uint32(0) - 10: true, ^uint32(0) - 1: false, ^uint32(0): true, 0: true, 1: false, 2: true, 3: false, 4: false} {
		if got := x.Sees(xid); got != want {
			t.Errorf("epoch boundary: Sees(%d) = %v, want %v", xid, got, want)
		}
	}
	for _, bad := range []string{"", "1:2", "3:2:", "a:2:", "1:2:x"} {
		if _, err := ParseXidSnapshot(bad); err == nil {
			t.Errorf("ParseXidSnapshot(%q): no error", bad)
		}
	}
}
