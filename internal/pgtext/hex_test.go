package pgtext

import (
	"bytes"
	"runtime"
	"testing"
)

func TestParseUUID(t *testing.T) {
	want := [16]byte{0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38, 0x0a, 0x11}
	for _, c := range []accepts{
		{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", true, true},
		{"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", false, true},
		{"a0eebc999c0b4ef8bb6d6bb9bd380a11", false, true},
		{"{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", false, false},
		{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", false, false},
		{"a0eebc99x9c0b-4ef8-bb6d-6bb9bd380a11", false, false},
		{"a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11", false, false},
		{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g", false, false},
		{"a0eebc999c0b4ef8bb6d6bb9bd380a1100", false, false},
		{"", false, false},
	} {
		for _, m := range modes {
			u, err := ParseUUID([]byte(c.in), m)
			if (err == nil) != c.ok(m) || err == nil && u != want {
				t.Errorf("ParseUUID(%q, %v) = %x, %v (accepted: %v)", c.in, m, u, err, c.ok(m))
			}
		}
	}
}

func TestAppendBytea(t *testing.T) {
	for in, want := range map[string][]byte{`\x`: {}, `\x00ff`: {0, 0xff}, `\xDEADbeef`: {0xde, 0xad, 0xbe, 0xef}} {
		got, err := AppendBytea([]byte("pre"), []byte(in))
		if err != nil || !bytes.Equal(got, append([]byte("pre"), want...)) {
			t.Errorf("AppendBytea(%q) = %x, %v", in, got, err)
		}
	}
	for _, in := range []string{"", `\`, `\x0`, `\x0g`, `x00`, `\000`, `\X00`, `\x 00`} {
		if got, err := AppendBytea([]byte("pre"), []byte(in)); err == nil || string(got) != "pre" {
			t.Errorf("AppendBytea(%q) = %q, %v; want an error and the buffer as it was", in, got, err)
		}
	}
}

// A large value is decoded into a buffer grown once (helper-117: appending
// byte by byte allocated ~5x a 50 MB value on its way). Counted in bytes:
// the race detector adds small allocations of its own.
func TestAppendByteaGrowsOnce(t *testing.T) {
	const n = 1 << 20
	in := append([]byte(`\x`), bytes.Repeat([]byte("ab"), n)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 4 {
		out, err := AppendBytea(nil, in)
		if err != nil || len(out) != n {
			t.Fatalf("AppendBytea: %d bytes, %v", len(out), err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 4; per > n*3/2 {
		t.Errorf("AppendBytea of 1 MiB allocated %d bytes, want about %d", per, n)
	}
}
