package schema

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDiff(t *testing.T) {
	old := Stored{Schema: "public", Name: "t", Columns: []StoredColumn{
		{Num: 1, Name: "id", TypeID: OIDInt4, Typmod: -1},
		{Num: 2, Name: "v", TypeID: OIDText, Typmod: -1},
		{Num: 3, Name: "d", TypeID: OIDText, Typmod: -1},
		{Num: 4, Name: "n", TypeID: OIDInt4, Typmod: -1},
		{Num: 5, Name: "gone", TypeID: OIDInt4, Typmod: -1},
	}}
	decoded, err := DecodeStored(old.Encode())
	if err != nil || !slices.Equal(decoded.Columns, old.Columns) {
		t.Fatalf("round trip: %+v, %v", decoded, err)
	}
	tbl := NewTable(1, "other", "u", IdentityDefault, []Column{
		{Name: "id", TypeID: OIDInt4, Typmod: -1, Key: true},
		{Name: "label", TypeID: OIDText, Typmod: -1}, // renamed
		{Name: "n", TypeID: OIDInt8, Typmod: -1},     // retyped, catalog moved on: by name
		{Name: "d", TypeID: OIDText, Typmod: -1},     // dropped and added again
		{Name: "added", TypeID: OIDInt4, Typmod: -1},
	})
	tbl.Nums = []int16{1, 2, 0, 6, 7}
	c, nums, err := Diff(decoded, tbl)
	if err != nil {
		t.Fatal(err)
	}
	if c.FromSchema != "public" || c.FromName != "t" || c.Renamed["label"] != "v" || len(c.Renamed) != 1 ||
		c.Retyped["n"].TypeID != OIDInt4 || len(c.Retyped) != 1 || !slices.Equal(c.Readded, []string{"d"}) {
		t.Fatalf("change = %+v", c)
	}
	if nums[2] != 4 || tbl.Nums[2] != 0 {
		t.Errorf("n kept no attnum: %v (table's %v)", nums, tbl.Nums)
	}
	// A name taken over by another column in the same step is refused.
	swap := NewTable(1, "public", "t", IdentityDefault, []Column{
		{Name: "id", TypeID: OIDInt4, Typmod: -1}, {Name: "d", TypeID: OIDText, Typmod: -1}, {Name: "v", TypeID: OIDText, Typmod: -1},
	})
	swap.Nums = []int16{1, 2, 3}
	if _, _, err := Diff(decoded, swap); err == nil {
		t.Error("swapped names were not refused")
	}
	// Renamed, and a new column under the old name: followed (sinks rename
	// before they add), whether the new column's attnum shows it as added
	// or as the old name re-added.
	reuse := NewTable(1, "public", "t", IdentityDefault, []Column{
		{Name: "id", TypeID: OIDInt4, Typmod: -1}, {Name: "v2", TypeID: OIDText, Typmod: -1},
		{Name: "d", TypeID: OIDText, Typmod: -1}, {Name: "n", TypeID: OIDInt4, Typmod: -1},
		{Name: "gone", TypeID: OIDInt4, Typmod: -1}, {Name: "v", TypeID: OIDInt8, Typmod: -1},
	})
	reuse.Nums = []int16{1, 2, 3, 4, 5, 6}
	c, _, err = Diff(decoded, reuse)
	if err != nil || c.Renamed["v2"] != "v" || len(c.Renamed) != 1 || !slices.Equal(c.Replaced(), []string{"v"}) {
		t.Errorf("renamed and its name added again: %+v, %v", c, err)
	}
	// A chain (v to v2, d to v) is refused: the renames' order matters.
	chain := NewTable(1, "public", "t", IdentityDefault, []Column{
		{Name: "id", TypeID: OIDInt4, Typmod: -1}, {Name: "v2", TypeID: OIDText, Typmod: -1}, {Name: "v", TypeID: OIDText, Typmod: -1},
	})
	chain.Nums = []int16{1, 2, 3}
	if _, _, err := Diff(decoded, chain); err == nil {
		t.Error("a chain of renames was not refused")
	}
	if c, _, _ := Diff(decoded, NewTable(1, "public", "t", IdentityDefault, []Column{{Name: "id", TypeID: OIDInt4, Typmod: -1}})); !c.Empty() {
		t.Errorf("dropped columns alone gave %+v", c)
	}
}

// TestDiffUnknownStoredNums: a shape stored without attnums (the catalog
// had moved on when it was stored) matches a message's columns of the same
// names by name, taking their attnums from then on; only a column newer
// than any attnum the stored shape knew (MaxNum) is an added one
// (helper-84: the key column was taken for an added one, and every start
// stopped trying to drop it).
func TestDiffUnknownStoredNums(t *testing.T) {
	old := Stored{Schema: "public", Name: "tt", Columns: []StoredColumn{
		{Name: "id", TypeID: OIDText, Typmod: -1},
		{Name: "x", TypeID: OIDInt4, Typmod: -1},
	}}
	tbl := NewTable(1, "public", "tt", IdentityDefault, []Column{
		{Name: "id", TypeID: OIDText, Typmod: -1, Key: true},
		{Name: "x", TypeID: OIDInt4, Typmod: -1},
	})
	tbl.Nums = []int16{1, 2}
	c, nums, err := Diff(old, tbl)
	if err != nil || !c.Empty() || len(c.Dropped) > 0 || !slices.Equal(nums, []int16{1, 2}) {
		t.Fatalf("Diff = %+v, %v, %v; want no change, attnums 1, 2", c, nums, err)
	}
	old.MaxNum = 1 // x's attnum 2 is newer than the stored shape: added since
	c, _, err = Diff(old, tbl)
	if err != nil || !slices.Equal(c.Added, []string{"x"}) {
		t.Fatalf("Diff = %+v, %v; want x added", c, err)
	}
}

// TestAsideNameBounded: under a byte bound (PostgreSQL's 63), a long
// name is cut at a character boundary so that each candidate fits and
// differs; before, every candidate of a 56-byte name was cut by PostgreSQL
// to the same taken name and the search never ended (helper-141).
func TestAsideNameBounded(t *testing.T) {
	name := strings.Repeat("é", 28) // 56 bytes
	seen := map[string]bool{}
	taken := func(n string) bool {
		if len(n) > 63 || !utf8.ValidString(n) || seen[n] {
			t.Fatalf("candidate %q (%d bytes) is too long, not UTF-8 or repeated", n, len(n))
		}
		seen[n] = true
		return len(seen) < 12
	}
	got := AsideName(name, 63, taken)
	if len(got) > 63 || !strings.HasSuffix(got, "_dropped12") {
		t.Errorf("AsideName = %q (%d bytes)", got, len(got))
	}
	if got := AsideName("short", 63, func(string) bool { return false }); got != "short_dropped" {
		t.Errorf("AsideName(short) = %q", got)
	}
	if got := AsideName(strings.Repeat("a", 63), 0, func(string) bool { return false }); got != strings.Repeat("a", 63)+"_dropped" {
		t.Errorf("unbounded AsideName = %q", got)
	}
}
