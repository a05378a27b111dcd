package verify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/walmirror/walmirror/lsn"
)

// Report is the outcome of one verification.
type Report struct {
	// LSN is the source position both sides were compared at: the source
	// as its snapshot showed it, the copy holding exactly the transactions
	// committed before it.
	LSN lsn.LSN
	// From is the position the copy held before verify brought it to LSN
	// (Live: the copy's stored position where the engine paused it).
	From lsn.LSN
	// Live: verified by the walmirror process replicating into the copy
	// (RunLive), which went on replicating while the tables were read.
	Live   bool
	Tables []TableReport
	Took   time.Duration
	// Repair is what RepairTables did after this verification, for
	// WriteJSON; nil without a repair. WriteText leaves it out
	// (Repair.WriteText writes it).
	Repair *Repair
	// CopiedAgain are tables that differed from the source when verify
	// brought the copy to LSN: a change met a row someone else had written
	// (apply.ErrDiverged), and the catch-up copied the table again before
	// the comparison, as walmirror run does. The copy was not equal before
	// verify ran: Equal is false and Different true.
	CopiedAgain []CopiedAgain
	// Kept are the copy's tables (as the target names them) that no
	// published table maps to any more: copies of tables that left the
	// publication or were dropped, kept as they were. Not compared; listed
	// only when every published table was compared.
	Kept []string
}

// CopiedAgain is a table the catch-up copied again (Report.CopiedAgain).
type CopiedAgain struct {
	Table  string `json:"table"`
	Reason string `json:"reason"` // the change that found it differing
}

// Methods of comparison, in TableReport.Method.
const (
	// MethodMerge: both sides read once in key order and merged.
	MethodMerge = "merge"
	// MethodHash: both sides read once in any order, matched by key in
	// memory (a key type that does not sort alike in every database).
	MethodHash = "hash"
	// MethodMultiset: a table without key columns, compared as a multiset
	// of whole rows.
	MethodMultiset = "multiset"
	// MethodChecksum: both sides computed a row count and a sum of row
	// hashes per key range (PostgreSQL's hash_record_extended, which a
	// DuckDB or SQLite copy computes through a Go port); ranges that
	// differed were split, then compared row by row (checksum.go). For a
	// key other than one integer column the ranges are buckets of the
	// key's hash, for a table without a key of the row's (buckets.go).
	MethodChecksum = "checksum"
)

// TableReport is what verify found for one table.
type TableReport struct {
	Table      string   // schema.table, quoted where PostgreSQL would quote it
	RelID      uint32   // the source table's oid (0 in a report read from JSON)
	Key        []string // key columns; empty for a multiset comparison
	Method     string
	SourceRows int64
	TargetRows int64
	// Missing rows are in the source only; Extra rows in the copy only;
	// Changed rows have the same key and other values.
	Missing, Extra, Changed int64
	// Absent: the copy has no table for it (its rows all count as missing;
	// different even with none).
	Absent bool
	// Examples are the first few differing rows (bounded).
	Examples []Example
	// Err says why the table could not be compared.
	Err string
	// Note explains a choice made on the way (a fallback to MethodHash).
	Note string
	Took time.Duration
	// Keys are, with Options.Keys, the keys of every differing row
	// (missing, extra and changed), each the key columns' values as
	// PostgreSQL prints them, in key column order: what verify --repair
	// copies again. nil when they could not all be named; KeysNot then
	// says why (no key, a key type other than integers, uuids, text and varchar, more
	// than Options.Keys rows, a key the copy holds that is no valid
	// value, Options.Keys 0). Set only for a different table.
	Keys    [][]string
	KeysNot string
}

// Equal reports whether the table was compared and found equal. A copy
// without the table differs also when the source's is empty: a reader of
// the copy gets "no such table" (helper-128).
func (t *TableReport) Equal() bool {
	return t.Err == "" && t.Missing == 0 && t.Extra == 0 && t.Changed == 0 && !t.Absent
}

// Different reports whether a difference was found.
func (t *TableReport) Different() bool { return t.Err == "" && !t.Equal() }

// Example kinds.
const (
	Missing = "missing"
	Extra   = "extra"
	Changed = "changed"
)

// Example is one differing row: its key (every column for a multiset
// comparison) and, for a changed row, the columns that differ.
type Example struct {
	Kind    string
	Values  Values
	Columns []string
}

// Value is one column's value in a report: its canonical form, shortened;
// nil for NULL.
type Value struct {
	Column string
	Value  *string
}

// Values is a list of column values; as JSON, an object in column order.
type Values []Value

// MarshalJSON writes the values as one object, in column order.
func (vs Values) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(v.Column)
		val, _ := json.Marshal(v.Value)
		b.Write(k)
		b.WriteByte(':')
		b.Write(val)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (vs Values) String() string {
	names, vals := make([]string, len(vs)), make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.Column
		if v.Value == nil {
			vals[i] = "NULL"
		} else {
			vals[i] = *v.Value
		}
	}
	return "(" + strings.Join(names, ", ") + ")=(" + strings.Join(vals, ", ") + ")"
}

// Equal reports whether every table was compared and found equal.
func (r *Report) Equal() bool {
	if len(r.CopiedAgain) > 0 {
		return false
	}
	for i := range r.Tables {
		if !r.Tables[i].Equal() {
			return false
		}
	}
	return true
}

// Different reports whether any table differs (or differed, CopiedAgain).
func (r *Report) Different() bool {
	return len(r.CopiedAgain) > 0 || r.TablesDiffer()
}

// TablesDiffer reports whether any table differs in the comparison.
func (r *Report) TablesDiffer() bool {
	for i := range r.Tables {
		if r.Tables[i].Different() {
			return true
		}
	}
	return false
}

// Status is "equal", "different" or "error" (nothing different, but some
// table could not be compared).
func (t *TableReport) Status() string {
	switch {
	case t.Err != "":
		return "error"
	case t.Equal():
		return "equal"
	}
	return "different"
}

// printable is name with its control characters escaped (\n, \t,
// \x01): a table named with a newline broke the report's layout
// (helper-104).
func printable(name string) string {
	if !strings.ContainsFunc(name, unicode.IsControl) {
		return name
	}
	var b strings.Builder
	for _, r := range name {
		if unicode.IsControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// WriteText writes the report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b bytes.Buffer
	if r.Live {
		fmt.Fprintf(&b, "compared at source position %s by the running walmirror (it paused the copy there, stored position %s, and went on)\n", r.LSN, r.From)
	} else {
		fmt.Fprintf(&b, "compared at source position %s (the copy was at %s)\n", r.LSN, r.From)
	}
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	equal, different, failed := 0, 0, 0
	for i := range r.Tables {
		t := &r.Tables[i]
		var what string
		switch t.Status() {
		case "error":
			failed++
			what = "could not compare: " + t.Err
		case "equal":
			equal++
			what = fmt.Sprintf("%d rows", t.SourceRows)
		default:
			different++
			var parts []string
			for _, p := range []struct {
				n    int64
				name string
			}{{t.Missing, "missing"}, {t.Extra, "extra"}, {t.Changed, "changed"}} {
				if p.n > 0 {
					parts = append(parts, fmt.Sprintf("%d %s", p.n, p.name))
				}
			}
			what = fmt.Sprintf("%s (source %d rows, copy %d)", strings.Join(parts, ", "), t.SourceRows, t.TargetRows)
		}
		if t.Absent {
			what += "; the copy has no such table"
		}
		if len(t.Key) == 0 && t.Err == "" {
			what += "; no key: compared as a multiset of rows"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", printable(t.Table), t.Status(), what)
		for _, e := range t.Examples {
			line := e.Values.String()
			if len(e.Columns) > 0 {
				line += " differs in " + strings.Join(e.Columns, ", ")
			}
			fmt.Fprintf(tw, "  \t  %s\t%s\n", e.Kind, line)
		}
		if t.Note != "" {
			fmt.Fprintf(tw, "  \t  note\t%s\n", t.Note)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range r.CopiedAgain {
		fmt.Fprintf(&b, "  %s differed from the source when the copy was brought to the comparison's position (%s): copied again before the comparison\n", printable(c.Table), c.Reason)
	}
	if len(r.Kept) > 0 {
		fmt.Fprintf(&b, "  not compared, kept as they were when their tables left the publication or were dropped: %s\n", strings.Join(r.Kept, ", "))
	}
	fmt.Fprintf(&b, "%d tables equal, %d different", equal, different)
	if failed > 0 {
		fmt.Fprintf(&b, ", %d not compared", failed)
	}
	fmt.Fprintf(&b, " (%s)\n", r.Took.Round(time.Millisecond))
	_, err := w.Write(b.Bytes())
	return err
}

type jsonReport struct {
	LSN    string      `json:"lsn"`
	From   string      `json:"from_lsn"`
	Live   bool        `json:"live,omitempty"`
	Equal  bool        `json:"equal"`
	Tables []jsonTable `json:"tables"`
	TookMs int64       `json:"took_ms"`
	Repair *jsonRepair `json:"repair,omitempty"`
	Error  string      `json:"error,omitempty"`
	// CopiedAgain: Report.CopiedAgain.
	CopiedAgain []CopiedAgain `json:"copied_again,omitempty"`
	// Kept: Report.Kept.
	Kept []string `json:"kept,omitempty"`
}

type jsonTable struct {
	Table      string        `json:"table"`
	Status     string        `json:"status"`
	Method     string        `json:"method,omitempty"`
	Key        []string      `json:"key,omitempty"`
	SourceRows int64         `json:"source_rows"`
	TargetRows int64         `json:"target_rows"`
	Missing    int64         `json:"missing"`
	Extra      int64         `json:"extra"`
	Changed    int64         `json:"changed"`
	Absent     bool          `json:"absent,omitempty"`
	Examples   []jsonExample `json:"examples,omitempty"`
	Error      string        `json:"error,omitempty"`
	Note       string        `json:"note,omitempty"`
	TookMs     int64         `json:"took_ms"`
}

type jsonExample struct {
	Kind    string   `json:"kind"`
	Key     Values   `json:"key,omitempty"`
	Row     Values   `json:"row,omitempty"`
	Columns []string `json:"columns,omitempty"`
}

// WriteJSON writes the report as one JSON object: lsn, from_lsn, equal,
// took_ms and tables (table, status, method, key, source_rows,
// target_rows, missing, extra, changed, examples, error, note); with a
// Repair also repair (tables, copies: per table "by" "keys" with keys, the
// number of rows copied again by key, or "table" with why, requested_at,
// copy_took_ms, equal, verify:
// the second verification as an object of this form, error) and, when the
// repair failed, error.
func (r *Report) WriteJSON(w io.Writer) error {
	jr := r.json()
	if r.Repair != nil {
		jr.Repair = r.Repair.json()
		jr.Error = r.Repair.Err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(jr)
}

func (r *Report) json() jsonReport {
	jr := jsonReport{LSN: r.LSN.String(), From: r.From.String(), Live: r.Live, Equal: r.Equal(), TookMs: r.Took.Milliseconds(), Tables: []jsonTable{}, CopiedAgain: r.CopiedAgain, Kept: r.Kept}
	for i := range r.Tables {
		t := &r.Tables[i]
		jt := jsonTable{Table: t.Table, Status: t.Status(), Method: t.Method, Key: t.Key, SourceRows: t.SourceRows,
			TargetRows: t.TargetRows, Missing: t.Missing, Extra: t.Extra, Changed: t.Changed, Absent: t.Absent, Error: t.Err, Note: t.Note, TookMs: t.Took.Milliseconds()}
		for _, e := range t.Examples {
			je := jsonExample{Kind: e.Kind, Columns: e.Columns}
			if len(t.Key) == 0 { // a table without a key: whole rows
				je.Row = e.Values
			} else {
				je.Key = e.Values
			}
			jt.Examples = append(jt.Examples, je)
		}
		jr.Tables = append(jr.Tables, jt)
	}
	return jr
}

// UnmarshalJSON reads an object written by MarshalJSON, in its order.
func (vs *Values) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("values: want an object")
	}
	*vs = (*vs)[:0]
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return err
		}
		var v *string
		if err := dec.Decode(&v); err != nil {
			return err
		}
		*vs = append(*vs, Value{Column: k.(string), Value: v})
	}
	_, err := dec.Token()
	return err
}

// ReadJSON reads a report that WriteJSON wrote, its repair included. An
// object that holds only an error (the verification could not be done)
// returns that error.
func ReadJSON(data []byte) (*Report, error) {
	var jr jsonReport
	if err := json.Unmarshal(data, &jr); err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	if jr.Error != "" && jr.LSN == "" {
		return nil, errors.New(jr.Error)
	}
	return jr.report()
}

func (jr *jsonReport) report() (*Report, error) {
	at, err := lsn.Parse(jr.LSN)
	if err != nil {
		return nil, fmt.Errorf("read report: lsn: %w", err)
	}
	from, err := lsn.Parse(jr.From)
	if err != nil {
		return nil, fmt.Errorf("read report: from_lsn: %w", err)
	}
	r := &Report{LSN: at, From: from, Live: jr.Live, Took: time.Duration(jr.TookMs) * time.Millisecond, CopiedAgain: jr.CopiedAgain, Kept: jr.Kept}
	for _, jt := range jr.Tables {
		t := TableReport{Table: jt.Table, Key: jt.Key, Method: jt.Method, SourceRows: jt.SourceRows, TargetRows: jt.TargetRows,
			Missing: jt.Missing, Extra: jt.Extra, Changed: jt.Changed, Absent: jt.Absent, Err: jt.Error, Note: jt.Note,
			Took: time.Duration(jt.TookMs) * time.Millisecond}
		for _, je := range jt.Examples {
			e := Example{Kind: je.Kind, Values: je.Key, Columns: je.Columns}
			if len(jt.Key) == 0 {
				e.Values = je.Row
			}
			t.Examples = append(t.Examples, e)
		}
		r.Tables = append(r.Tables, t)
	}
	if jr.Repair != nil {
		rp, err := jr.Repair.repair()
		if err != nil {
			return nil, err
		}
		r.Repair = rp
	}
	return r, nil
}
