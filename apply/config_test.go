package apply

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/walmirror/walmirror/source"
)

// TestValidate: a half-set Config is completed field by field, and a bad
// field is named.
func TestValidate(t *testing.T) {
	src := source.Config{DSN: "postgres://u@localhost/db"}
	d := (Config{Source: src, Limits: Limits{CommitRows: 5}}).withDefaults()
	want := DefaultLimits()
	want.CommitRows = 5
	if d.Limits != want {
		t.Errorf("Limits{CommitRows: 5} with defaults = %+v, want %+v", d.Limits, want)
	}
	if d.Source.Slot != DefaultSlot || d.Source.Publication != DefaultPublication || d.MaxBackoff != DefaultMaxBackoff ||
		d.SlotBusyWait != DefaultSlotBusyWait || d.Logger == nil {
		t.Errorf("defaults not applied: %+v", d)
	}
	ok := Config{Source: src, Limits: Limits{CommitRows: 5}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(half-set, otherwise valid) = %v", err)
	}
	for _, ic := range []string{"", "auto", "single", "chunked"} {
		c := Config{Source: src, InitialCopy: ic, CopyChunkTime: -1, PollInterval: -1, ChangeKeys: -1}
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(InitialCopy %q, negatives that mean something) = %v", ic, err)
		}
	}
	for _, tc := range []struct {
		field string
		cfg   Config
	}{
		{"Limits.CommitRows", Config{Source: src, Limits: Limits{CommitRows: -1}}},
		{"Limits.ChunkBytes", Config{Source: src, Limits: Limits{CommitRows: 10, ChunkBytes: -5}}},
		{"Limits.CommitInterval", Config{Source: src, Limits: Limits{CommitInterval: -time.Second}}},
		{"MaxBackoff", Config{Source: src, MaxBackoff: -1}},
		{"SlotBusyWait", Config{Source: src, SlotBusyWait: -1}},
		{"Source.Timeout", Config{Source: source.Config{DSN: src.DSN, Timeout: -1}}},
		{"StopAtNow", Config{Source: src, StopAt: 0x100, StopAtNow: true}},
		{"InitialCopy", Config{Source: src, InitialCopy: "Single"}},
		{"InitialCopy", Config{Source: src, InitialCopy: "singel"}},
		{"CopyChunkRows", Config{Source: src, CopyChunkRows: -5}},
		{"ResyncTables[1].RelID", Config{Source: src, ResyncTables: []ResyncTable{{RelID: 16384, Name: "public.t"}, {Name: "public.u"}}}},
		{"Source.Tables[0]", Config{Source: source.Config{DSN: src.DSN, Tables: []string{"a.b.c"}}}},
		{"Source.DSN", Config{Source: source.Config{DSN: "postgres://u:secret@host:5432/db?sslmode=bogus"}}},
		{"Source.DSN", Config{}},
		{"Source.Slot", Config{Source: source.Config{DSN: src.DSN, Slot: "Bad-Slot"}}},
		{"Source.Protocol", Config{Source: source.Config{DSN: src.DSN, Protocol: 9}}},
	} {
		err := tc.cfg.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("Validate(%+v) = %v; want a *ConfigError for %s", tc.cfg, err, tc.field)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("error %q does not name %s", err, tc.field)
		}
		// A library caller sets fields, not flags (helper-107: "--source
		// is required"); nor does a password appear.
		if msg := err.Error(); strings.Contains(msg, "--") || strings.Contains(msg, "secret") {
			t.Errorf("error %q names a command-line flag or shows a password", msg)
		}
	}
}

// TestClaimSink: a sink one Run uses is refused to another until released
// (helper-82: the second Run sat in the slot-busy wait, then returned nil).
func TestClaimSink(t *testing.T) {
	s := &recordingSink{}
	release, err := claimSink(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := claimSink(s); err == nil || !strings.Contains(err.Error(), "in use by another Run") {
		t.Fatalf("second claim = %v, want in use", err)
	}
	if r2, err := claimSink(&recordingSink{}); err != nil {
		t.Fatalf("another sink: %v", err)
	} else {
		r2()
	}
	release()
	if r3, err := claimSink(s); err != nil {
		t.Fatalf("claim after release: %v", err)
	} else {
		r3()
	}
}
