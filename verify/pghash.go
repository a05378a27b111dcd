package verify

import (
	"encoding/binary"
	"math"
	"math/bits"
)

// A port of the PostgreSQL hash functions the checksums use on the source
// (hash_record_extended over per-column values, seed 0), so that a DuckDB
// or SQLite copy computes, inside its database through a Go function, the
// very same 64-bit values from what it stores (see targethash.go). Ported
// from src/common/hashfn.c (hash_bytes_extended and
// hash_bytes_uint32_extended: Bob Jenkins' lookup3 with a 64-bit result),
// src/backend/access/hash/hashfunc.c (hashint4extended, hashfloat8extended,
// ...) and src/backend/utils/adt/rowtypes.c (hash_record_extended), and
// tested against a real server (pghash_test.go).
//
// The byte functions read words as a little-endian machine does: a server
// on a big-endian machine hashes differently, which makes every range
// differ and the table be compared row by row (never a false equality).

// pgMix is hashfn.c's mix().
func pgMix(a, b, c uint32) (uint32, uint32, uint32) {
	a -= c
	a ^= bits.RotateLeft32(c, 4)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 6)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 8)
	b += a
	a -= c
	a ^= bits.RotateLeft32(c, 16)
	c += b
	b -= a
	b ^= bits.RotateLeft32(a, 19)
	a += c
	c -= b
	c ^= bits.RotateLeft32(b, 4)
	b += a
	return a, b, c
}

// pgFinal is hashfn.c's final().
func pgFinal(a, b, c uint32) (uint32, uint32, uint32) {
	c ^= b
	c -= bits.RotateLeft32(b, 14)
	a ^= c
	a -= bits.RotateLeft32(c, 11)
	b ^= a
	b -= bits.RotateLeft32(a, 25)
	c ^= b
	c -= bits.RotateLeft32(b, 16)
	a ^= c
	a -= bits.RotateLeft32(c, 4)
	b ^= a
	b -= bits.RotateLeft32(a, 14)
	c ^= b
	c -= bits.RotateLeft32(b, 24)
	return a, b, c
}

// pgHashBytes is hash_bytes_extended(k, len(k), 0) (hash_any_extended) as
// a little-endian server computes it. It takes a string too, so that text
// a driver returns as a string is hashed without a copy.
func pgHashBytes[T string | []byte](k T) uint64 {
	a := 0x9e3779b9 + uint32(len(k)) + 3923095
	b, c := a, a
	for len(k) >= 12 {
		a += le32(k)
		b += le32(k[4:])
		c += le32(k[8:])
		a, b, c = pgMix(a, b, c)
		k = k[12:]
	}
	// The last 11 bytes; the lowest byte of c is reserved for the length.
	switch len(k) {
	case 11:
		c += uint32(k[10]) << 24
		fallthrough
	case 10:
		c += uint32(k[9]) << 16
		fallthrough
	case 9:
		c += uint32(k[8]) << 8
		fallthrough
	case 8:
		b += uint32(k[7]) << 24
		fallthrough
	case 7:
		b += uint32(k[6]) << 16
		fallthrough
	case 6:
		b += uint32(k[5]) << 8
		fallthrough
	case 5:
		b += uint32(k[4])
		fallthrough
	case 4:
		a += uint32(k[3]) << 24
		fallthrough
	case 3:
		a += uint32(k[2]) << 16
		fallthrough
	case 2:
		a += uint32(k[1]) << 8
		fallthrough
	case 1:
		a += uint32(k[0])
	}
	_, b, c = pgFinal(a, b, c)
	return uint64(b)<<32 | uint64(c)
}

// le32 reads 4 bytes of k as a little-endian uint32.
func le32[T string | []byte](k T) uint32 {
	_ = k[3]
	return uint32(k[0]) | uint32(k[1])<<8 | uint32(k[2])<<16 | uint32(k[3])<<24
}

// pgHashUint32 is hash_bytes_uint32_extended(k, 0) (hash_uint32_extended):
// hashint4extended, hashint2extended and hashcharextended (bool) of the
// value widened to int32, hashoidextended, and a date's.
func pgHashUint32(k uint32) uint64 {
	a := uint32(0x9e3779b9 + 4 + 3923095)
	b, c := a, a
	a += k
	_, b, c = pgFinal(a, b, c)
	return uint64(b)<<32 | uint64(c)
}

// pgHashFloat8 is hashfloat8extended(v, 0); hashfloat4extended hashes its
// value widened to float8 alike. Zero and minus zero hash as the seed (0);
// every NaN as get_float8_nan()'s.
func pgHashFloat8(v float64) uint64 {
	if v == 0 {
		return 0
	}
	bitsv := math.Float64bits(v)
	if v != v {
		bitsv = 0x7ff8000000000000 // NAN, as get_float8_nan returns it
	}
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], bitsv) // the server's memory order
	return pgHashBytes(buf[:])
}

// pgHashUint32Seed is hash_bytes_uint32_extended(k, seed)
// (hash_uint32_extended with a seed).
func pgHashUint32Seed(k uint32, seed uint64) uint64 {
	a := uint32(0x9e3779b9 + 4 + 3923095)
	b, c := a, a
	if seed != 0 {
		a += uint32(seed >> 32)
		b += uint32(seed)
		a, b, c = pgMix(a, b, c)
	}
	a += k
	_, b, c = pgFinal(a, b, c)
	return uint64(b)<<32 | uint64(c)
}

// pgMixRowHash is hashint8extended(0, h): what both sides sum a row's (or
// a key's) hash_record_extended by. hash_record_extended is linear in its
// columns' hashes (h = 31*h + column's hash), so a sum of plain record
// hashes is a weighted sum of each column's hashes over the rows: values
// of a column swapped between two rows of one range or bucket left every
// sum equal. Hashing the record's hash again, its 64 bits as the seed, is
// not linear.
func pgMixRowHash(h uint64) uint64 { return pgHashUint32Seed(0, h) }

// pgHashFloatSend is the hash of float8send (float4send when f4) of v
// with -0 as 0 and every NaN as 'NaN' (floatHashExpr): hashfloat8extended
// hashes 0 and -0 as its seed, 0, which is also hash_record_extended's
// hash of a NULL, so a float 0 and a NULL hashed alike.
func pgHashFloatSend(v float64, f4 bool) uint64 {
	if v == 0 {
		v = 0 // -0 as 0
	}
	if f4 {
		bits := math.Float32bits(float32(v))
		if v != v {
			bits = 0x7fc00000 // NAN, as get_float4_nan returns it
		}
		var buf [4]byte
		binary.BigEndian.PutUint32(buf[:], bits)
		return pgHashBytes(buf[:])
	}
	bits := math.Float64bits(v)
	if v != v {
		bits = 0x7ff8000000000000
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], bits)
	return pgHashBytes(buf[:])
}

// pgHashInt64Send is the hash of int8send(v), timestamp_send and time_send
// of a value of that internal form: 8 big-endian bytes as a bytea.
func pgHashInt64Send(v int64) uint64 {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], uint64(v))
	return pgHashBytes(buf[:])
}

// pgRecordHash combines column hashes as hash_record_extended does (a
// NULL's hash is 0): result = result*31 + h, from 0, modulo 2^64.
func pgRecordHash(result, h uint64) uint64 { return result<<5 - result + h }
