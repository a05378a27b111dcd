package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestRepairNothingDiffers: a report with no different table asks for
// nothing and does not touch the target (a table that could not be
// compared is not copied either).
func TestRepairNothingDiffers(t *testing.T) {
	rep := &Report{Tables: []TableReport{{Table: "public.a", SourceRows: 3, TargetRows: 3}, {Table: "public.b", Err: "boom"}}}
	rp, err := RepairTables(context.Background(), Config{}, Target{}, rep)
	if err != nil || len(rp.Tables) != 0 || rp.RequestedAt != 0 || rp.After != nil {
		t.Fatalf("repair of an equal report: %+v, %v", rp, err)
	}
}

// TestRepairReport: what the text and JSON reports say about a repair.
func TestRepairReport(t *testing.T) {
	first := &Report{LSN: 0x200, From: 0x100, Tables: []TableReport{
		{Table: "public.a", Missing: 1, SourceRows: 3, TargetRows: 2},
		{Table: "public.b", SourceRows: 5, TargetRows: 5},
		{Table: "public.c", Extra: 1, SourceRows: 5, TargetRows: 6},
	}}
	after := &Report{LSN: 0x300, From: 0x280, Tables: []TableReport{{Table: "public.a", SourceRows: 3, TargetRows: 3}, {Table: "public.c", SourceRows: 5, TargetRows: 5}}}
	rp := &Repair{Tables: []string{"public.a", "public.c"}, RequestedAt: 0x250, After: after,
		Copies: []TableRepair{{Table: "public.a", Keys: 1}, {Table: "public.c", Whole: "no key"}}}

	var text bytes.Buffer
	if err := rp.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"repair: copied again public.a (1 rows by key), public.c (whole: no key) (from the copy's position 0/00000250",
		"compared at source position 0/00000300", "2 tables equal, 0 different"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}

	first.Repair = rp
	var js bytes.Buffer
	if err := first.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Equal  bool
		Error  string
		Repair struct {
			Tables []string
			Copies []struct {
				Table, By, Why string
				Keys           int
			}
			RequestedAt string `json:"requested_at"`
			Equal       bool
			Verify      struct {
				LSN    string
				Equal  bool
				Tables []struct{ Table, Status string }
			}
			Error string
		}
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	r := got.Repair
	if got.Equal || got.Error != "" || !r.Equal || r.RequestedAt != "0/00000250" || strings.Join(r.Tables, ",") != "public.a,public.c" ||
		r.Verify.LSN != "0/00000300" || !r.Verify.Equal || len(r.Verify.Tables) != 2 || r.Verify.Tables[0].Status != "equal" || r.Error != "" ||
		len(r.Copies) != 2 || r.Copies[0].Table != "public.a" || r.Copies[0].By != "keys" || r.Copies[0].Keys != 1 || r.Copies[0].Why != "" ||
		r.Copies[1].Table != "public.c" || r.Copies[1].By != "table" || r.Copies[1].Keys != 0 || r.Copies[1].Why != "no key" {
		t.Errorf("JSON: %+v\n%s", got, js.String())
	}

	// A repair that failed after its request says so in both places.
	rp.After, rp.Err = nil, "bring the copy up to date: boom"
	js.Reset()
	if err := first.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	got.Repair.Verify.Tables = nil
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Error != rp.Err || got.Repair.Error != rp.Err || got.Repair.Equal || strings.Contains(js.String(), `"verify"`) {
		t.Errorf("JSON of a failed repair: %+v\n%s", got, js.String())
	}
	text.Reset()
	if err := rp.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if want := "repair: copies of public.a (1 rows by key), public.c (whole: no key) started at 0/00000250; not verified again: bring the copy up to date: boom\n"; text.String() != want {
		t.Errorf("text of a failed repair: %q, want %q", text.String(), want)
	}
}
