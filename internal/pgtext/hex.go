package pgtext

import (
	"errors"
	"fmt"
)

// ParseUUID parses uuid_out's form, 8-4-4-4-12 lower-case hex digits.
// Lenient: also upper-case digits and the 32 digits without hyphens.
func ParseUUID(b []byte, m Mode) ([16]byte, error) {
	var u [16]byte
	if m == Exact && len(b) != 36 {
		return u, fmt.Errorf("uuid %q: invalid", b)
	}
	j := 0
	for i := 0; i < len(b); {
		if b[i] == '-' && len(b) == 36 && (i == 8 || i == 13 || i == 18 || i == 23) {
			i++
			continue
		}
		if j == 16 || i+1 >= len(b) {
			return u, fmt.Errorf("uuid %q: invalid", b)
		}
		hi, lower1, ok1 := unhex(b[i])
		lo, lower2, ok2 := unhex(b[i+1])
		if !ok1 || !ok2 || m == Exact && !(lower1 && lower2) {
			return u, fmt.Errorf("uuid %q: invalid", b)
		}
		u[j] = hi<<4 | lo
		j++
		i += 2
	}
	if j != 16 {
		return u, fmt.Errorf("uuid %q: invalid", b)
	}
	return u, nil
}

// AppendBytea appends the bytes of byteaout's hex form (\x then two hex
// digits a byte; upper-case digits are accepted) to dst. On error it returns
// dst as it was.
func AppendBytea(dst, b []byte) ([]byte, error) {
	if len(b) < 2 || b[0] != '\\' || b[1] != 'x' {
		return dst, errors.New("bytea not in hex format (bytea_output must be hex)")
	}
	h := b[2:]
	if len(h)%2 != 0 {
		return dst, fmt.Errorf("bytea: odd number of hex digits (%d)", len(h))
	}
	start := len(dst)
	// Grown once: appending byte by byte grows a large slice by a quarter
	// at a time, ~5x its size allocated for a 50 MB value (helper-117).
	if n := len(h) / 2; cap(dst)-len(dst) < n {
		// Doubling at least, as append would, for buffers that take many
		// values (not slices.Grow: under -race it allocates twice).
		grown := make([]byte, len(dst), max(len(dst)+n, 2*cap(dst)))
		copy(grown, dst)
		dst = grown
	}
	for i := 0; i < len(h); i += 2 {
		hi, _, ok1 := unhex(h[i])
		lo, _, ok2 := unhex(h[i+1])
		if !ok1 || !ok2 {
			return dst[:start], fmt.Errorf("bytea: invalid hex digit near %q", h[i:i+2])
		}
		dst = append(dst, hi<<4|lo)
	}
	return dst, nil
}
