package postgres

import (
	"encoding/binary"
	"math"

	"github.com/walmirror/walmirror/internal/pgtext"
	"github.com/walmirror/walmirror/schema"
)

// Binary COPY. The target server's text input functions are a large part of
// its work per row (timestamptz and numeric most of all), while their binary
// receive functions take the stored form almost as is. So values of types
// whose text output form has an exact, simple binary equivalent are turned
// into it here; a table with any other column type is copied in text. The
// receive functions apply the same typmod checks and rounding as the input
// functions (numeric's scale, varchar's length, timestamp's precision), and
// an encoder refuses any text that is not exactly an output form (it parses
// in pgtext's Exact mode): the batch is then sent in text instead, so the
// server, not this file, judges odd values.

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
	v, err := pgtext.ParseBool(text)
	switch {
	case err != nil:
		return buf, false
	case v:
		return append(buf, 1), true
	}
	return append(buf, 0), true
}

func encInt(bits int) binEnc {
	return func(buf, text []byte) ([]byte, bool) {
		v, err := pgtext.ParseInt(text, bits, pgtext.Exact)
		if err != nil {
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
	num, err := pgtext.ParseNumeric(text, pgtext.Exact)
	switch {
	case err != nil:
		return buf, false
	case num.NaN:
		return append(buf, 0, 0, 0, 0, numericNaN>>8, 0, 0, 0), true
	case num.Inf == pgtext.Infinity:
		return append(buf, 0, 0, 0, 0, numericPInf>>8, 0, 0, 0), true
	case num.Inf == pgtext.NegInfinity:
		return append(buf, 0, 0, 0, 0, numericNInf>>8, 0, 0, 0), true
	}
	intPart, frac := num.Int, num.Frac
	sign := uint16(numericPos)
	if num.Neg {
		sign = numericNeg // never zero: Exact refuses "-0"
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
	}
	binary.BigEndian.PutUint16(buf[hdr:], uint16(n))
	binary.BigEndian.PutUint16(buf[hdr+2:], uint16(int16(weight)))
	binary.BigEndian.PutUint16(buf[hdr+4:], sign)
	binary.BigEndian.PutUint16(buf[hdr+6:], uint16(len(frac)))
	return buf, true
}

// Dates and timestamps count days and microseconds from 2000-01-01 (UTC for
// timestamptz), as pgtext does; ±infinity are the extreme values.

func encDate(buf, text []byte) ([]byte, bool) {
	days, inf, err := pgtext.ParseDate(text, pgtext.Exact)
	switch {
	case err != nil:
		return buf, false
	case inf == pgtext.Infinity:
		return binary.BigEndian.AppendUint32(buf, math.MaxInt32), true
	case inf == pgtext.NegInfinity:
		return binary.BigEndian.AppendUint32(buf, 1<<31), true
	}
	return binary.BigEndian.AppendUint32(buf, uint32(int32(days))), true
}

// encTimestamp reads the ISO output form "YYYY-MM-DD HH:MM:SS[.ffffff]", with
// tz a UTC offset "+HH[:MM[:SS]]" after it, then " BC" for years before 1.
func encTimestamp(tz bool) binEnc {
	parse := pgtext.ParseTimestamp
	if tz {
		parse = pgtext.ParseTimestampTZ
	}
	return func(buf, text []byte) ([]byte, bool) {
		us, inf, err := parse(text, pgtext.Exact)
		switch {
		case err != nil:
			return buf, false
		case inf == pgtext.Infinity:
			return binary.BigEndian.AppendUint64(buf, math.MaxInt64), true
		case inf == pgtext.NegInfinity:
			return binary.BigEndian.AppendUint64(buf, 1<<63), true
		}
		return binary.BigEndian.AppendUint64(buf, uint64(us)), true
	}
}

// encUUID reads the canonical 8-4-4-4-12 lower-case hex form.
func encUUID(buf, text []byte) ([]byte, bool) {
	u, err := pgtext.ParseUUID(text, pgtext.Exact)
	if err != nil {
		return buf, false
	}
	return append(buf, u[:]...), true
}
