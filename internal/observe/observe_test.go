package observe

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/schema"
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
	// A reconnect starts a new engine whose counts start again.
	m.Interrupted(nil)
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

// TestReadyChunkedCopy: streaming that starts with the initial copy still
// being made chunk by chunk is not ready (nor initial_copy_complete); the
// copy being complete (OnReady) is. Before, /readyz said 200 at the start
// of streaming with 60,000 of 300,000 rows copied.
func TestReadyChunkedCopy(t *testing.T) {
	m := New("test")
	var cfg apply.Config
	m.Hook(&cfg)
	cfg.OnStreaming(0x100)
	cfg.OnCommit(apply.CommitInfo{State: schema.State{LSN: 0x200, Copies: []schema.TableCopy{{RelID: 1}}}})
	if ok, why := m.Ready(time.Minute); ok || m.Summary().CopyComplete {
		t.Errorf("ready (%q) while the chunked initial copy runs", why)
	}
	st := schema.State{LSN: 0x300}
	cfg.OnCommit(apply.CommitInfo{State: st})
	cfg.OnReady(st)
	if ok, why := m.Ready(time.Minute); !ok || !m.Summary().CopyComplete {
		t.Errorf("not ready (%q) once the copy is complete", why)
	}
}
