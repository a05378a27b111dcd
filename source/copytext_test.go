package source

import (
	"testing"

	"github.com/walmirror/walmirror/schema"
)

func TestDecodeCopyLine(t *testing.T) {
	tup, err := decodeCopyLine([]byte("1\t\\N\ta\\tb\\\\c\\nd\t\t\\x41\\101\\N"), 5)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		state byte
		data  string
	}{{schema.Text, "1"}, {schema.Null, ""}, {schema.Text, "a\tb\\c\nd"}, {schema.Text, ""}, {schema.Text, "AAN"}}
	for i, w := range want {
		if tup[i].State != w.state || string(tup[i].Data) != w.data {
			t.Errorf("col %d = %c %q, want %c %q", i, tup[i].State, tup[i].Data, w.state, w.data)
		}
	}
	for _, bad := range []string{"1\t2", "1\t2\t3\t4\t5\t6", "1\t2\t3\t4\t\\"} {
		if _, err := decodeCopyLine([]byte(bad), 5); err == nil {
			t.Errorf("decodeCopyLine(%q) succeeded", bad)
		}
	}
}

func TestCopyReaderSplitWrites(t *testing.T) {
	var got []string
	r := &copyReader{ncols: 2, fn: func(tp schema.Tuple) error {
		got = append(got, string(tp[0].Data)+"|"+string(tp[1].Data))
		return nil
	}}
	for _, chunk := range []string{"a\tb\nc", "\td\n", "e\tf\n"} {
		if _, err := r.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 3 || got[0] != "a|b" || got[1] != "c|d" || got[2] != "e|f" {
		t.Fatalf("got %q", got)
	}
}

func TestParseTableName(t *testing.T) {
	cases := map[string]TableName{
		"t":                 {"public", "t"},
		"Sales.Orders":      {"sales", "orders"},
		`"My Schema"."a.b"`: {"My Schema", "a.b"},
		`s."we""ird"`:       {"s", `we"ird`},
	}
	for in, want := range cases {
		got, err := ParseTableName(in)
		if err != nil || got != want {
			t.Errorf("ParseTableName(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a.b.c", `"open`, "a.", `"x"y`} {
		if _, err := ParseTableName(bad); err == nil {
			t.Errorf("ParseTableName(%q) succeeded", bad)
		}
	}
}
