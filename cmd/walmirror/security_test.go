package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/walmirror/walmirror/internal/mirrortest"
	"github.com/walmirror/walmirror/testenv"
)

// TestTLSVerifyFull: a source that accepts only TLS, with a certificate from
// a CA of its own. sslmode=verify-full with that CA replicates, and every
// connection walmirror opened (the replication one too) used TLS; another CA,
// or a host name the certificate does not name, is refused before anything
// is created.
func TestTLSVerifyFull(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	var (
		mu    sync.Mutex
		lines []string
	)
	tlsServer := testenv.StartT(t, testenv.Options{
		TLS:      true,
		Settings: map[string]string{"log_connections": "on"},
		Logf: func(format string, args ...any) {
			mu.Lock()
			lines = append(lines, fmt.Sprintf(format, args...))
			mu.Unlock()
		},
	})
	db, err := tlsServer.CreateDatabase(ctx, "tls")
	if err != nil {
		t.Fatal(err)
	}
	if err := tlsServer.Exec(ctx, db, `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');`); err != nil {
		t.Fatal(err)
	}
	dsn := tlsServer.DSN(db) // sslmode=verify-full&sslrootcert=<the server's CA>
	if !strings.Contains(dsn, "sslmode=verify-full") || tlsServer.CACertPath() == "" {
		t.Fatalf("DSN of a TLS server: %s", dsn)
	}
	// The server refuses plaintext, so a connection that works used TLS.
	plain := withQuery(dsn, "sslmode", "disable")
	if _, err := mirrortest.SourceRows(ctx, plain, "SELECT 1"); err == nil || !strings.Contains(err.Error(), "no encryption") {
		t.Fatalf("a plaintext connection was not refused: %v", err)
	}

	// Wrong CA first, so the slot and publication can only come from it.
	t.Run("wrong CA", func(t *testing.T) {
		otherCA, err := testenv.NewCA(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		refused(t, tlsServer, db, withQuery(dsn, "sslrootcert", otherCA), "certificate signed by unknown authority")
	})
	t.Run("host name not in the certificate", func(t *testing.T) {
		// The certificate names 127.0.0.1 and localhost; this machine's
		// host name often resolves to 127.0.0.1 too.
		name, _ := os.Hostname()
		addrs, _ := net.LookupHost(name)
		if name == "" || name == "localhost" || !slices.Contains(addrs, "127.0.0.1") {
			t.Skipf("host name %q does not resolve to 127.0.0.1 (%v)", name, addrs)
		}
		refused(t, tlsServer, db, withHost(dsn, name), "certificate is valid for")
	})

	path := filepath.Join(t.TempDir(), "copy.db")
	mark := logMark(&mu, &lines)
	r := walmirror(t, nil, "run", "--source", dsn, "--target", "sqlite:"+path, "--slot", "s_tls", "--stop-at-lsn", "now")
	if r.code != 0 {
		t.Fatalf("run with sslmode=verify-full exited %d:\n%s", r.code, r.stderr)
	}
	// The host name in the certificate (DNS SAN) works as well as its IP.
	if err := tlsServer.Exec(ctx, db, `INSERT INTO t VALUES (3, 'c')`); err != nil {
		t.Fatal(err)
	}
	r = walmirror(t, nil, "run", "--source", withHost(dsn, "localhost"), "--target", "sqlite:"+path, "--slot", "s_tls", "--stop-at-lsn", "now")
	if r.code != 0 {
		t.Fatalf("run with sslmode=verify-full and host localhost exited %d:\n%s", r.code, r.stderr)
	}
	want, err := mirrortest.SourceRows(ctx, dsn, "SELECT id, v FROM t")
	if err != nil {
		t.Fatal(err)
	}
	got, err := mirrortest.SQLiteRows(ctx, path, "SELECT id, v FROM t")
	if err != nil {
		t.Fatal(err)
	}
	if d := mirrortest.Diff(want, got); d != "" || len(want) != 3 {
		t.Fatalf("copy over TLS: %s (source %q)", d, want)
	}

	// The server logs each authorised connection and whether it used TLS:
	// walmirror's walsender connections must be among them, all with TLS.
	mu.Lock()
	logged := lines[mark:]
	mu.Unlock()
	var replication, ordinary int
	for _, l := range logged {
		if !strings.Contains(l, "connection authorized:") {
			continue
		}
		if !strings.Contains(l, "SSL enabled") {
			t.Errorf("a connection without TLS: %s", l)
		}
		if strings.Contains(l, "replication connection authorized:") {
			replication++
		} else {
			ordinary++
		}
	}
	if replication < 2 || ordinary < 2 {
		t.Errorf("saw %d replication and %d ordinary TLS connections, want at least 2 of each (one per run); server log:\n%s",
			replication, ordinary, strings.Join(logged, "\n"))
	}
	t.Logf("%d replication and %d ordinary connections, all TLS", replication, ordinary)
}

// refused runs walmirror with a source DSN that must fail TLS verification:
// a non-zero exit, an error line naming the certificate problem, and nothing
// created on either side.
func refused(t *testing.T, srv *testenv.Server, db, dsn, why string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "copy.db")
	r := walmirror(t, nil, "run", "--source", dsn, "--target", "sqlite:"+path, "--slot", "s_refused", "--stop-at-lsn", "now")
	line := lastLine(r.stderr)
	if r.code == 0 {
		t.Fatalf("exit code 0; stderr:\n%s", r.stderr)
	}
	t.Logf("refused: %s", line)
	if !strings.HasPrefix(line, "walmirror: ") || !strings.Contains(line, "certificate") || !strings.Contains(line, why) {
		t.Errorf("error line %q does not say the certificate failed verification (%q)", line, why)
	}
	if strings.Contains(r.stderr, srv.Password()) {
		t.Errorf("stderr shows the password:\n%s", r.stderr)
	}
	if st := walmirror(t, nil, "status", "--target", "sqlite:"+path); st.code == 0 {
		t.Errorf("the refused run left state in the target:\n%s", st.stdout)
	}
	if err := srv.Exec(context.Background(), db, `DO $$ BEGIN
		IF EXISTS (SELECT FROM pg_replication_slots) THEN RAISE 'a slot was created'; END IF;
		IF EXISTS (SELECT FROM pg_publication) THEN RAISE 'a publication was created'; END IF; END $$`); err != nil {
		t.Error(err)
	}
}

// withQuery sets one query parameter of a URL DSN.
func withQuery(dsn, key, value string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		panic(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// withHost replaces the host of a URL DSN, keeping the port.
func withHost(dsn, host string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		panic(err)
	}
	u.Host = net.JoinHostPort(host, u.Port())
	return u.String()
}

// logMark is the number of server log lines seen so far.
func logMark(mu *sync.Mutex, lines *[]string) int {
	mu.Lock()
	defer mu.Unlock()
	return len(*lines)
}
