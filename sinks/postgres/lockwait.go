package postgres

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// A write waiting for a lock another session holds on the target (a
// reader's LOCK TABLE, a migration left open in a transaction) stalls the
// whole copy, and nothing said why: progress lines showed no transactions
// and a growing lag (helper-110). The sink notes when each call that may
// wait begins; a watcher of its own, past lockWarnAfter, asks the target on
// a connection of its own whether the sink's session waits for a lock and
// who holds it, and warns naming them (again each lockWarnEvery while it
// lasts), as the source side does for its own locks.

var (
	lockWarnAfter = 30 * time.Second // a call's wait before the first warning
	lockWarnEvery = time.Minute      // between warnings of one wait
	lockPoll      = 5 * time.Second  // how often the watcher looks
)

// lockWatch is the state the watcher reads: when the call in progress
// began (0: none) and the session's backend.
type lockWatch struct {
	since atomic.Int64
	pid   atomic.Uint32
	stop  chan struct{}
	done  chan struct{}
}

// busy marks a call that may wait for a lock; the returned func ends it.
func (s *Sink) busy() func() {
	if s.conn != nil {
		s.watch.pid.Store(s.conn.PgConn().PID())
	}
	s.watch.since.Store(time.Now().UnixNano())
	return func() { s.watch.since.Store(0) }
}

// startWatch starts the watcher; stopWatch (Close) ends it and waits.
func (s *Sink) startWatch() {
	w := &s.watch
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(w.done)
		tick := time.NewTicker(lockPoll)
		defer tick.Stop()
		var warnedFor int64
		var warnedAt time.Time
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			began := w.since.Load()
			if began == 0 || time.Since(time.Unix(0, began)) < lockWarnAfter || began == warnedFor && time.Since(warnedAt) < lockWarnEvery {
				continue
			}
			waited, holders := s.lockHolders(w.pid.Load())
			if holders == "" {
				continue
			}
			s.log.Warn("the target has waited for a lock another session holds: the copy is stalled until it is released (end that session's transaction, or let it finish)",
				"waited", waited, "held_by", holders)
			warnedFor, warnedAt = began, time.Now()
		}
	}()
}

func (s *Sink) stopWatch() {
	if s.watch.stop != nil {
		close(s.watch.stop)
		<-s.watch.done
		s.watch.stop = nil
	}
}

// lockHolders asks the target, on a connection of its own, whether backend
// pid waits for a lock, for how long, and which sessions hold it ("" when
// it does not wait, or the target cannot say).
func (s *Sink) lockHolders(pid uint32) (waited time.Duration, holders string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, s.cfg.Copy())
	if err != nil {
		return 0, ""
	}
	defer conn.Close(context.Background())
	var secs float64
	err = conn.QueryRow(ctx, `SELECT extract(epoch FROM now() - a.state_change)::float8,
			(SELECT string_agg(format('pid %s (%s%s, %s for %s: %s)', b.pid, b.usename, coalesce(', ' || nullif(b.application_name, ''), ''),
				b.state, date_trunc('second', now() - coalesce(b.xact_start, b.query_start)), left(regexp_replace(b.query, '\s+', ' ', 'g'), 100)), '; ' ORDER BY b.pid)
			FROM pg_catalog.pg_stat_activity b WHERE b.pid = ANY (pg_catalog.pg_blocking_pids(a.pid)))
		FROM pg_catalog.pg_stat_activity a WHERE a.pid = $1 AND a.wait_event_type = 'Lock'`, int64(pid)).Scan(&secs, &holders)
	if err != nil {
		return 0, ""
	}
	return time.Duration(secs * float64(time.Second)).Round(time.Second), holders
}
