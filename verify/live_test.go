package verify

import (
	"bytes"
	"testing"
	"time"
)

// TestReadJSON: a report read back from its JSON (what verify --sidecar
// receives) writes the same JSON and the same text.
func TestReadJSON(t *testing.T) {
	s := func(v string) *string { return &v }
	rep := &Report{LSN: 0x16B3748, From: 0x16B3700, Live: true, Took: 1500 * time.Millisecond, Tables: []TableReport{
		{Table: "public.t", Key: []string{"id", "k"}, Method: MethodMerge, SourceRows: 10, TargetRows: 10, Missing: 1, Extra: 1, Changed: 1,
			Examples: []Example{{Kind: Changed, Values: Values{{"id", s("2")}, {"k", nil}}, Columns: []string{"v", "w"}}, {Kind: Missing, Values: Values{{"id", s(`"3"`)}, {"k", s("é")}}}}},
		{Table: `"Odd"."x y"`, Method: MethodMultiset, SourceRows: 3, TargetRows: 2, Missing: 1,
			Examples: []Example{{Kind: Missing, Values: Values{{"z", s("dup")}, {"a", nil}}}}},
		{Table: "public.gone", Key: []string{"id"}, Method: MethodMerge, Absent: true, SourceRows: 4, Missing: 4},
		{Table: "public.err", Err: "read public.err: boom", Note: "a note"},
	}, CopiedAgain: []CopiedAgain{{Table: "public.r", Reason: "rewritten"}}}
	// The repair verify --sidecar --repair receives, with its second
	// verification.
	rep.Repair = &Repair{Tables: []string{"public.t", `"Odd"."x y"`}, RequestedAt: 0x16B3800, CopyTook: 250 * time.Millisecond,
		Copies: []TableRepair{{Table: "public.t", Keys: 2}, {Table: `"Odd"."x y"`, Whole: "no key"}},
		After:  &Report{LSN: 0x16B3900, From: 0x16B3900, Live: true, Tables: []TableReport{{Table: "public.t", Key: []string{"id"}, Method: MethodChecksum, SourceRows: 10, TargetRows: 10}}}}
	var first bytes.Buffer
	if err := rep.WriteJSON(&first); err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(first.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var second, text1, text2 bytes.Buffer
	_ = back.WriteJSON(&second)
	if first.String() != second.String() {
		t.Errorf("JSON differs after a round trip:\n%s\n%s", first.String(), second.String())
	}
	_ = rep.WriteText(&text1)
	_ = back.WriteText(&text2)
	if text1.String() != text2.String() {
		t.Errorf("text differs after a round trip:\n%s\n%s", text1.String(), text2.String())
	}
	if back.Different() != rep.Different() || back.Equal() != rep.Equal() {
		t.Error("equal/different changed in the round trip")
	}
	text1.Reset()
	text2.Reset()
	_ = rep.Repair.WriteText(&text1)
	_ = back.Repair.WriteText(&text2)
	if text1.String() != text2.String() || back.Repair.Equal() != rep.Repair.Equal() || !back.Repair.Equal() {
		t.Errorf("the repair differs after a round trip:\n%s\n%s", text1.String(), text2.String())
	}
	if _, err := ReadJSON([]byte(`{"equal": false, "error": "no slot"}`)); err == nil || err.Error() != "no slot" {
		t.Errorf("an error object: %v", err)
	}
}

// TestReportNamesPrintable: a table named with control characters takes
// one line of the text report, escaped (helper-104: a newline broke the
// layout).
func TestReportNamesPrintable(t *testing.T) {
	rep := &Report{Tables: []TableReport{{Table: "\"we\nird\".\"t\tab\"", Key: []string{"id"}, SourceRows: 1, TargetRows: 1}}}
	var b bytes.Buffer
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b.Bytes(), []byte(`"we\nird"."t\tab"`)) || bytes.Count(b.Bytes(), []byte("\n")) != 3 {
		t.Errorf("report:\n%s", b.String())
	}
}
