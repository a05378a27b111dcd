package observe

import (
	"context"
	"log/slog"
	"time"
)

// LogProgress logs a progress line every interval until ctx is done: rates
// since the previous line, lag, position; during the initial copy, its
// progress instead.
func (m *Monitor) LogProgress(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	prev, prevAt := m.Summary(), m.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s, at := m.Summary(), m.now()
		secs := at.Sub(prevAt).Seconds()
		if !s.CopyComplete {
			if s.Snapshot.Tables > 0 {
				log.Info("progress: initial copy", "tables_done", s.Snapshot.TablesDone, "tables", s.Snapshot.Tables,
					"table", s.Snapshot.Table, "rows", s.Snapshot.Rows,
					"rows_per_s", rate(s.SnapshotRows-prev.SnapshotRows, secs))
			}
		} else {
			log.Info("progress", "tx_per_s", rate(s.Transactions-prev.Transactions, secs),
				"rows_per_s", rate(s.Rows-prev.Rows, secs), "lag", s.Lag.Round(time.Millisecond),
				"lag_bytes", s.LagBytes, "applied", s.Applied, "transactions", s.Transactions, "rows", s.Rows)
		}
		prev, prevAt = s, at
	}
}

// LogSummary logs the run's totals, once, at stop.
func (m *Monitor) LogSummary(log *slog.Logger) {
	s := m.Summary()
	args := []any{"uptime", s.Uptime.Round(time.Millisecond), "transactions", s.Transactions, "rows", s.Rows,
		"inserts", s.Inserts, "updates", s.Updates, "deletes", s.Deletes, "truncates", s.Truncates,
		"target_commits", s.Commits, "reconnects", s.Reconnects}
	if s.Applied != 0 { // 0: the run ended before streaming (nothing to do)
		args = append(args, "applied", s.Applied)
	}
	args = append(args, "lag", s.Lag.Round(time.Millisecond))
	if s.SnapshotRows > 0 {
		args = append(args, "initial_copy_rows", s.SnapshotRows)
	}
	if !s.LastCommit.IsZero() {
		args = append(args, "last_source_commit", s.LastCommit.UTC().Format(time.RFC3339Nano))
	}
	log.Info("summary", args...)
}

func rate(n int64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(int64(float64(n)/secs*10)) / 10
}
