package main

import (
	"slices"
	"testing"
)

// TestSplitTables: --tables (run, check) and resync's --table split at
// commas outside double-quoted identifiers, so a table whose name holds a
// comma can be named ("S p"."x,y"); before, it was cut in two and refused
// as an unterminated quoted identifier.
func TestSplitTables(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"public.t", []string{"public.t"}},
		{"public.a, public.b ,c.d", []string{"public.a", "public.b", "c.d"}},
		{`"S p"."x,y"`, []string{`"S p"."x,y"`}},
		{`"S p"."x,y", public."Users"`, []string{`"S p"."x,y"`, `public."Users"`}},
		{`"a""b,c".t,u.v`, []string{`"a""b,c".t`, "u.v"}},
	} {
		if got := splitTables(c.in); !slices.Equal(got, c.want) {
			t.Errorf("splitTables(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	var m multiFlag
	if err := m.Set(`"S p"."x,y",public.t`); err != nil || !slices.Equal([]string(m), []string{`"S p"."x,y"`, "public.t"}) {
		t.Errorf("resync --table: %q, %v", m, err)
	}
}
