package observe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/verify"
)

// VerifyRequest is what POST /verify asks for.
type VerifyRequest struct {
	Tables   []string      // schema.table names; empty: every published table
	Examples int           // differing rows named per table and kind; 0: the default
	CatchUp  time.Duration // how long the copy may take to reach the comparison's position
	// SnapshotWait: how long taking the source's snapshot may wait for
	// transactions open on the source (verify --snapshot-timeout); 0: as
	// long as the engine may be held.
	SnapshotWait time.Duration
	// Repair: copy what differs again through this walmirror and verify
	// it again (walmirror verify --sidecar --repair); RepairRows is
	// verify --repair-rows.
	Repair     bool
	RepairRows int
}

// VerifyFunc performs one verification of the copy this process writes.
type VerifyFunc func(ctx context.Context, req VerifyRequest) (*verify.Report, error)

// MaxVerifyCatchUp bounds POST /verify's timeout parameter.
const MaxVerifyCatchUp = time.Hour

// SetVerify makes the Handler serve POST /verify with fn.
func (m *Monitor) SetVerify(fn VerifyFunc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.verify = fn
}

// VerifyHandler serves POST
// /verify?table=schema.t&examples=N&timeout=D&snapshot_timeout=D&repair=1&repair_rows=N: the
// running walmirror compares its copy with the source as of one source
// position (verify.RunLive), with repair copies what differs again and
// verifies it again (verify.RepairLive), and answers 200 with the report
// as walmirror verify --json prints it (equal or not, the repair
// included). Otherwise the body is
// {"equal": false, "error": "..."}: 400 for a bad parameter, 409 while
// another verification runs, 504 when the copy did not reach the
// comparison's position within timeout (DefaultCatchUp when absent), 500
// when it could not verify. One verification runs at a time; it ends when
// the client goes away.
func VerifyHandler(fn func() VerifyFunc) http.HandlerFunc {
	var running sync.Mutex
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var req VerifyRequest
		for _, v := range q["table"] {
			for _, name := range source.SplitTableNames(v) {
				if name = strings.TrimSpace(name); name == "" {
					continue
				}
				if _, err := source.ParseTableName(name); err != nil {
					verifyError(w, http.StatusBadRequest, fmt.Sprintf("table %q: %v", name, err))
					return
				}
				req.Tables = append(req.Tables, name)
			}
		}
		if s := q.Get("examples"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > 10_000 {
				verifyError(w, http.StatusBadRequest, fmt.Sprintf("examples %q: want a count from 0 to 10000", s))
				return
			}
			req.Examples = n
		}
		if s := q.Get("timeout"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 || d > MaxVerifyCatchUp {
				verifyError(w, http.StatusBadRequest, fmt.Sprintf("timeout %q: want a duration like 30s or 5m, at most %s", s, MaxVerifyCatchUp))
				return
			}
			req.CatchUp = d
		}
		if s := q.Get("snapshot_timeout"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				verifyError(w, http.StatusBadRequest, fmt.Sprintf("snapshot_timeout %q: want a duration like 5s or 1m", s))
				return
			}
			req.SnapshotWait = d
		}
		if s := q.Get("repair"); s != "" {
			b, err := strconv.ParseBool(s)
			if err != nil {
				verifyError(w, http.StatusBadRequest, fmt.Sprintf("repair %q: want 1 or 0", s))
				return
			}
			req.Repair = b
		}
		if s := q.Get("repair_rows"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				verifyError(w, http.StatusBadRequest, fmt.Sprintf("repair_rows %q: want a count, 0 or more", s))
				return
			}
			req.RepairRows = n
		}
		f := fn()
		if f == nil {
			verifyError(w, http.StatusNotFound, "this walmirror does not verify its copy")
			return
		}
		if !running.TryLock() {
			verifyError(w, http.StatusConflict, verify.ErrBusy.Error())
			return
		}
		defer running.Unlock()
		rep, err := f(r.Context(), req)
		switch {
		case err == nil:
			w.Header().Set("Content-Type", "application/json")
			_ = rep.WriteJSON(w)
		case r.Context().Err() != nil:
			w.WriteHeader(http.StatusServiceUnavailable) // the client went away
		case errors.Is(err, verify.ErrBusy):
			verifyError(w, http.StatusConflict, err.Error())
		case errors.Is(err, context.DeadlineExceeded):
			verifyError(w, http.StatusGatewayTimeout, err.Error())
		default:
			verifyError(w, http.StatusInternalServerError, err.Error())
		}
	}
}

func verifyError(w http.ResponseWriter, code int, msg string) {
	msg = strings.Join(strings.FieldsFunc(msg, func(r rune) bool { return r == '\n' || r == '\t' }), " ")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"equal": false, "error": msg})
}
