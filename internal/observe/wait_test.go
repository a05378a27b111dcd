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

// TestWaitEndpoint: /wait answers 200 for an applied position, 504 when
// the timeout passes first, 400 for a bad lsn or timeout, and wakes when a
// commit or a caught-up keepalive reaches the position; hooks set before
// Hook still run.
func TestWaitEndpoint(t *testing.T) {
	m := New("test")
	var cfg apply.Config
	earlier := 0
	cfg.OnPosition = func(apply.Position) { earlier++ }
	m.Hook(&cfg)
	h := m.Handler(time.Minute)
	get := func(q string) (int, string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/wait?"+q, nil))
		return w.Code, w.Body.String()
	}
	for _, q := range []string{"", "lsn=", "lsn=zz", "lsn=0/10&timeout=soon", "lsn=0/10&timeout=-1s", "lsn=0/10&timeout=1h"} {
		if code, body := get(q); code != http.StatusBadRequest {
			t.Errorf("/wait?%s = %d %q, want 400", q, code, body)
		}
	}
	if code, body := get("lsn=0/100&timeout=20ms"); code != http.StatusGatewayTimeout || !strings.Contains(body, "0/00000100") {
		t.Errorf("/wait before anything applied = %d %q, want 504", code, body)
	}
	cfg.OnStreaming(0x100)
	cfg.OnReady(schema.State{LSN: 0x100})
	if code, body := get("lsn=0/100&timeout=1s"); code != http.StatusOK {
		t.Errorf("/wait for the streaming start = %d %q, want 200", code, body)
	}
	got := make(chan int, 2)
	go func() { c, _ := get("lsn=0/200&timeout=10s"); got <- c }()
	go func() { c, _ := get("lsn=0/300&timeout=10s"); got <- c }()
	time.Sleep(20 * time.Millisecond)
	cfg.OnCommit(apply.CommitInfo{State: schema.State{LSN: 0x250}})
	if c := <-got; c != http.StatusOK {
		t.Errorf("/wait woken by a commit = %d", c)
	}
	cfg.OnPosition(apply.Position{ServerWALEnd: 0x300, CaughtUp: true})
	if c := <-got; c != http.StatusOK {
		t.Errorf("/wait woken by a caught-up keepalive = %d", c)
	}
	if earlier != 1 {
		t.Errorf("the OnPosition set before Hook ran %d times, want 1", earlier)
	}
	// The run ends: a waiter is answered 503 at once, saying why.
	// The body travels with the code: logging it from the goroutine after
	// the send raced the test's end (a panic in a CI run on PG18).
	type answer struct {
		code int
		body string
	}
	ended := make(chan answer, 1)
	go func() { c, body := get("lsn=0/400&timeout=10s"); ended <- answer{c, body} }()
	time.Sleep(20 * time.Millisecond)
	cfg.OnStop(apply.ErrSlotLost)
	select {
	case a := <-ended:
		if a.code != http.StatusServiceUnavailable {
			t.Errorf("/wait after the run ended = %d %q, want 503", a.code, a.body)
		}
	case <-time.After(5 * time.Second):
		t.Error("/wait still waiting after the run ended")
	}
	if code, body := get("lsn=0/400&timeout=10s"); code != http.StatusServiceUnavailable || !strings.Contains(body, "replication slot lost") {
		t.Errorf("/wait after the run ended = %d %q, want 503 naming the error", code, body)
	}
}
