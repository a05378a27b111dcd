package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/walmirror/walmirror/apply"
)

// lagRecorder collects source-commit-to-target-commit latencies, and how
// long each target commit took (the part of the lag the target's COMMIT
// itself accounts for).
type lagRecorder struct{ samples, commits []time.Duration }

func (l *lagRecorder) observe(c apply.CommitInfo) {
	for _, t := range c.SourceCommits {
		l.samples = append(l.samples, c.At.Sub(t))
	}
	l.commits = append(l.commits, c.Duration)
}

// LagReport is what --lag-report writes.
type LagReport struct {
	N     int     `json:"n"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// Target commits: how many, and percentiles of their COMMIT's time.
	Commits     int     `json:"commits"`
	CommitP50Ms float64 `json:"commit_p50_ms"`
	CommitP99Ms float64 `json:"commit_p99_ms"`
	CommitMaxMs float64 `json:"commit_max_ms"`
}

func (l *lagRecorder) write(path string) error {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	pct := func(samples []time.Duration) (n int, p50, p99, most float64) {
		s := slices.Clone(samples)
		slices.Sort(s)
		if n = len(s); n == 0 {
			return 0, 0, 0, 0
		}
		return n, ms(s[n/2]), ms(s[min(n-1, n*99/100)]), ms(s[n-1])
	}
	var r LagReport
	r.N, r.P50Ms, r.P99Ms, r.MaxMs = pct(l.samples)
	r.Commits, r.CommitP50Ms, r.CommitP99Ms, r.CommitMaxMs = pct(l.commits)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--lag-report: %w", err)
	}
	return nil
}

// startCPUProfile profiles the whole run into path; stop writes it out.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// copyPublisher is a target that can publish a consistent read-only copy of
// itself while replication goes on (the DuckDB sink).
type copyPublisher interface {
	PublishCopy(ctx context.Context, path string) error
	CheckPublishPath(ctx context.Context, path string) error
}

// publishCopies refreshes the published copy every interval (and once at
// start) until stop is called; stop waits for a refresh in progress and
// publishes once more, so the copy ends as the target does.
func publishCopies(parent context.Context, pub copyPublisher, path string, every time.Duration, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(parent)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		failing := false
		for {
			if err := pub.PublishCopy(ctx, path); err != nil && ctx.Err() == nil {
				if !failing { // once per run of failures, not per attempt
					log.Warn("publishing the read-only copy failed", "path", path, "err", err)
				}
				failing = true
			} else if err == nil {
				if failing {
					log.Info("publishing the read-only copy works again", "path", path)
				}
				failing = false
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
		if err := pub.PublishCopy(context.WithoutCancel(parent), path); err != nil {
			log.Warn("publishing the final read-only copy failed", "path", path, "err", err)
		}
	}
}
