package schema

// Kind classifies a PostgreSQL type by how a target should store it. Each sink
// maps kinds to its own column types; anything it cannot map faithfully is
// kept as the PostgreSQL text form (KindOther), so no type stops the stream.
type Kind uint8

const (
	KindOther Kind = iota // any other type: stored as its text form
	KindBool
	KindInt // int2, int4, int8, oid
	KindFloat
	KindNumeric
	KindText // text, varchar, bpchar, name, "char"
	KindBytea
	KindJSON
	KindDate
	KindTime
	KindTimeTZ
	KindTimestamp
	KindTimestampTZ
	KindInterval
	KindUUID
	KindArray // one-dimensional or not: Elem tells the element type
)

// Built-in type OIDs walmirror knows by heart (src/include/catalog/pg_type.dat).
const (
	OIDBool        = 16
	OIDBytea       = 17
	OIDChar        = 18
	OIDName        = 19
	OIDInt8        = 20
	OIDInt2        = 21
	OIDInt4        = 23
	OIDText        = 25
	OIDOid         = 26
	OIDJSON        = 114
	OIDFloat4      = 700
	OIDFloat8      = 701
	OIDBpchar      = 1042
	OIDVarchar     = 1043
	OIDDate        = 1082
	OIDTime        = 1083
	OIDTimestamp   = 1114
	OIDTimestampTZ = 1184
	OIDInterval    = 1186
	OIDTimeTZ      = 1266
	OIDNumeric     = 1700
	OIDUUID        = 2950
	OIDJSONB       = 3802
)

var scalarKinds = map[uint32]Kind{
	OIDBool: KindBool, OIDBytea: KindBytea, OIDChar: KindText, OIDName: KindText,
	OIDInt8: KindInt, OIDInt2: KindInt, OIDInt4: KindInt, OIDOid: KindInt,
	OIDText: KindText, OIDJSON: KindJSON, OIDFloat4: KindFloat, OIDFloat8: KindFloat,
	OIDBpchar: KindText, OIDVarchar: KindText, OIDDate: KindDate, OIDTime: KindTime,
	OIDTimestamp: KindTimestamp, OIDTimestampTZ: KindTimestampTZ, OIDInterval: KindInterval,
	OIDTimeTZ: KindTimeTZ, OIDNumeric: KindNumeric, OIDUUID: KindUUID, OIDJSONB: KindJSON,
}

// arrayElems maps built-in array type OIDs to their element OIDs.
var arrayElems = map[uint32]uint32{
	1000: OIDBool, 1001: OIDBytea, 1002: OIDChar, 1003: OIDName, 1016: OIDInt8,
	1005: OIDInt2, 1007: OIDInt4, 1009: OIDText, 1028: OIDOid, 199: OIDJSON,
	1021: OIDFloat4, 1022: OIDFloat8, 1014: OIDBpchar, 1015: OIDVarchar, 1182: OIDDate,
	1183: OIDTime, 1115: OIDTimestamp, 1185: OIDTimestampTZ, 1187: OIDInterval,
	1270: OIDTimeTZ, 1231: OIDNumeric, 2951: OIDUUID, 3807: OIDJSONB,
}

// KindOf classifies a type OID. Unknown OIDs (user types, extensions) are KindOther.
func KindOf(oid uint32) Kind {
	if k, ok := scalarKinds[oid]; ok {
		return k
	}
	if _, ok := arrayElems[oid]; ok {
		return KindArray
	}
	return KindOther
}

// ArrayElem returns the element type of a built-in array type.
func ArrayElem(oid uint32) (uint32, bool) {
	e, ok := arrayElems[oid]
	return e, ok
}

// NumericPrecisionScale decodes a numeric typmod; ok is false for an
// unconstrained numeric.
func NumericPrecisionScale(typmod int32) (precision, scale int, ok bool) {
	if typmod < 4 { // VARHDRSZ
		return 0, 0, false
	}
	t := typmod - 4
	// The scale is an 11-bit signed field since PostgreSQL 15 (negative scales).
	return int(t>>16) & 0xffff, int(((t & 0x7ff) ^ 1024) - 1024), true
}
