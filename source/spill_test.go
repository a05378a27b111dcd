package source

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func alloc(n int) []byte { return make([]byte, n) }

func TestSpillRecordRoundTrip(t *testing.T) {
	recs := []struct {
		xid uint32
		msg []byte
	}{{7, []byte("I\x00\x00\x00\x07rest")}, {8, nil}, {0xffffffff, bytes.Repeat([]byte{0xab}, 100000)}}
	var buf bytes.Buffer
	for _, r := range recs {
		if err := writeSpillRecord(&buf, r.xid, r.msg); err != nil {
			t.Fatal(err)
		}
	}
	if want := 3*8 + len(recs[0].msg) + len(recs[2].msg); buf.Len() != want {
		t.Fatalf("%d bytes written, want %d", buf.Len(), want)
	}
	// The layout is fixed: length, then xid, big-endian.
	if got := buf.Bytes()[:8]; !bytes.Equal(got, []byte{0, 0, 0, 9, 0, 0, 0, 7}) {
		t.Fatalf("header % x", got)
	}
	r := bufio.NewReader(bytes.NewReader(buf.Bytes()))
	for i, want := range recs {
		xid, msg, err := readSpillRecord(r, alloc)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if xid != want.xid || !bytes.Equal(msg, want.msg) {
			t.Fatalf("record %d: xid %d, %d bytes; want %d, %d bytes", i, xid, len(msg), want.xid, len(want.msg))
		}
	}
	if _, _, err := readSpillRecord(r, alloc); err != io.EOF {
		t.Fatalf("after the last record: %v, want io.EOF", err)
	}
}

// Every cut inside a record is a torn record, never a short message.
func TestSpillRecordTorn(t *testing.T) {
	var buf bytes.Buffer
	if err := writeSpillRecord(&buf, 3, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	whole := buf.Bytes()
	for cut := 1; cut < len(whole); cut++ {
		_, _, err := readSpillRecord(bufio.NewReader(bytes.NewReader(whole[:cut])), alloc)
		if !errors.Is(err, errTornRecord) {
			t.Errorf("cut at %d: %v, want errTornRecord", cut, err)
		}
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1}
	if _, _, err := readSpillRecord(bufio.NewReader(bytes.NewReader(huge)), alloc); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("4 GB length: %v", err)
	}
}

func TestSpilledXid(t *testing.T) {
	for _, c := range []struct {
		msg  string
		sub  uint32
		kept bool
	}{
		{"I\x00\x00\x01\x02...", 258, true},
		{"R\x00\x00\x00\x09", 9, true},
		{"Y\x00\x00\x00\x09", 9, true},
		{"U\x00\x00\x00\x09", 9, true},
		{"D\x00\x00\x00\x09", 9, true},
		{"T\x00\x00\x00\x09", 9, true},
		{"M\x00\x00\x00\x09", 9, true},
		{"O\x00\x00\x00\x00\x00\x00\x00\x01o\x00", 100, true}, // the transaction's own
		{"I\x00\x00", 0, false},                               // too short: the decoder says why
		{"E", 0, false},                                       // Stream Stop
		{"B", 0, false},                                       // out of place: the decoder says why
		{"", 0, false},
	} {
		sub, kept := spilledXid([]byte(c.msg), 100)
		if sub != c.sub || kept != c.kept {
			t.Errorf("%q: %d %v, want %d %v", c.msg, sub, kept, c.sub, c.kept)
		}
	}
}

// A transaction's blocks append to one file; an aborted subtransaction's
// records are skipped at replay, an aborted transaction's file is gone, and
// a first block starts afresh.
func TestSpillTransactions(t *testing.T) {
	parent := t.TempDir()
	dir := spillDirName(parent, "7000", "db", "walmirror")
	if other := spillDirName(parent, "7001", "db", "walmirror"); other == dir {
		t.Fatal("two clusters share a spill directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "old.spill"), []byte("from an earlier run"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := openSpill(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("spill directory not emptied: %v", ents)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	replay := func(xid uint32) []string {
		t.Helper()
		var got []string
		must(s.replay(xid, alloc, func(msg []byte) error { got = append(got, string(msg)); return nil }))
		return got
	}
	if err := s.write(10, 10, []byte("x")); err == nil {
		t.Fatal("a write outside a stream was accepted")
	}
	if err := s.start(10, false, 0); err == nil {
		t.Fatal("a later block without a first one was accepted")
	}
	must(s.start(10, true, 0))
	must(s.write(10, 10, []byte("a")))
	must(s.write(10, 11, []byte("b")))
	must(s.start(20, true, 0)) // another transaction streams in between
	must(s.write(20, 20, []byte("z")))
	must(s.start(10, false, 0))
	must(s.write(10, 12, []byte("c")))
	must(s.write(10, 10, []byte("d")))
	s.abort(10, 11)
	s.abort(99, 99) // never streamed here: ignored
	if got, want := replay(10), []string{"a", "c", "d"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("replay: %q, want %q", got, want)
	}
	if _, err := os.Stat(s.path(10)); !os.IsNotExist(err) {
		t.Fatalf("spill file of a committed transaction kept: %v", err)
	}
	if got := replay(10); got != nil {
		t.Fatalf("replayed twice: %q", got)
	}
	s.abort(20, 20)
	if _, err := os.Stat(s.path(20)); !os.IsNotExist(err) {
		t.Fatalf("spill file of an aborted transaction kept: %v", err)
	}
	must(s.start(30, true, 0))
	must(s.write(30, 30, []byte("lost")))
	must(s.start(30, true, 0)) // the server started the transaction over
	must(s.write(30, 30, []byte("kept")))
	if got, want := replay(30), []string{"kept"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("replay after a new first block: %q, want %q", got, want)
	}
	must(s.start(40, true, 0x500))
	must(s.start(50, true, 0x300))
	must(s.start(40, false, 0x900)) // a later block: the start stays
	if got := s.oldest(); got != 0x300 {
		t.Fatalf("oldest %s, want 0/300", got)
	}
	s.abort(50, 50)
	if got := s.oldest(); got != 0x500 {
		t.Fatalf("oldest %s after an abort, want 0/500", got)
	}
	must(s.write(40, 40, []byte("open")))
	must(s.close())
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("spill directory kept after close: %v", err)
	}
}
