package source

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// How long CREATE_REPLICATION_SLOT may wait before walmirror says what for,
// and how often it says so again. Variables for tests.
var (
	slotWaitNotice = 5 * time.Second
	slotWaitRepeat = 30 * time.Second
)

// slotBlockers lists the transactions a new slot waits for: PostgreSQL
// exports a consistent snapshot only once every transaction (with an xid,
// in any database, prepared ones included) that was running when the slot
// began has ended. $1 is when the creation began: transactions younger
// than it are not waited for.
const slotBlockers = `SELECT format('prepared transaction %L (database %s, prepared %s UTC)', gid, database,
		to_char(prepared AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'))
	FROM pg_catalog.pg_prepared_xacts WHERE prepared <= $1
	UNION ALL
	SELECT format('PID %s (%s, database %s, transaction open since %s UTC, %s)', pid,
		coalesce('application ' || quote_literal(nullif(application_name, '')), 'no application name'),
		coalesce(datname, '-'), to_char(xact_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), coalesce(state, 'state unknown'))
	FROM pg_catalog.pg_stat_activity
	WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() AND backend_type <> 'walsender' AND xact_start <= $1`

// noticeSlotWait logs, while a slot is being created, which source
// transactions the creation waits for: without it a run waits silently
// for as long as an idle-in-transaction session or a forgotten prepared
// transaction lives. The returned function stops it (and waits for it).
func (s *Source) noticeSlotWait(ctx context.Context) (stop func()) {
	began := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTimer(slotWaitNotice)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			blockers, err := s.slotBlockers(ctx, began)
			select {
			case <-done:
				return // created meanwhile: nothing to say
			default:
			}
			waited := time.Since(began).Round(time.Second)
			switch {
			case err != nil:
				s.log.Warn("creating the replication slot waits for transactions open on the source to end (could not list them)",
					"slot", s.cfg.Slot, "waited", waited, "err", err)
			case len(blockers) == 0:
				s.log.Warn("creating the replication slot waits for transactions open on the source to end",
					"slot", s.cfg.Slot, "waited", waited)
			default:
				s.log.Warn("creating the replication slot waits for transactions open on the source to end: "+
					"PostgreSQL exports the initial snapshot only once every transaction running when the slot began has ended "+
					"(commit or roll them back; COMMIT PREPARED or ROLLBACK PREPARED for prepared ones)",
					"slot", s.cfg.Slot, "waited", waited, "waiting_for", strings.Join(blockers, "; "))
			}
			t.Reset(slotWaitRepeat)
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// slotBlockers runs slotBlockers on a session of its own (the catalog
// session may be in use).
func (s *Source) slotBlockers(ctx context.Context, began time.Time) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pcfg, err := connConfig(&s.cfg, false)
	if err != nil {
		return nil, err
	}
	ccfg, _ := pgx.ParseConfig("")
	ccfg.Config = *pcfg
	conn, err := pgx.ConnectConfig(ctx, ccfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, slotBlockers+" ORDER BY 1", began)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// OldTransactions lists the transactions (with an xid, in any database,
// prepared ones included) open on the source since before began: they
// hold every slot's restart point, so the WAL from their start stays,
// however far walmirror has applied and confirmed.
func (a *Admin) OldTransactions(ctx context.Context, began time.Time) ([]string, error) {
	ctx, cancel := a.deadline(ctx)
	defer cancel()
	rows, err := a.conn.Query(ctx, slotBlockers+" ORDER BY 1", began)
	if err != nil {
		return nil, classify("list open transactions", timeoutCause(ctx, err))
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
