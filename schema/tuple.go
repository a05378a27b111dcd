package schema

// Datum states, as pgoutput marks tuple columns.
const (
	Null      = 'n'
	Unchanged = 'u' // an unchanged TOASTed value the source did not send
	Text      = 't' // Data holds the value in PostgreSQL's text output form
)

// Datum is one column value in PostgreSQL's text form. Data may point into a
// buffer owned by the message it came from: copy it to keep it.
type Datum struct {
	State byte
	Data  []byte
}

// IsNull reports a SQL NULL.
func (d Datum) IsNull() bool { return d.State == Null }

// Tuple is a row, positionally matching Table.Columns.
type Tuple []Datum

// Size estimates the memory a tuple holds, for batch limits.
func (t Tuple) Size() int {
	n := 24 * len(t)
	for _, d := range t {
		n += len(d.Data)
	}
	return n
}

// HasUnchanged reports whether any column was not sent (unchanged TOAST).
func (t Tuple) HasUnchanged() bool {
	for _, d := range t {
		if d.State == Unchanged {
			return true
		}
	}
	return false
}

// Op is a row operation.
type Op uint8

const (
	Insert Op = iota + 1
	Update
	Delete
)

func (o Op) String() string {
	switch o {
	case Insert:
		return "insert"
	case Update:
		return "update"
	case Delete:
		return "delete"
	}
	return "unknown"
}
