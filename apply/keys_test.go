package apply

import (
	"slices"
	"testing"

	"github.com/walmirror/walmirror/schema"
)

func TestCanonicalKeys(t *testing.T) {
	tbl := schema.NewTable(1, "public", "t", schema.IdentityDefault, []schema.Column{
		{Name: "a", TypeID: 21, Key: true}, {Name: "b", TypeID: 2950, Key: true}, {Name: "o", TypeID: 26, Key: true}, {Name: "v", TypeID: 25}})
	k := orderOf(tbl)
	for _, c := range []struct {
		in, want []string
	}{
		{[]string{"007", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "4294967295"}, []string{"7", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "4294967295"}},
		{[]string{"-32768", "{a0eebc999c0b4ef8bb6d6bb9bd380a11}", "0"}, []string{"-32768", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "0"}},
		{[]string{"32768", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "1"}, nil}, // beyond int2
		{[]string{"1", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", "1"}, nil},      // short uuid
		{[]string{"1", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "-1"}, nil},    // negative oid
		{[]string{"abc", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "1"}, nil},   // not a number
		{[]string{"1", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}, nil},          // a column short
	} {
		got, ok := k.canonical(tbl, c.in)
		if ok != (c.want != nil) || !slices.Equal(got, c.want) {
			t.Errorf("canonical(%q) = %q, %v; want %q", c.in, got, ok, c.want)
		}
	}
}
