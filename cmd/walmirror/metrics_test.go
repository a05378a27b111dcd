package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads /metrics and parses it with Prometheus's own text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the value of the metric name whose labels include labels
// ("k=v" pairs); -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			found := false
			for _, lp := range m.Label {
				found = found || lp.GetName() == k && lp.GetValue() == v
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// eventually polls cond for up to 20 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var servingMetrics = regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)

// TestMetrics: /readyz is 503 while the initial copy is held up (a
// transaction holding a lock on the table delays the slot's snapshot) and
// 200 after; /metrics, parsed as Prometheus
// does, shows rows applied by operation growing and the lag falling to 0
// when the source is idle; progress and summary lines are logged.
func TestMetrics(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 100) i;`)
	slot := "s_" + db
	locker, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE t IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	// The lock gives the transaction an xid: creating the slot waits for it
	// to end, and so does the initial copy.
	stop, logPath := startRunUntil(t, "created publication", "--source", dsn, "--target", "sqlite:"+path, "--slot", slot,
		"--metrics-addr", "127.0.0.1:0", "--progress-interval", "500ms", "--slot-poll-interval", "200ms", "--max-retained-wal", "1kB")
	logs, _ := os.ReadFile(logPath)
	match := servingMetrics.FindSubmatch(logs)
	if match == nil {
		t.Fatalf("no 'serving metrics' line:\n%s", logs)
	}
	addr := string(match[1])

	if code, body := get(t, "http://"+addr+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d %q", code, body)
	}
	time.Sleep(200 * time.Millisecond) // into the slot's creation
	code, body := get(t, "http://"+addr+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "initial copy") {
		t.Errorf("/readyz during the initial copy = %d %q", code, body)
	}
	m := scrape(t, addr)
	if v := value(m, "walmirror_initial_copy_complete"); v != 0 {
		t.Errorf("walmirror_initial_copy_complete = %v during the copy", v)
	}
	if err := tx.Commit(ctx); err != nil { // the copy goes on
		t.Fatal(err)
	}
	eventually(t, "/readyz 200", func() bool { code, _ := get(t, "http://"+addr+"/readyz"); return code == 200 })
	m = scrape(t, addr)
	if v := value(m, "walmirror_initial_copy_complete"); v != 1 {
		t.Errorf("walmirror_initial_copy_complete = %v after the copy", v)
	}
	if v := value(m, "walmirror_initial_copy_rows_total"); v != 100 {
		t.Errorf("walmirror_initial_copy_rows_total = %v, want 100", v)
	}

	for i := range 3 {
		if err := server.Exec(ctx, db, fmt.Sprintf(`INSERT INTO t SELECT i, 'n' FROM generate_series(%d, %d) i;
			UPDATE t SET v = 'u' WHERE id BETWEEN %d AND %d; DELETE FROM t WHERE id = %d`, 1000+i*20, 1019+i*20, 1+i*10, 10+i*10, 50+i)); err != nil {
			t.Fatal(err)
		}
		want := float64(20 * (i + 1))
		eventually(t, "rows applied", func() bool {
			m := scrape(t, addr)
			return value(m, "walmirror_rows_applied_total", "op=insert") == want &&
				value(m, "walmirror_rows_applied_total", "op=update") == float64(10*(i+1)) &&
				value(m, "walmirror_rows_applied_total", "op=delete") == float64(i+1)
		})
	}
	// Idle: the lag falls to 0 (keepalives show everything applied).
	eventually(t, "lag 0 when idle", func() bool {
		m := scrape(t, addr)
		return value(m, "walmirror_lag_seconds") == 0 && value(m, "walmirror_lag_bytes") == 0
	})
	eventually(t, "slot metrics", func() bool {
		m := scrape(t, addr)
		return value(m, "walmirror_slot_wal_status", "status=reserved") == 1 && value(m, "walmirror_slot_active") == 1 &&
			value(m, "walmirror_slot_retained_wal_bytes") > 0
	})
	m = scrape(t, addr)
	for name, min := range map[string]float64{
		"walmirror_transactions_applied_total":            3,
		"walmirror_target_commits_total":                  1,
		"walmirror_target_commit_duration_seconds":        1,
		"walmirror_reconnects_total":                      0,
		"walmirror_applied_lsn_bytes":                     1,
		"walmirror_last_applied_commit_timestamp_seconds": float64(time.Now().Add(-time.Minute).Unix()),
		"walmirror_build_info":                            1,
		"walmirror_slot_max_retained_wal_bytes":           1024,
	} {
		if v := value(m, name); v < min {
			t.Errorf("%s = %v, want at least %v", name, v, min)
		}
	}
	// A progress line every 500ms: the steps above can all fit in less.
	eventually(t, "a progress line", func() bool {
		logs, _ := os.ReadFile(logPath)
		return strings.Contains(string(logs), "msg=progress ")
	})
	out := stop()
	for _, want := range []string{`msg=progress `, `msg=summary `, "rows=93 ", "inserts=60 ", "initial_copy_rows=100",
		"retains more WAL than --max-retained-wal"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
	// Source transactions only: before PostgreSQL 17 the publication poll's
	// flush of idle WAL is a transaction of its own (a transactional
	// walmirror.flush message), which is not one of them (seen as 4 and 5).
	if !strings.Contains(out, "transactions=3 ") {
		t.Errorf("the log lacks transactions=3:\n%s", out)
	}
	dropSlotAtEnd(t, db, slot)
}

// TestMetricsSlotAtStart: the slot's metrics follow the start of
// streaming, not the slot poll's interval. The poll at the start runs
// before a new copy's slot exists, and before a restarted one's walsender
// takes it: /metrics said the slot was missing, or inactive, for the first
// --slot-poll-interval (15 s by default), and an alert on either fired at
// every deploy (helper-122). The interval here is an hour: only the poll
// at the start of streaming can show the slot.
func TestMetricsSlotAtStart(t *testing.T) {
	needServer(t)
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY)`)
	slot := "s_" + db
	dropSlotAtEnd(t, db, slot)
	path := filepath.Join(t.TempDir(), "copy.db")
	for _, run := range []string{"new copy", "restart"} {
		stop, logPath := startRunUntil(t, "msg=streaming", "--source", dsn, "--target", "sqlite:"+path, "--slot", slot,
			"--metrics-addr", "127.0.0.1:0", "--slot-poll-interval", "1h")
		logs, _ := os.ReadFile(logPath)
		match := servingMetrics.FindSubmatch(logs)
		if match == nil {
			t.Fatalf("%s: no 'serving metrics' line:\n%s", run, logs)
		}
		addr := string(match[1])
		eventually(t, run+": the slot reserved and active in /metrics", func() bool {
			m := scrape(t, addr)
			return value(m, "walmirror_slot_wal_status", "status=reserved") == 1 && value(m, "walmirror_slot_wal_status", "status=missing") == 0 &&
				value(m, "walmirror_slot_active") == 1
		})
		stop()
	}
}
