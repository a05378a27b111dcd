package verify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/walmirror/walmirror/schema"
)

// TestRepairKeys: with Options.Keys, a table's report names the keys of
// all its differing rows (missing, extra, changed) in the text form
// pgoutput sends them in, whichever way the table is compared; when they
// cannot all be named it says why and names none.
func TestRepairKeys(t *testing.T) {
	keyU := schema.Column{Name: "u", TypeID: schema.OIDUUID, Key: true}
	keyS := schema.Column{Name: "s", TypeID: schema.OIDInt2, Key: true}
	keyO := schema.Column{Name: "o", TypeID: schema.OIDOid, Key: true}
	keyT := schema.Column{Name: "k", TypeID: schema.OIDText, Key: true}
	base := rows(20, func(i int) []string { return []string{fmt.Sprint(i), "v"} })
	damaged := slices.Clone(base)
	damaged[3] = []string{"3", "changed"}
	damaged = slices.Delete(damaged, 5, 6)               // 5 missing
	damaged = append(damaged, []string{"1000", "extra"}) // 1000 extra
	damaged = append(damaged, []string{"7", "v"})        // 7 twice in the copy

	for _, tc := range []struct {
		name     string
		t        *Table
		src, dst [][]string
		max      int
		unsorted bool
		keys     string // the keys, sorted, ";" between keys and "," between columns
		not      string
	}{
		{"merged", table(0, keyID, colV), base, damaged, 10, false, "1000;3;5;7", ""},
		{"matched in memory", table(0, keyID, colV), base, damaged, 10, true, "1000;3;5;7", ""},
		{"equal", table(0, keyID, colV), base, base, 10, false, "", ""},
		{"too many", table(0, keyID, colV), base, damaged, 3, false, "", "more than 3 rows differ"},
		{"just enough", table(0, keyID, colV), base, damaged, 4, false, "1000;3;5;7", ""},
		{"off", table(0, keyID, colV), base, damaged, 0, false, "", "copying rows by key is off"},
		{"uuid and int8, as PostgreSQL prints them",
			table(0, keyU, schema.Column{Name: "b", TypeID: schema.OIDInt8, Key: true}, colV),
			[][]string{{"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", "-9223372036854775808", "x"}, {"a0eebc99-9c0b-4ef8-BB6D-6bb9bd380a12", "+007", "y"}},
			[][]string{{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "-9223372036854775808", "z"}},
			10, false, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,-9223372036854775808;a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12,7", ""},
		{"oid", table(0, keyO, colV), [][]string{{"4294967295", "a"}}, nil, 10, false, "4294967295", ""},
		{"text key", table(0, keyT, colV), base, damaged, 10, false, "1000;3;5;7", ""},
		{"text and int2 key, quoted and unicode", table(0, keyT, keyS, colV),
			[][]string{{`it's "x", y`, "1", "a"}, {"é\\", "2", "b"}}, [][]string{{`it's "x", y`, "1", "A"}}, 10, false, `it's "x", y,1;é\,2`, ""},
		{"a text key no UTF-8 in the copy", table(0, keyT, colV), [][]string{{"a", "x"}}, [][]string{{"a", "x"}, {"b\xff", "y"}}, 10, false, "",
			"a differing row's key is no valid text"},
		{"numeric key", table(0, keyNum, colV), base, damaged, 10, false, "", "key column id is not an integer, uuid, text or varchar"},
		{"no key", table(schema.IdentityFull, keyID, colV), base, damaged, 10, false, "", "no key"},
		{"an int2 key out of range in the copy", table(0, keyS, colV), [][]string{{"1", "a"}}, [][]string{{"1", "a"}, {"40000", "b"}}, 10, false, "",
			"a differing row's key is no valid int2"},
		{"an unreadable key in the copy", table(0, keyID, colV), [][]string{{"1", "a"}}, [][]string{{"1", "a"}, {"abc", "b"}}, 10, false, "",
			"a differing row's key is no valid int4"},
		{"a NULL key in the copy", table(0, keyID, colV), [][]string{{"1", "a"}}, [][]string{{"1", "a"}, {"NULL", "b"}}, 10, false, "",
			"a differing row's key is NULL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := Compare(context.Background(), tc.t, &fakeSide{rows: tc.src, unsorted: tc.unsorted}, &fakeSide{rows: tc.dst, unsorted: tc.unsorted},
				Options{Keys: tc.max})
			if rep.Err != "" {
				t.Fatal(rep.Err)
			}
			if tc.unsorted && rep.Method != MethodHash {
				t.Fatalf("method %s, want %s", rep.Method, MethodHash)
			}
			var keys []string
			for _, k := range rep.Keys {
				keys = append(keys, strings.Join(k, ","))
			}
			slices.Sort(keys)
			if got := strings.Join(keys, ";"); got != tc.keys || rep.KeysNot != tc.not {
				t.Errorf("keys %q (%q), want %q (%q); report %s", got, rep.KeysNot, tc.keys, tc.not, summary(rep))
			}
			if tc.keys != "" && rep.Keys == nil || tc.keys == "" && rep.Keys != nil {
				t.Errorf("keys %#v", rep.Keys)
			}
		})
	}
}

func TestValidKey(t *testing.T) {
	for _, tc := range []struct {
		oid uint32
		v   string
		ok  bool
	}{
		{schema.OIDInt2, "32767", true}, {schema.OIDInt2, "-32768", true}, {schema.OIDInt2, "32768", false},
		{schema.OIDInt4, "2147483647", true}, {schema.OIDInt4, "-2147483649", false},
		{schema.OIDInt8, "9223372036854775807", true}, {schema.OIDInt8, "-9223372036854775808", true}, {schema.OIDInt8, "9223372036854775808", false},
		{schema.OIDInt8, "007", false}, {schema.OIDInt8, "-0", false}, {schema.OIDInt8, "0", true}, {schema.OIDInt8, "", false},
		{schema.OIDOid, "0", true}, {schema.OIDOid, "4294967295", true}, {schema.OIDOid, "4294967296", false}, {schema.OIDOid, "-1", false},
		{schema.OIDUUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", true}, {schema.OIDUUID, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", false},
		{schema.OIDUUID, "a0eebc999c0b4ef8bb6d6bb9bd380a11", false}, {schema.OIDUUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g", false},
	} {
		if got := validKey(tc.oid, []byte(tc.v)); got != tc.ok {
			t.Errorf("validKey(%s, %q) = %v, want %v", typeName(tc.oid), tc.v, got, tc.ok)
		}
	}
}
