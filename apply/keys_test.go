package apply

import (
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/schema"
)

func TestCanonicalKeys(t *testing.T) {
	tbl := schema.NewTable(1, "public", "t", schema.IdentityDefault, []schema.Column{
		{Name: "a", TypeID: 21, Key: true}, {Name: "b", TypeID: 2950, Key: true}, {Name: "o", TypeID: 26, Key: true}, {Name: "v", TypeID: 25}})
	k := orderOf(tbl, false)
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

// TestCheckResyncKeys: walmirror resync --key is checked before the request
// is written: keys come back in the stream's form, a key of the wrong width
// or a value the column cannot hold is an error naming the key and the
// table's key columns, and a key that cannot be matched exactly (numeric,
// or a FULL identity) means the whole table.
func TestCheckResyncKeys(t *testing.T) {
	ab := schema.NewTable(1, "public", "t", schema.IdentityDefault, []schema.Column{
		{Name: "a", TypeID: 23, Key: true}, {Name: "v", TypeID: 25}, {Name: "b", TypeID: 2950, Key: true}})
	canon, exact, err := CheckResyncKeys(ab, [][]string{{"+7", "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"}})
	if err != nil || !exact || !slices.Equal(canon[0], []string{"7", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}) {
		t.Errorf("a good key: %q %v %v", canon, exact, err)
	}
	for _, bad := range [][]string{{"7"}, {"7", "x", "y"}, {"abc", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{"2147483648", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}, {"7", "not-a-uuid"}} {
		_, _, err := CheckResyncKeys(ab, [][]string{bad})
		if err == nil || !strings.Contains(err.Error(), "a integer, b uuid") || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("key %q: %v, want an error naming it and the key (a integer, b uuid)", bad, err)
		}
	}
	// Text and varchar keys are matched by their text, as they are.
	st := schema.NewTable(5, "public", "s", schema.IdentityDefault, []schema.Column{{Name: "k", TypeID: 25, Key: true}, {Name: "n", TypeID: 23, Key: true}, {Name: "w", TypeID: 1043, Key: true}})
	canon, exact, err = CheckResyncKeys(st, [][]string{{" a,b ", "+7", "é"}})
	if err != nil || !exact || !slices.Equal(canon[0], []string{" a,b ", "7", "é"}) {
		t.Errorf("a text key: %q %v %v", canon, exact, err)
	}
	if _, _, err := CheckResyncKeys(st, [][]string{{"a\xff", "1", "x"}}); err == nil || !strings.Contains(err.Error(), "k text, n integer, w varchar") {
		t.Errorf("a text key that is no UTF-8: %v, want an error naming the key", err)
	}
	for _, whole := range []*schema.Table{
		schema.NewTable(2, "public", "s", schema.IdentityDefault, []schema.Column{{Name: "k", TypeID: 1700, Key: true}}),
		schema.NewTable(3, "public", "f", schema.IdentityFull, []schema.Column{{Name: "k", TypeID: 23, Key: true}}),
		schema.NewTable(4, "public", "n", schema.IdentityNothing, []schema.Column{{Name: "k", TypeID: 23}}),
	} {
		if _, exact, err := CheckResyncKeys(whole, [][]string{{"anything"}}); exact || err != nil {
			t.Errorf("%s: exact %v, %v; want the whole table", whole.Name, exact, err)
		}
	}
}

// TestKeyOrderTimes: date and timestamp keys are ordered as PostgreSQL
// orders them, from the ISO forms the source's sessions print (BC years,
// years past 9999, fractions, UTC offsets, ±infinity), so a table keyed by
// a time is copied in chunks.
func TestKeyOrderTimes(t *testing.T) {
	tbl := schema.NewTable(1, "public", "t", schema.IdentityDefault, []schema.Column{
		{Name: "d", TypeID: 1082, Key: true}, {Name: "ts", TypeID: 1114, Key: true}, {Name: "tz", TypeID: 1184, Key: true}, {Name: "v", TypeID: 25}})
	k := orderOf(tbl, false)
	if !k.ok {
		t.Fatal("a date and timestamp key is not ordered")
	}
	ascending := [][]string{
		{"-infinity", "2000-01-01 00:00:00", "2000-01-01 00:00:00+00"},
		{"4713-01-01 BC", "2000-01-01 00:00:00", "2000-01-01 00:00:00+00"},
		{"0001-12-31 BC", "2000-01-01 00:00:00", "2000-01-01 00:00:00+00"},
		{"0001-01-01", "-infinity", "2000-01-01 00:00:00+00"},
		{"0001-01-01", "0044-03-15 12:00:00 BC", "2000-01-01 00:00:00+00"},
		{"0001-01-01", "1999-12-31 23:59:59.999999", "2000-01-01 00:00:00+00"},
		{"0001-01-01", "2000-01-01 00:00:00", "-infinity"},
		{"0001-01-01", "2000-01-01 00:00:00", "1970-01-01 00:00:00+00"},
		{"0001-01-01", "2000-01-01 00:00:00", "2000-01-01 01:30:00+05:30"}, // 1999-12-31 20:00 UTC
		{"0001-01-01", "2000-01-01 00:00:00", "1999-12-31 23:00:00.5+00"},
		{"0001-01-01", "2000-01-01 00:00:00", "2000-01-01 00:00:00+00"},
		{"0001-01-01", "2000-01-01 00:00:00", "infinity"},
		{"0001-01-01", "2000-01-01 00:00:00.000001", "-infinity"},
		{"2026-02-28", "infinity", "-infinity"},
		{"12345-06-07", "2000-01-01 00:00:00", "2000-01-01 00:00:00+00"},
		{"infinity", "-infinity", "-infinity"},
	}
	checkAscending(t, k, ascending)
	if k.readable([]string{"2026-13-01", "2000-01-01 00:00:00", "2000-01-01 00:00:00+00"}) || k.readable([]string{"2026-01-01"}) {
		t.Error("a key not in the output form, or short, is readable")
	}
}

// TestKeyOrderText: text keys order by bytes when the source says their
// collation does (TableCopy.TextBytes), and not at all otherwise.
func TestKeyOrderText(t *testing.T) {
	tbl := schema.NewTable(1, "public", "t", schema.IdentityDefault, []schema.Column{
		{Name: "k", TypeID: schema.OIDText, Key: true}, {Name: "n", TypeID: schema.OIDInt4, Key: true}, {Name: "s", TypeID: schema.OIDVarchar, Key: true}})
	if orderOf(tbl, false).ok {
		t.Fatal("text keys ordered without a bytewise collation")
	}
	k := orderOf(tbl, true)
	if !k.ok {
		t.Fatal("text keys not ordered under a bytewise collation")
	}
	ascending := [][]string{
		{"", "5", "x"},
		{"A", "-3", "x"},
		{"A", "2", ""},
		{"A", "2", "a"},
		{"A", "10", "a"},
		{"Z", "1", "a"},
		{"a", "1", "a"},
		{"a b", "1", "a"},
		{"ab", "1", "a"},
		{"abc", "1", "a"},
		{"z", "1", "a"},
		{"é", "1", "a"}, // U+00E9
		{"€", "1", "a"}, // U+20AC
		{"\uffff", "1", "a"},
		{"😀", "1", "a"}, // U+1F600: 4 bytes, after every 3-byte one
	}
	checkAscending(t, k, ascending)
}

// checkAscending checks that k reads every key of ascending (the key
// columns' values, the table's first columns) and orders them so.
func checkAscending(t *testing.T, k keyOrder, ascending [][]string) {
	t.Helper()
	row := func(key []string) schema.Tuple {
		tup := make(schema.Tuple, len(key)+1)
		for i, v := range key {
			tup[i] = schema.Datum{State: schema.Text, Data: []byte(v)}
		}
		return tup
	}
	for i, a := range ascending {
		if !k.readable(a) {
			t.Errorf("%q: not readable", a)
		}
		for j, b := range ascending {
			if got, want := k.beyond(row(a), b), i > j; got != want {
				t.Errorf("beyond(%q, after %q) = %v, want %v", a, b, got, want)
			}
		}
	}
}

// TestKeyOrderNumeric: numeric keys order by value as PostgreSQL orders
// them (-Infinity, finite values, Infinity, NaN), whatever their scale,
// checked against math/big on random values.
func TestKeyOrderNumeric(t *testing.T) {
	tbl := schema.NewTable(1, "public", "t", schema.IdentityDefault, []schema.Column{
		{Name: "n", TypeID: schema.OIDNumeric, Key: true}, {Name: "i", TypeID: schema.OIDInt4, Key: true}})
	k := orderOf(tbl, false)
	if !k.ok {
		t.Fatal("numeric keys not ordered")
	}
	checkAscending(t, k, [][]string{
		{"-Infinity", "1"},
		{"-100000000000000000000000000000.5", "1"},
		{"-10", "1"},
		{"-9.99", "1"},
		{"-0.5", "1"},
		{"-0.05", "1"},
		{"0", "1"},
		{"0.000001", "1"},
		{"0.05", "1"},
		{"0.5", "1"},
		{"0.50", "2"}, // = 0.5: the second column decides
		{"1", "1"},
		{"9.5", "1"},
		{"10", "1"},
		{"12345678901234567890.123", "1"},
		{"Infinity", "1"},
		{"NaN", "1"},
	})
	for _, bad := range []string{"", "-", "1.", ".5", "1e5", "1,5", "nan", "+1", "1.2.3"} {
		if k.readable([]string{bad, "1"}) {
			t.Errorf("%q is readable", bad)
		}
	}
	// Random values of random scales against math/big.
	rnd := rand.New(rand.NewPCG(1, 2))
	value := func() (string, *big.Rat) {
		n := big.NewInt(rnd.Int64N(2_000_000) - 1_000_000)
		n.Mul(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(rnd.Int64N(30)), nil))
		scale := rnd.IntN(25)
		r := new(big.Rat).SetFrac(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil))
		return r.FloatString(scale), r
	}
	for range 20000 {
		a, x := value()
		b, y := value()
		got, ok := cmpNumeric([]byte(a), []byte(b))
		if !ok || got != x.Cmp(y) {
			t.Fatalf("cmpNumeric(%s, %s) = %d, %v; want %d", a, b, got, ok, x.Cmp(y))
		}
	}
}
