package observe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/walmirror/walmirror/verify"
)

// TestVerifyHandler: POST /verify passes its parameters on, answers 200
// with the report, and the codes its doc names otherwise.
func TestVerifyHandler(t *testing.T) {
	m := New("test")
	h := m.Handler(time.Minute)
	post := func(q string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/verify"+q, nil))
		return w
	}
	if w := post(""); w.Code != http.StatusNotFound {
		t.Errorf("without a verifier: %d %s", w.Code, w.Body)
	}
	var got VerifyRequest
	release := make(chan struct{})
	m.SetVerify(func(ctx context.Context, req VerifyRequest) (*verify.Report, error) {
		got = req
		switch {
		case len(req.Tables) > 0 && req.Tables[0] == "slow.t":
			<-release
		case len(req.Tables) > 0 && req.Tables[0] == "late.t":
			return nil, fmt.Errorf("not there: %w", context.DeadlineExceeded)
		case len(req.Tables) > 0 && req.Tables[0] == "bad.t":
			return nil, errors.New("no\tpublication\nhere")
		}
		return &verify.Report{LSN: 0x100, From: 0xf0, Live: true, Tables: []verify.TableReport{{Table: "public.t", Method: verify.MethodMerge, SourceRows: 1, TargetRows: 1}}}, nil
	})
	// A comma inside a quoted name belongs to it (helper-141: 400).
	w := post(`?table=public.t,%22Odd%20x%22.y&table=k,%22a,b%22.c&examples=3&timeout=2m&snapshot_timeout=7s`)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"live": true`) || !strings.Contains(w.Body.String(), `"equal": true`) {
		t.Errorf("ok: %d %s", w.Code, w.Body)
	}
	if strings.Join(got.Tables, "|") != `public.t|"Odd x".y|k|"a,b".c` || got.Examples != 3 || got.CatchUp != 2*time.Minute || got.SnapshotWait != 7*time.Second {
		t.Errorf("request %+v", got)
	}
	for _, q := range []string{"?table=a.b.c", "?examples=-1", "?timeout=2h", "?timeout=x", "?snapshot_timeout=0s", "?snapshot_timeout=x"} {
		if w := post(q); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"error"`) {
			t.Errorf("%s: %d %s", q, w.Code, w.Body)
		}
	}
	if w := post("?table=late.t"); w.Code != http.StatusGatewayTimeout {
		t.Errorf("catch-up timeout: %d %s", w.Code, w.Body)
	}
	if w := post("?table=bad.t"); w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), `"no publication here"`) {
		t.Errorf("failure: %d %s", w.Code, w.Body)
	}
	done := make(chan int)
	go func() { done <- post("?table=slow.t").Code }()
	time.Sleep(50 * time.Millisecond)
	if w := post(""); w.Code != http.StatusConflict {
		t.Errorf("a second verification meanwhile: %d %s", w.Code, w.Body)
	}
	close(release)
	if code := <-done; code != http.StatusOK {
		t.Errorf("the slow one: %d", code)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/verify", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /verify: %d", w.Code)
	}
}
