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

// TestUntrustedKey: a catalog key column the message leaves out, or a
// catalog with no key (dropped or replaced since), makes the message's
// flagged key untrusted; a key column the message names otherwise (renamed
// or retyped since, the catalog ahead of the stream) does not (the
// simulation's renamed key column made every update a re-copy).
func TestUntrustedKey(t *testing.T) {
	cols := func(names ...string) []schema.Column {
		var cs []schema.Column
		for _, n := range names {
			cs = append(cs, schema.Column{Name: n, TypeID: schema.OIDInt4, Typmod: -1, Key: n == "a" || n == "id"})
		}
		return cs
	}
	for _, c := range []struct {
		name  string
		msg   []string
		attrs []source.Attribute
		want  bool
	}{
		{"whole key", []string{"a", "v"}, []source.Attribute{{Num: 1, Name: "a", Key: true}, {Num: 2, Name: "v"}}, false},
		{"column list leaves out b", []string{"a", "v"}, []source.Attribute{{Num: 1, Name: "a", Key: true}, {Num: 2, Name: "b", Key: true}, {Num: 3, Name: "v"}}, true},
		{"unpublished generated gk", []string{"a", "v"}, []source.Attribute{{Num: 1, Name: "a", Key: true}, {Num: 2, Name: "v"}, {Num: 3, Name: "gk", Key: true, Generated: true}}, true},
		{"key column renamed since", []string{"id", "v"}, []source.Attribute{{Num: 1, Name: "id_r41", Key: true}, {Num: 2, Name: "v"}}, false},
		{"renamed, and b left out", []string{"a", "v"}, []source.Attribute{{Num: 1, Name: "a_r", Key: true}, {Num: 2, Name: "b", Key: true}, {Num: 3, Name: "v"}}, true},
		{"invalid index", []string{"a", "v"}, []source.Attribute{{Num: 1, Name: "a", InvalidKey: true}, {Num: 2, Name: "v"}}, true},
		{"key dropped since", []string{"a", "v"}, []source.Attribute{{Num: 1, Name: "a"}, {Num: 2, Name: "v"}}, true},
		{"table dropped since", []string{"a", "v"}, nil, false},
		{"key retyped since", []string{"id", "v"}, []source.Attribute{{Num: 1, Name: "id", Key: true, TypeID: schema.OIDInt8}, {Num: 2, Name: "v"}}, false},
		{"key replaced by one with a generated column, a renamed", []string{"a", "b"}, []source.Attribute{{Num: 1, Name: "a2"}, {Num: 2, Name: "b", Key: true}, {Num: 3, Name: "g", Key: true, Generated: true}}, true},
		{"renamed, columns added after", []string{"id", "v"}, []source.Attribute{{Num: 1, Name: "id2", Key: true}, {Num: 2, Name: "v"}, {Num: 3, Name: "w"}}, false},
	} {
		for i := range c.attrs {
			if c.attrs[i].TypeID == 0 {
				c.attrs[i].TypeID = schema.OIDInt4
			}
			c.attrs[i].Typmod = -1
		}
		tbl := schema.NewTable(1, "public", "t", schema.IdentityDefault, cols(c.msg...))
		if got := untrustedKey(tbl, c.attrs, match(tbl, c.attrs)); got != c.want {
			t.Errorf("%s: untrustedKey = %v, want %v", c.name, got, c.want)
		}
	}
}
