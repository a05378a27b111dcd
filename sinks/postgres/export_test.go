package postgres

// BinaryAccepts reports whether the binary encoder for a type takes text.
func BinaryAccepts(oid uint32, text []byte) bool {
	_, ok := binEncoders[oid](nil, text)
	return ok
}

// SetBinaryCopy turns binary COPY on or off for tables the sink reads next.
func SetBinaryCopy(on bool) { binaryCopy = on }
