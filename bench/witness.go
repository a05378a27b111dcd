package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// witness is a decode-only consumer of a slot of its own that follows the
// source while a walmirror run does, recording for every transaction the
// time from its source commit to its Commit message arriving here: what the
// server (decoding, sending) and the machine's scheduling add before any
// consumer can apply a transaction. Measured in the same run as
// walmirror's lag, it tells the source's part of that lag from
// walmirror's (a busy machine moves both).
type witness struct {
	e        *env
	db, slot string
	cancel   context.CancelFunc
	done     chan struct{}
	samples  []time.Duration
	err      error
}

// startWitness creates the witness's slot (before the workload starts, so it
// sees every transaction) and starts following it.
func (e *env) startWitness(ctx context.Context, db, slot string) (*witness, error) {
	if err := e.src.Exec(ctx, db, fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'pgoutput')`, slot)); err != nil {
		return nil, fmt.Errorf("lag witness slot: %w", err)
	}
	conn, err := e.replicate(ctx, db, slot)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &witness{e: e, db: db, slot: slot, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer conn.Close(context.WithoutCancel(ctx))
		w.err = w.follow(wctx, conn)
		if wctx.Err() != nil {
			w.err = nil // stopped
		}
	}()
	return w, nil
}

// follow receives until ctx ends, timing each Commit message.
func (w *witness) follow(ctx context.Context, conn *pgconn.PgConn) error {
	return follow(ctx, conn,
		func(pglogrepl.PrimaryKeepaliveMessage) (bool, error) { return false, nil },
		func(wal []byte) error {
			if len(wal) == 0 || wal[0] != 'C' {
				return nil // only Commit messages are timed
			}
			m, err := pglogrepl.Parse(wal)
			if c, ok := m.(*pglogrepl.CommitMessage); ok {
				w.samples = append(w.samples, time.Since(c.CommitTime))
			}
			return err
		})
}

// stop ends the witness, drops its slot and reports its percentiles.
func (w *witness) stop(ctx context.Context) (LagReport, error) {
	w.cancel()
	<-w.done
	var r LagReport
	s := slices.Clone(w.samples)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	if r.N = len(s); r.N > 0 {
		r.P50Ms, r.P99Ms, r.MaxMs = ms(s[r.N/2]), ms(s[min(r.N-1, r.N*99/100)]), ms(s[r.N-1])
	}
	// The walsender may still hold the slot for a moment after the
	// connection closed.
	var err error
	for range 50 {
		if err = w.e.src.Exec(ctx, w.db, fmt.Sprintf(`SELECT pg_drop_replication_slot('%s')`, w.slot)); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return r, errors.Join(w.err, err)
}
