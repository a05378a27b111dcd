package main

import (
	"slices"
	"testing"

	"github.com/walmirror/walmirror/source"
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
		if got := source.SplitTableNames(c.in); !slices.Equal(got, c.want) {
			t.Errorf("SplitTableNames(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	var m tableList
	if err := m.Set(`"S p"."x,y",public.t`); err != nil || !slices.Equal([]string(m), []string{`"S p"."x,y"`, "public.t"}) {
		t.Errorf("resync --table: %q, %v", m, err)
	}
}

// TestRepeatedFlagLayers: a repeatable flag given on the command line
// replaces the environment's values, as a flag given once does (helper-130:
// WALMIRROR_TABLE=a with --table b compared both); without it, the
// environment's values stand.
func TestRepeatedFlagLayers(t *testing.T) {
	t.Setenv("WALMIRROR_TABLE", "public.a,public.b")
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--table", "public.c", "--table", "public.d"}, []string{"public.c", "public.d"}},
		{nil, []string{"public.a", "public.b"}},
	} {
		fs := newFlagSet("verify", "")
		var tables tableList
		fs.Var(repeated(&tables, func() { tables = nil }), "table", "")
		if err := fs.parseFlags(c.args); err != nil || !slices.Equal([]string(tables), c.want) {
			t.Errorf("%q: %q, %v; want %q", c.args, tables, err, c.want)
		}
	}
}
