package postgres

import (
	"encoding/binary"
	"math"

	"github.com/walmirror/walmirror/schema"
)

// Binary COPY. The target server's text input functions are a large part of
// its work per row (timestamptz and numeric most of all), while their binary
// receive functions take the stored form almost as is. So values of types
// whose text output form has an exact, simple binary equivalent are turned
// into it here; a table with any other column type is copied in text. The
// receive functions apply the same typmod checks and rounding as the input
// functions (numeric's scale, varchar's length, timestamp's precision), and
// an encoder refuses any text it does not fully understand: the batch is
// then sent in text instead, so the server, not this file, judges odd values.

// binaryCopy can be turned off by tests, to compare.
var binaryCopy = true

// binEnc appends the binary form of a value given in its text output form;
// ok is false for a text it cannot encode exactly.
type binEnc func(buf, text []byte) (_ []byte, ok bool)

// binEncoders by target type OID. The value must come from a source column of
// the same type, except for text-like targets, whose binary form is the text.
var binEncoders = map[uint32]binEnc{
	schema.OIDBool:        encBool,
	schema.OIDInt2:        encInt(16),
	schema.OIDInt4:        encInt(32),
	schema.OIDInt8:        encInt(64),
	schema.OIDText:        encText,
	schema.OIDVarchar:     encText,
	schema.OIDBpchar:      encText, // bpchar_recv pads and checks like bpcharin
	schema.OIDNumeric:     encNumeric,
	schema.OIDDate:        encDate,
	schema.OIDTimestamp:   encTimestamp(false),
	schema.OIDTimestampTZ: encTimestamp(true),
	schema.OIDUUID:        encUUID,
	schema.OIDJSONB:       encJSONB,
}

// binaryEncoderFor picks the encoder for a source column stored in a target
// column of type target; nil when the column must go in text.
func binaryEncoderFor(source, target uint32) binEnc {
	if target == schema.OIDText || target == schema.OIDVarchar {
		return encText // any source value is stored as its text form
	}
	if source != target {
		return nil
	}
	return binEncoders[target]
}

// copyBinaryHeader starts a binary COPY stream: signature, flags, no extension.
var copyBinaryHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// copyBinaryTrailer ends it.
var copyBinaryTrailer = []byte{0xff, 0xff}

// appendBinaryField appends one field (length word, then the value); ok is
// false for an unsent value or one enc cannot encode.
func appendBinaryField(buf []byte, enc binEnc, d schema.Datum) ([]byte, bool) {
	switch d.State {
	case schema.Null:
		return append(buf, 0xff, 0xff, 0xff, 0xff), true
	case schema.Text:
		at := len(buf)
		buf = append(buf, 0, 0, 0, 0)
		buf, ok := enc(buf, d.Data)
		if !ok || len(buf)-at-4 > math.MaxInt32 {
			return buf[:at], false
		}
		binary.BigEndian.PutUint32(buf[at:], uint32(len(buf)-at-4))
		return buf, true
	}
	return buf, false
}

func appendBinaryNull(buf []byte) []byte { return append(buf, 0xff, 0xff, 0xff, 0xff) }

func encText(buf, text []byte) ([]byte, bool) { return append(buf, text...), true }

// encJSONB: version 1, then the text (jsonb_recv parses it like jsonb_in).
func encJSONB(buf, text []byte) ([]byte, bool) { return append(append(buf, 1), text...), true }

func encBool(buf, text []byte) ([]byte, bool) {
	if len(text) == 1 {
		switch text[0] {
		case 't':
			return append(buf, 1), true
		case 'f':
			return append(buf, 0), true
		}
	}
	return buf, false
}

func encInt(bits int) binEnc {
	return func(buf, text []byte) ([]byte, bool) {
		v, ok := parseInt(text, bits)
		if !ok {
			return buf, false
		}
		switch bits {
		case 16:
			return binary.BigEndian.AppendUint16(buf, uint16(v)), true
		case 32:
			return binary.BigEndian.AppendUint32(buf, uint32(v)), true
		}
		return binary.BigEndian.AppendUint64(buf, uint64(v)), true
	}
}

// parseInt accepts exactly the output form: an optional '-', then digits
// without a superfluous leading zero.
func parseInt(text []byte, bits int) (int64, bool) {
	s := text
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 19 || (s[0] == '0' && len(s) > 1) {
		return 0, false
	}
	var u uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	limit := uint64(1) << (bits - 1) // magnitude of the minimum
	if len(s) < len(text) {
		if u > limit || (u == 0) {
			return 0, false // "-0" is not an output form
		}
		return -int64(u-1) - 1, true
	}
	if u >= limit {
		return 0, false
	}
	return int64(u), true
}

// Numeric's binary form: ndigits, weight, sign, dscale (int16 each), then
// ndigits base-10000 digits, most significant first; the value is
// sum(digit[i] * 10000^(weight-i)).
const (
	numericPos  = 0x0000
	numericNeg  = 0x4000
	numericNaN  = 0xC000
	numericPInf = 0xD000
	numericNInf = 0xF000
)

func encNumeric(buf, text []byte) ([]byte, bool) {
	switch string(text) {
	case "NaN":
		return append(buf, 0, 0, 0, 0, numericNaN>>8, 0, 0, 0), true
	case "Infinity":
		return append(buf, 0, 0, 0, 0, numericPInf>>8, 0, 0, 0), true
	case "-Infinity":
		return append(buf, 0, 0, 0, 0, numericNInf>>8, 0, 0, 0), true
	}
	s := text
	sign := uint16(numericPos)
	if len(s) > 0 && s[0] == '-' {
		sign, s = numericNeg, s[1:]
	}
	intPart, frac := s, []byte(nil)
	for i, c := range s {
		if c == '.' {
			intPart, frac = s[:i], s[i+1:]
			if len(frac) == 0 {
				return buf, false
			}
			break
		}
	}
	// Output form: at least one integer digit, no superfluous leading zero.
	if len(intPart) == 0 || (intPart[0] == '0' && len(intPart) > 1) || len(frac) > 16383 || len(intPart) > 131072 {
		return buf, false
	}
	for _, part := range [][]byte{intPart, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return buf, false
			}
		}
	}
	// Base-10000 groups aligned at the decimal point: the integer part is
	// padded on the left, the fraction on the right.
	lead := (4 - len(intPart)%4) % 4
	nInt := (len(intPart) + lead) / 4
	nFrac := (len(frac) + 3) / 4
	hdr := len(buf)
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0)
	digit := func(pos int) uint16 { // pos counts decimal digits from the start of the padded integer part
		var d uint16
		for k := pos; k < pos+4; k++ {
			d *= 10
			i := k - lead
			switch {
			case i < 0:
			case i < len(intPart):
				d += uint16(intPart[i] - '0')
			case i-len(intPart) < len(frac):
				d += uint16(frac[i-len(intPart)] - '0')
			}
		}
		return d
	}
	weight := nInt - 1
	first, n := -1, 0
	for g := 0; g < nInt+nFrac; g++ {
		d := digit(g * 4)
		if first < 0 {
			if d == 0 {
				weight-- // leading zero groups are not stored
				continue
			}
			first = g
		}
		buf = binary.BigEndian.AppendUint16(buf, d)
		n++
	}
	// Trailing zero groups are not stored either.
	for n > 0 && buf[len(buf)-2] == 0 && buf[len(buf)-1] == 0 {
		buf = buf[:len(buf)-2]
		n--
	}
	if n == 0 {
		weight = 0
		if sign == numericNeg {
			return buf[:hdr], false // "-0" is not an output form
		}
	}
	binary.BigEndian.PutUint16(buf[hdr:], uint16(n))
	binary.BigEndian.PutUint16(buf[hdr+2:], uint16(int16(weight)))
	binary.BigEndian.PutUint16(buf[hdr+4:], sign)
	binary.BigEndian.PutUint16(buf[hdr+6:], uint16(len(frac)))
	return buf, true
}

// Dates and timestamps count days and microseconds from 2000-01-01 (UTC for
// timestamptz); ±infinity are the extreme values.
const postgresEpochJDate = 2451545

// date2j is PostgreSQL's Julian day number of a proleptic Gregorian date
// (year 0 is 1 BC).
func date2j(y, m, d int) int {
	if m > 2 {
		m++
		y += 4800
	} else {
		m += 13
		y += 4799
	}
	century := y / 100
	j := y*365 - 32167
	j += y/4 - century + century/4
	j += 7834*m/256 + d
	return j
}

// Julian day limits PostgreSQL accepts (4714-11-24 BC; 5874898-01-01 for
// dates, 294277-01-01 for timestamps, both exclusive).
const (
	minJulian          = 0
	dateEndJulian      = 2147483494
	timestampEndJulian = 109203528
)

// parseDate reads "YYYY-MM-DD" (four or more year digits) and an optional
// " BC" after rest; it returns the Julian day and what follows the date.
func parseDate(text []byte) (jd int, rest []byte, ok bool) {
	i := 0
	for i < len(text) && text[i] >= '0' && text[i] <= '9' {
		i++
	}
	if i < 4 || i > 7 || len(text) < i+6 || text[i] != '-' || text[i+3] != '-' {
		return 0, nil, false
	}
	y := atoi(text[:i]) // at least four digits: zero-padded below 1000
	m, okm := two(text[i+1:])
	d, okd := two(text[i+4:])
	if !okm || !okd || y == 0 || (i > 4 && text[0] == '0') {
		return 0, nil, false
	}
	rest = text[i+6:]
	if n := len(rest); n >= 3 && string(rest[n-3:]) == " BC" {
		rest = rest[:n-3]
		y = 1 - y // year 0 is 1 BC
	}
	if m < 1 || m > 12 || d < 1 || d > daysIn(m, y) {
		return 0, nil, false
	}
	return date2j(y, m, d), rest, true
}

func daysIn(m, y int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

func atoi(b []byte) int {
	n := 0
	for _, c := range b {
		n = n*10 + int(c-'0')
	}
	return n
}

func two(b []byte) (int, bool) {
	if len(b) < 2 || b[0] < '0' || b[0] > '9' || b[1] < '0' || b[1] > '9' {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

func encDate(buf, text []byte) ([]byte, bool) {
	switch string(text) {
	case "infinity":
		return binary.BigEndian.AppendUint32(buf, math.MaxInt32), true
	case "-infinity":
		return binary.BigEndian.AppendUint32(buf, 1<<31), true
	}
	jd, rest, ok := parseDate(text)
	if !ok || len(rest) != 0 || jd < minJulian || jd >= dateEndJulian {
		return buf, false
	}
	return binary.BigEndian.AppendUint32(buf, uint32(int32(jd-postgresEpochJDate))), true
}

// encTimestamp reads the ISO output form "YYYY-MM-DD HH:MM:SS[.ffffff]", with
// tz a UTC offset "+HH[:MM[:SS]]" after it, then " BC" for years before 1.
func encTimestamp(tz bool) binEnc {
	return func(buf, text []byte) ([]byte, bool) {
		switch string(text) {
		case "infinity":
			return binary.BigEndian.AppendUint64(buf, math.MaxInt64), true
		case "-infinity":
			return binary.BigEndian.AppendUint64(buf, 1<<63), true
		}
		jd, rest, ok := parseDate(text)
		if !ok || jd < minJulian || jd >= timestampEndJulian || len(rest) < 9 || rest[0] != ' ' || rest[3] != ':' || rest[6] != ':' {
			return buf, false
		}
		h, ok1 := two(rest[1:])
		mi, ok2 := two(rest[4:])
		sec, ok3 := two(rest[7:])
		if !ok1 || !ok2 || !ok3 || h > 23 || mi > 59 || sec > 59 {
			return buf, false
		}
		rest = rest[9:]
		var usec int64
		if len(rest) > 0 && rest[0] == '.' {
			n := 1
			for n < len(rest) && n <= 6 && rest[n] >= '0' && rest[n] <= '9' {
				usec = usec*10 + int64(rest[n]-'0')
				n++
			}
			if n == 1 || rest[n-1] == '0' || (n < len(rest) && rest[n] >= '0' && rest[n] <= '9') {
				return buf, false // output trims trailing zeros and has at most 6 digits
			}
			for k := n; k <= 6; k++ {
				usec *= 10
			}
			rest = rest[n:]
		}
		var off int64 // seconds east of UTC
		if tz {
			if len(rest) < 3 || (rest[0] != '+' && rest[0] != '-') {
				return buf, false
			}
			oh, ok := two(rest[1:])
			if !ok {
				return buf, false
			}
			off = int64(oh) * 3600
			neg := rest[0] == '-'
			rest = rest[3:]
			for _, mul := range []int64{60, 1} {
				if len(rest) == 0 || rest[0] != ':' {
					break
				}
				v, ok := two(rest[1:])
				if !ok || v > 59 {
					return buf, false
				}
				off += int64(v) * mul
				rest = rest[3:]
			}
			if neg {
				off = -off
			}
		}
		if len(rest) != 0 {
			return buf, false
		}
		secs := int64(jd-postgresEpochJDate)*86400 + int64(h)*3600 + int64(mi)*60 + int64(sec) - off
		return binary.BigEndian.AppendUint64(buf, uint64(secs*1_000_000+usec)), true
	}
}

// encUUID reads the canonical 8-4-4-4-12 lower-case hex form.
func encUUID(buf, text []byte) ([]byte, bool) {
	if len(text) != 36 || text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-' {
		return buf, false
	}
	var out [16]byte
	j := 0
	for i := 0; i < 36; i += 2 {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i--
			continue
		}
		hi, lo := unhex(text[i]), unhex(text[i+1])
		if hi > 15 || lo > 15 {
			return buf, false
		}
		out[j] = hi<<4 | lo
		j++
	}
	return append(buf, out[:]...), true
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return 255
}
