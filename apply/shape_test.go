package apply

import (
	"slices"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
)

func TestFills(t *testing.T) {
	tbl := schema.NewTable(1, "public", "t", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "plain", TypeID: schema.OIDInt4, Typmod: -1},
		{Name: "missing", TypeID: schema.OIDText, Typmod: -1},
		{Name: "volatile", TypeID: schema.OIDFloat8, Typmod: -1},
		{Name: "retyped", TypeID: schema.OIDInt4, Typmod: -1},
		{Name: "gone", TypeID: schema.OIDInt4, Typmod: -1},
	})
	attrs := []source.Attribute{
		{Num: 1, Name: "id", TypeID: schema.OIDInt4, Typmod: -1},
		{Num: 2, Name: "plain", TypeID: schema.OIDInt4, Typmod: -1},
		{Num: 3, Name: "missing", TypeID: schema.OIDText, Typmod: -1, HasMissing: true, Missing: "it's", HasDefault: true},
		{Num: 4, Name: "volatile", TypeID: schema.OIDFloat8, Typmod: -1, HasDefault: true},
		{Num: 5, Name: "retyped", TypeID: schema.OIDInt8, Typmod: -1},
		{Num: 6, Name: "gone", TypeID: schema.OIDInt4, Typmod: -1, Dropped: true},
	}
	got := fills(tbl, match(tbl, attrs))
	for name, want := range map[string]string{
		"id": "NULL", "plain": "NULL", "missing": `the source's default "it's"`,
		"volatile": "volatile default", "retyped": "no longer describes", "gone": "no longer describes",
	} {
		f := got[name]
		s := f.String()
		if f.Unknown != "" {
			s = f.Check(tbl, name).Error()
		}
		if !strings.Contains(s, want) {
			t.Errorf("fill of %s = %q, want it to mention %q", name, s, want)
		}
	}
}

// TestMatchKeepsOrder: a column dropped and added again under its name after
// this point of the stream is not the message's column.
func TestMatchKeepsOrder(t *testing.T) {
	tbl := schema.NewTable(1, "public", "t", schema.IdentityDefault, []schema.Column{
		{Name: "id", TypeID: schema.OIDInt4, Typmod: -1, Key: true},
		{Name: "d", TypeID: schema.OIDText, Typmod: -1},
		{Name: "n", TypeID: schema.OIDInt4, Typmod: -1},
	})
	attrs := []source.Attribute{
		{Num: 1, Name: "id", TypeID: schema.OIDInt4, Typmod: -1},
		{Num: 2, Name: "........pg.dropped.2........", TypeID: 0, Dropped: true},
		{Num: 3, Name: "n", TypeID: schema.OIDInt4, Typmod: -1},
		{Num: 4, Name: "d", TypeID: schema.OIDText, Typmod: -1, HasMissing: true, Missing: "new"},
	}
	got := nums(match(tbl, attrs))
	if want := []int16{1, 0, 3}; !slices.Equal(got, want) {
		t.Fatalf("nums = %v, want %v", got, want)
	}
}
