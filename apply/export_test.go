package apply

// SetAutoChunkedRows lowers the estimated rows from which an automatic
// initial copy is made in chunks (AutoChunkedRows) until restore is called.
// Not for parallel tests.
func SetAutoChunkedRows(n int64) (restore func()) {
	old := autoChunkedRows
	autoChunkedRows = n
	return func() { autoChunkedRows = old }
}
