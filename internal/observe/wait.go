package observe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/walmirror/walmirror/apply"
	"github.com/walmirror/walmirror/lsn"
)

// Limits of GET /wait's timeout parameter.
const (
	DefaultWaitTimeout = 30 * time.Second
	MaxWaitTimeout     = 10 * time.Minute
)

// WaitHandler serves GET /wait?lsn=X/Y&timeout=DURATION for read-your-writes
// from other processes and languages (X/Y: pg_current_wal_lsn() after the
// commit, pg_current_wal_insert_lsn() after one with synchronous_commit =
// off; see apply.Progress): 200 once everything the source
// committed up to X/Y is committed in the copy, 504 when timeout
// (DefaultWaitTimeout when absent, at most MaxWaitTimeout) passes first,
// 400 for a missing or malformed lsn or timeout, 503 when replication
// stopped first (the body says why) or the client went away. The body
// says the applied position.
func WaitHandler(p *apply.Progress) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		want, err := lsn.Parse(q.Get("lsn"))
		if err != nil || q.Get("lsn") == "" {
			http.Error(w, fmt.Sprintf("lsn %q: want a position like 0/16B3748 (from pg_current_wal_lsn())", q.Get("lsn")), http.StatusBadRequest)
			return
		}
		timeout := DefaultWaitTimeout
		if s := q.Get("timeout"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 || d > MaxWaitTimeout {
				http.Error(w, fmt.Sprintf("timeout %q: want a duration like 2s or 500ms, at most %s", s, MaxWaitTimeout), http.StatusBadRequest)
				return
			}
			timeout = d
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		err = p.WaitFor(ctx, want)
		switch {
		case err == nil:
			fmt.Fprintf(w, "applied %s (waited for %s)\n", p.Applied(), want)
		case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
			w.WriteHeader(http.StatusGatewayTimeout)
			fmt.Fprintf(w, "timeout after %s: applied %s, waiting for %s\n", timeout, p.Applied(), want)
		case errors.Is(err, apply.ErrStopped): // the run ended first
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err)
		default: // the client went away
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}
}
