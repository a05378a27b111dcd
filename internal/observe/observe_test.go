package observe

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/schema"
	"github.com/walmirror/walmirror/source"
)

func TestLagAndReadiness(t *testing.T) {
	m := New("test")
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return now }
	m.started = now
	h := m.Handler(time.Minute)
	ready := func() int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return w.Code
	}
	m.Snapshot(apply.SnapshotProgress{Tables: 2, TablesDone: 1, Rows: 10})
	if ready() != http.StatusServiceUnavailable {
		t.Error("ready during the initial copy")
	}
	m.Snapshot(apply.SnapshotProgress{Tables: 2, TablesDone: 2, Rows: 20, Done: true})
	m.Streaming(0x100)
	m.Position(apply.Position{ServerWALEnd: 0x500})
	now = now.Add(90 * time.Second)
	if lag, bytes := m.Lag(); lag != 90*time.Second || bytes != 0x400 {
		t.Errorf("behind: lag %v, %d bytes", lag, bytes)
	}
	if ready() != http.StatusServiceUnavailable {
		t.Error("ready while 90s behind")
	}
	m.Committed(apply.CommitInfo{State: schema.State{LSN: 0x480}, Duration: time.Millisecond,
		Stats: apply.Stats{Commits: 1, Transactions: 2, Rows: 3, Inserts: 2, Deletes: 1, LastCommitTime: now.Add(-2 * time.Second)}})
	if lag, bytes := m.Lag(); lag != 2*time.Second || bytes != 0x80 {
		t.Errorf("after a commit: lag %v, %d bytes", lag, bytes)
	}
	m.Position(apply.Position{ServerWALEnd: 0x600, CaughtUp: true})
	if lag, bytes := m.Lag(); lag != 0 || bytes != 0 || ready() != http.StatusOK {
		t.Errorf("caught up: lag %v, %d bytes, ready %d", lag, bytes, ready())
	}
	// A reconnect starts a new engine whose counts start again. Its
	// second try is the same outage: one loss.
	m.SetSlot(source.SlotState{Active: true})
	if got := gauge(t, m, "walmirror_slot_active"); got != 1 {
		t.Errorf("walmirror_slot_active = %v while streaming", got)
	}
	m.Interrupted(nil)
	m.Interrupted(nil)
	if got := gauge(t, m, "walmirror_slot_active"); got != 0 {
		t.Errorf("walmirror_slot_active = %v after the connection was lost", got)
	}
	m.Committed(apply.CommitInfo{State: schema.State{LSN: 0x700}, Stats: apply.Stats{Commits: 1, Transactions: 1, Rows: 1, Inserts: 1}})
	if s := m.Summary(); s.Inserts != 3 || s.Deletes != 1 || s.Transactions != 3 || s.Commits != 2 || s.Reconnects != 1 || s.SnapshotRows != 20 {
		t.Errorf("totals %+v", s.Totals)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{`walmirror_rows_applied_total{op="insert"} 3`, "walmirror_lag_seconds ", "walmirror_lag_bytes ", "walmirror_target_commit_duration_seconds_count 2"} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestLagResumed: a run restarted into a backlog counts its lag from the
// target's last commit until its first commit says how far behind it is
// (helper-116: before, from its own start: under a second, and /readyz
// 200, with a minute of backlog); that first commit may be of a
// transaction older than the stored commit, or than a keepalive's claim.
func TestLagResumed(t *testing.T) {
	m := New("test")
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return now }
	m.started = now
	m.Resumed(time.Time{})
	m.Resumed(now.Add(time.Second)) // not before the start: a clock that moved
	if lag, _ := m.Lag(); lag != 0 {
		t.Errorf("lag %v with nothing stored before the start", lag)
	}
	m.Resumed(now.Add(-90 * time.Second))
	m.CopyComplete(schema.State{})
	m.Streaming(0x100)
	now = now.Add(time.Second)
	ready, why := m.Ready(time.Minute)
	if lag, _ := m.Lag(); lag != 91*time.Second || ready {
		t.Errorf("restarted 90 s after the last commit: lag %v, ready %v (%s)", lag, ready, why)
	}
	m.Committed(apply.CommitInfo{State: schema.State{LSN: 0x200}, Stats: apply.Stats{Commits: 1, Transactions: 1, LastCommitTime: now.Add(-95 * time.Second)}})
	if lag, _ := m.Lag(); lag != 95*time.Second {
		t.Errorf("first commit of a transaction 95 s old: lag %v", lag)
	}
	m.Committed(apply.CommitInfo{State: schema.State{LSN: 0x400}, Stats: apply.Stats{Commits: 2, Transactions: 3, LastCommitTime: now.Add(-time.Second)}})
	if lag, _ := m.Lag(); lag != time.Second {
		t.Errorf("caught up to a second: lag %v", lag)
	}
	m.Resumed(now.Add(-time.Hour)) // only before anything is known
	if lag, _ := m.Lag(); lag != time.Second {
		t.Errorf("Resumed after a commit moved the lag: %v", lag)
	}
	// A new session's first keepalive says all is applied before the
	// walsender has read the backlog (no slot poll shows otherwise yet);
	// the transactions then applied say how old the copy is.
	m.Interrupted(nil)
	m.Streaming(0x400)
	m.Position(apply.Position{ServerWALEnd: 0x400, CaughtUp: true})
	now = now.Add(time.Minute)
	m.Committed(apply.CommitInfo{State: schema.State{LSN: 0x500}, Stats: apply.Stats{Commits: 1, Transactions: 10, LastCommitTime: now.Add(-6 * time.Minute)}})
	if lag, _ := m.Lag(); lag != 6*time.Minute {
		t.Errorf("catching up, a minute after a keepalive, on transactions 6 minutes old: lag %v", lag)
	}
	// A commit of no transaction (an online copy's chunk) says nothing new.
	m.Position(apply.Position{ServerWALEnd: 0x600, CaughtUp: true})
	now = now.Add(time.Minute)
	m.Committed(apply.CommitInfo{State: schema.State{LSN: 0x600}, Stats: apply.Stats{Commits: 2, Transactions: 10, LastCommitTime: now.Add(-7 * time.Minute)}})
	if lag, _ := m.Lag(); lag != time.Minute {
		t.Errorf("a chunk's commit after a keepalive: lag %v", lag)
	}
}

// TestReadyChunkedCopy: streaming that starts with the initial copy still
// being made chunk by chunk is not ready (nor initial_copy_complete); the
// copy being complete (OnReady) is. Before, /readyz said 200 at the start
// of streaming with 60,000 of 300,000 rows copied.
func TestReadyChunkedCopy(t *testing.T) {
	m := New("test")
	var cfg apply.Config
	m.Hook(&cfg)
	cfg.OnStreaming(0x100)
	copies := []schema.TableCopy{{RelID: 1, Table: "public.a", Rows: 40000, Chunks: 2, Estimate: 100000}, {RelID: 2, Table: "public.b", Estimate: -1}}
	cfg.OnCommit(apply.CommitInfo{State: schema.State{LSN: 0x200, Copies: copies}})
	// The body, the metrics and the progress line say how far it is
	// (they said "initial copy not complete" and nothing else).
	ok, why := m.Ready(time.Minute)
	if want := "initial copy in progress (online, in chunks): 2 tables to copy, public.a 40000 of ~100000 rows in 2 chunks"; ok || m.Summary().CopyComplete || why != want {
		t.Errorf("ready = %v, %q while the chunked initial copy runs; want false, %q", ok, why, want)
	}
	if got := gauge(t, m, "walmirror_online_copy_tables"); got != 2 {
		t.Errorf("walmirror_online_copy_tables = %v, want 2", got)
	}
	if got := gauge(t, m, "walmirror_online_copy_rows"); got != 40000 {
		t.Errorf("walmirror_online_copy_rows = %v, want 40000", got)
	}
	var buf lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.LogProgress(ctx, 5*time.Millisecond, slog.New(slog.NewTextHandler(&buf, nil)))
	}()
	const line = `msg="progress: initial copy" online_copy_tables=2 online_copy_table=public.a online_copy_rows=40000`
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(buf.String(), line) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if !strings.Contains(buf.String(), line) {
		t.Errorf("progress lines during a chunked initial copy:\n%s", buf.String())
	}
	st := schema.State{LSN: 0x300}
	cfg.OnCommit(apply.CommitInfo{State: st})
	cfg.OnReady(st)
	if ok, why := m.Ready(time.Minute); !ok || !m.Summary().CopyComplete || strings.Contains(why, "copying") {
		t.Errorf("not ready (%q) once the copy is complete", why)
	}
	// A table joining later: still ready, and the body says it is copied.
	cfg.OnCommit(apply.CommitInfo{State: schema.State{LSN: 0x400, Copies: copies[1:]}})
	if ok, why := m.Ready(time.Minute); !ok || !strings.Contains(why, "; copying online: 1 table to copy, public.b 0 of ? rows") {
		t.Errorf("ready = %v, %q while a table joins", ok, why)
	}
	if got := gauge(t, m, "walmirror_online_copy_tables"); got != 1 {
		t.Errorf("walmirror_online_copy_tables = %v, want 1", got)
	}
}

// gauge reads one unlabelled gauge from m's registry.
func gauge(t *testing.T, m *Monitor, name string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestSummaryCopyRolledBack: a single-transaction initial copy stopped
// before its commit left no rows, and the summary line says so (it counted
// them as copied, helper-55).
func TestSummaryCopyRolledBack(t *testing.T) {
	m := New("test")
	var cfg apply.Config
	m.Hook(&cfg)
	cfg.OnSnapshot(apply.SnapshotProgress{Tables: 2, Table: "public.a", Rows: 5000})
	var buf bytes.Buffer
	m.LogSummary(slog.New(slog.NewTextHandler(&buf, nil)))
	if !strings.Contains(buf.String(), "initial_copy_rows_rolled_back=5000") || strings.Contains(buf.String(), " initial_copy_rows=") {
		t.Errorf("summary of a copy that did not commit:\n%s", buf.String())
	}
	cfg.OnSnapshot(apply.SnapshotProgress{Tables: 2, TablesDone: 2, Rows: 7000, Done: true})
	buf.Reset()
	m.LogSummary(slog.New(slog.NewTextHandler(&buf, nil)))
	if !strings.Contains(buf.String(), " initial_copy_rows=7000") {
		t.Errorf("summary of a committed copy:\n%s", buf.String())
	}
}

// lockedBuffer is a bytes.Buffer a logging goroutine writes while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestOnlineCopyStaleEstimate: a table's row estimate (reltuples) taken
// before it grew says nothing once more rows than it were copied
// (helper-64 read "public.w 134000 of ~100 rows").
func TestOnlineCopyStaleEstimate(t *testing.T) {
	o := OnlineCopy{Tables: 1, Table: "public.w", Rows: 134000, Chunks: 3, Estimate: 100}
	if got, want := o.describe(), "1 table to copy, public.w 134000 of ? rows in 3 chunks"; got != want {
		t.Errorf("describe() = %q, want %q", got, want)
	}
}

// TestBehindPolledPosition: a keepalive shows everything received applied,
// but the walsender has read only to its WAL end while the slot poll saw
// the source far ahead (a large transaction committed and still being
// decoded and sent): not caught up, and the lag says so, until a keepalive
// passes the polled position. Before, lag and /readyz said caught up for
// 15 s after a 1.5M-row streamed transaction's commit (helper-64). An idle
// source whose last records wait for a flush stays caught up.
func TestBehindPolledPosition(t *testing.T) {
	m := New("test")
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return now }
	m.started = now
	m.Snapshot(apply.SnapshotProgress{Tables: 1, TablesDone: 1, Done: true})
	m.Streaming(0x100)
	const mb = 1 << 20
	m.Position(apply.Position{ServerWALEnd: 100 * mb, CaughtUp: true})
	m.SetSlot(source.SlotState{Exists: true, CurrentLSN: 100*mb + 300})
	if lag, bytes := m.Lag(); lag != 0 || bytes != 0 {
		t.Errorf("idle source, its tail unflushed: lag %v, %d bytes; want caught up", lag, bytes)
	}
	m.SetSlot(source.SlotState{Exists: true, CurrentLSN: 400 * mb})
	now = now.Add(5 * time.Second)
	if lag, bytes := m.Lag(); lag != 5*time.Second || bytes != 300*mb {
		t.Errorf("source polled 300 MB ahead: lag %v, %d bytes", lag, bytes)
	}
	m.Position(apply.Position{ServerWALEnd: 150 * mb, CaughtUp: true})
	now = now.Add(5 * time.Second)
	if lag, bytes := m.Lag(); lag != 10*time.Second || bytes != 250*mb {
		t.Errorf("keepalive behind the polled position: lag %v, %d bytes", lag, bytes)
	}
	if ok, why := m.Ready(8 * time.Second); ok {
		t.Errorf("ready (%s) 10 s behind with an 8 s limit", why)
	}
	m.Position(apply.Position{ServerWALEnd: 400 * mb, CaughtUp: true})
	if lag, bytes := m.Lag(); lag != 0 || bytes != 0 {
		t.Errorf("keepalive past the polled position: lag %v, %d bytes; want caught up", lag, bytes)
	}
}
