package schema

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Stored is what a target remembers of the source table one of its tables
// mirrors, written in the same target transaction as every shape change:
// the source's names and, per column, its attnum (which survives a rename,
// while a dropped and re-added column gets a new one) and type.
type Stored struct {
	Schema  string         `json:"schema"`
	Name    string         `json:"name"`
	Columns []StoredColumn `json:"columns"`
	Storage string         `json:"storage,omitempty"` // Table.Storage when written
	// TruncXid is Table.TruncXid when written.
	TruncXid uint32 `json:"trunc_xid,omitempty"`
	MaxNum   int16  `json:"max_num,omitempty"` // Table.MaxNum when written
}

// StoredColumn is one column of a Stored shape.
type StoredColumn struct {
	Num    int16  `json:"num"` // 0 when the catalog could not tell
	Name   string `json:"name"`
	TypeID uint32 `json:"type"`
	Typmod int32  `json:"typmod"`
}

// StoredOf is t's shape as a target stores it, with nums as its columns'
// attnums (t.Nums, or Diff's completion of them).
func StoredOf(t *Table, nums []int16) Stored {
	s := Stored{Schema: t.Schema, Name: t.Name, Columns: make([]StoredColumn, len(t.Columns)), Storage: t.Storage, TruncXid: t.TruncXid, MaxNum: t.MaxNum}
	for i, c := range t.Columns {
		s.Columns[i] = StoredColumn{Name: c.Name, TypeID: c.TypeID, Typmod: c.Typmod}
		if i < len(nums) {
			s.Columns[i].Num = nums[i]
		}
	}
	return s
}

// Encode is the stored text form.
func (s Stored) Encode() string {
	b, _ := json.Marshal(s) // plain structs: cannot fail
	return string(b)
}

// DecodeStored parses Encode's output.
func DecodeStored(text string) (Stored, error) {
	var s Stored
	if err := json.Unmarshal([]byte(text), &s); err != nil {
		return s, fmt.Errorf("stored shape %q: %w", text, err)
	}
	return s, nil
}

// Change is what happened to a table between a stored shape and a new one,
// for the sink to do to the target table before it writes the new shape.
type Change struct {
	// From names the target table's source table before a rename or SET
	// SCHEMA; empty when the names are the same.
	FromSchema, FromName string
	// Renamed maps a column's new name to its old one (same attnum).
	Renamed map[string]string
	// Retyped maps a column's name to its previous type (same attnum).
	Retyped map[string]Column
	// Readded names columns dropped and added again under the same name:
	// the target column holds the old column's values, which existing rows
	// no longer have; they get the new column's fill.
	Readded []string
	// Added names columns the stored shape does not have: a target column
	// of that name is one the source dropped earlier (kept by the default
	// policy) and is replaced by the new column, like a re-added one.
	Added []string
	// Dropped names the stored shape's columns t no longer has: the
	// target keeps them (by default), which sinks say once, when they go.
	// Not a change by itself (Empty ignores it).
	Dropped []string
	// Unrecorded says the target stores no shape for this source table: a
	// target table of its name was made for another source table (one
	// dropped since, whose name this one took) or for this one before it
	// left the publication, or is being adopted. It is not a change by
	// itself (Empty ignores it); with Table.Replacing, a sink gives such a
	// table's columns the source's types (its rows are about to be
	// replaced), which it cannot tell from what it stored otherwise.
	Unrecorded bool
	// Vacate, with a rename, says no stored shape names the new name: a
	// target table there is a copy the target no longer follows (its
	// source table was dropped or left the publication, say in a swap by
	// rename whose old table was dropped before the copy saw the rename),
	// which the sink moves aside rather than fail the rename.
	Vacate bool
}

// RetypeCause is how a sink's log names why column col of t's copy gets
// another type: the source changed it, or the copy's column differs from
// what the source's type maps to for another reason (changed by hand in
// the target; helper-110: that was logged as a source change).
func (t *Table) RetypeCause(col string) string {
	if t.Change != nil {
		if _, ok := t.Change.Retyped[col]; ok {
			return "source column type changed"
		}
	}
	return "target column's type differs from what the source's maps to (changed in the target?)"
}

// Empty reports whether there is nothing to do.
func (c *Change) Empty() bool {
	return c == nil || c.FromName == "" && len(c.Renamed) == 0 && len(c.Retyped) == 0 && len(c.Readded) == 0 && len(c.Added) == 0
}

// Replaced lists the columns whose target column, if there is one, holds
// values the new column's rows do not have: re-added and added ones.
func (c *Change) Replaced() []string {
	if c == nil {
		return nil
	}
	return append(append([]string(nil), c.Readded...), c.Added...)
}

// ReplacedReason says why Replaced lists col, for the log line of a sink
// that replaces its target column.
func (c *Change) ReplacedReason(col string) string {
	if slices.Contains(c.Readded, col) {
		return "source column dropped and added (again): the values the target kept under its name are gone"
	}
	return "source column added where the target kept a column of its name from an earlier shape: the values it held are replaced by the new column's"
}

// Diff tells what changed from old to t, matching columns by attnum where
// both know it and by name otherwise. Columns only in old were dropped
// (the target keeps them), columns only in t were added (EnsureTable adds
// them). It also returns t's attnums completed from old where the catalog
// could not tell them (t itself is not changed), for the shape to store. It
// returns an error for what it cannot tell apart.
func Diff(old Stored, t *Table) (*Change, []int16, error) {
	nums := make([]int16, len(t.Columns))
	copy(nums, t.Nums)
	c := &Change{}
	if old.Schema != t.Schema || old.Name != t.Name {
		c.FromSchema, c.FromName = old.Schema, old.Name
	}
	byNum := map[int16]StoredColumn{}
	byName := map[string]StoredColumn{}
	for _, oc := range old.Columns {
		if oc.Num != 0 {
			byNum[oc.Num] = oc
		}
		byName[oc.Name] = oc
	}
	var reused [][2]string // old and new names of renamed columns whose old name t has
	newNames := map[string]bool{}
	for _, nc := range t.Columns {
		newNames[nc.Name] = true
	}
	for i, nc := range t.Columns {
		num := nums[i]
		var oc StoredColumn
		var found bool
		if num != 0 {
			if oc, found = byNum[num]; !found {
				prev, same := byName[nc.Name]
				switch {
				case same && prev.Num == 0 && (old.MaxNum == 0 || num <= old.MaxNum):
					// The stored shape did not know its attnum (the catalog
					// had moved on when it was stored): the column of that
					// name, unless its attnum is newer than any the stored
					// shape knew. Taken for an added one, the target column
					// was dropped and refilled (helper-84: a key column could
					// not be, and every start stopped there).
					oc, found = prev, true
				case !same || prev.Num == 0:
					c.Added = append(c.Added, nc.Name)
					continue
				default:
					// The catalog has a column of this name under a new
					// attnum: it was dropped and added again, before this
					// point of the stream or after it (the catalog is "now").
					// The message's column order tells when only one attnum
					// fits it.
					oldFits, newFits := fits(nums, i, prev.Num), fits(nums, i, num)
					switch {
					case oldFits && newFits:
						return nil, nil, fmt.Errorf("column %q of %s was dropped and added again under the same name while walmirror was behind, "+
							"and its place among the columns does not tell whether this point of the stream comes before or after that: "+
							"the copy could differ from the source, so walmirror stops; start a fresh copy into an empty target", nc.Name, t.QualifiedName())
					case !oldFits:
						c.Readded = append(c.Readded, nc.Name)
						continue
					}
					oc, found = prev, true // the column as it was: re-added later
					nums[i] = prev.Num
				}
			}
		} else if oc, found = byName[nc.Name]; !found {
			c.Added = append(c.Added, nc.Name) // its fill says what old rows hold
			continue
		} else if oc.Num != 0 {
			nums[i] = oc.Num
		}
		if oc.Name != nc.Name {
			if newNames[oc.Name] {
				reused = append(reused, [2]string{oc.Name, nc.Name})
			}
			if c.Renamed == nil {
				c.Renamed = map[string]string{}
			}
			c.Renamed[nc.Name] = oc.Name
		}
		if oc.TypeID != nc.TypeID || oc.Typmod != nc.Typmod {
			if c.Retyped == nil {
				c.Retyped = map[string]Column{}
			}
			c.Retyped[nc.Name] = Column{Name: oc.Name, TypeID: oc.TypeID, Typmod: oc.Typmod}
		}
	}
	// A renamed column's old name taken by a new column (RENAME COLUMN a
	// TO b; ADD COLUMN a) is followed: sinks rename before they add. Taken
	// by another renamed column (a swap, a chain) it is not: the renames'
	// order would matter, and a sink takes a name it finds in use for a
	// dropped column's kept one.
	for _, r := range reused {
		if !slices.Contains(c.Added, r[0]) && !slices.Contains(c.Readded, r[0]) {
			return nil, nil, fmt.Errorf("column %q of %s was renamed to %q and another column took its name: walmirror cannot follow names swapped or reused in one step", r[0], t.QualifiedName(), r[1])
		}
	}
	renamedFrom := map[string]bool{}
	for _, from := range c.Renamed {
		renamedFrom[from] = true
	}
	for _, oc := range old.Columns {
		if !newNames[oc.Name] && !renamedFrom[oc.Name] {
			c.Dropped = append(c.Dropped, oc.Name)
		}
	}
	return c, nums, nil
}

// fits reports whether attnum n can be the attnum of column i among nums
// (a Relation message lists columns in attnum order; 0 is unknown).
func fits(nums []int16, i int, n int16) bool {
	for j, m := range nums {
		if m == 0 || j == i {
			continue
		}
		if j < i && m >= n || j > i && m <= n {
			return false
		}
	}
	return true
}

// AsideName is the name a target column the source dropped (kept, by the
// default policy) moves to when a renamed column takes its name:
// name_dropped, or name_dropped2, ... where taken says a name is used.
// maxBytes (0: none) bounds the name, name being cut short at a character
// boundary: PostgreSQL cuts longer names to 63 bytes, where every
// candidate of a long name was the same name, taken, and the search never
// ended (helper-141).
func AsideName(name string, maxBytes int, taken func(string) bool) string {
	candidate := func(suffix string) string {
		base := name
		if maxBytes > 0 {
			for len(base)+len(suffix) > maxBytes && base != "" {
				_, size := utf8.DecodeLastRuneInString(base)
				base = base[:len(base)-size]
			}
		}
		return base + suffix
	}
	aside := candidate("_dropped")
	for n := 2; taken(aside); n++ {
		aside = candidate(fmt.Sprintf("_dropped%d", n))
	}
	return aside
}

// Dropping says whether the shape being applied drops col from the source,
// or the target table was not made for this shape (Change.Unrecorded): a
// sink that keeps the column says so then, not at every later shaping.
func (t *Table) Dropping(col string) bool {
	c := t.Change
	return c != nil && (c.Unrecorded || slices.ContainsFunc(c.Dropped, func(n string) bool { return strings.EqualFold(n, col) }))
}
