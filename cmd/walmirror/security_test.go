package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		addrs, _ := net.DefaultResolver.LookupHost(lctx, name)
		cancel()
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

// hostileStrings are values crafted to break a writer that builds SQL or
// COPY text by hand: quotes, comment and dollar-quote openers, backslash
// escapes, COPY's NULL and end-of-data markers, placeholder lookalikes,
// control characters and unicode that reorders or hides text.
var hostileStrings = []string{
	`'; DROP TABLE canary; --`,
	`"; DROP TABLE canary; --`,
	`'); DROP TABLE canary; CREATE TABLE pwned (x int); --`,
	`'' OR 1=1; --`,
	`it's a "quote", a \backslash\ and a trailing \`,
	`/* comment */ SELECT 1; -- trailing`,
	`*/ DROP TABLE canary; /*`,
	`$$; DROP TABLE canary; $$`,
	`$tag$ x $tag$`,
	`E'\\x00'`,
	`\x00`,
	`\000`,
	`\N`,
	`\.`,
	"line1\n\\.\nline3",
	"tab\there\r\nCR LF\rlone CR\n",
	"NULL",
	"null",
	"",
	" ",
	`\`,
	`\\`,
	`\'`,
	`''`,
	`"`,
	`""`,
	"?", "$1", "%s %d %%", ":name", "@p1",
	"{a,b}", `{"x",NULL}`, "(1,2)", `[1,2]`,
	"\x01\x02\x1b[31mred\x1b[0m\x1f\x7f",
	"🦆 emoji 👩‍👩‍👧 ZWJ",
	"\u202eRTL override\u202c \u200fRLM\u200e \ufeffBOM \u2028LS\u2029PS",
	"é e\u0301 ß ﬁ Ⅻ 中文 עברית العربية",
}

// hostileRow is one row of table h.
type hostileRow struct {
	k, t, vc, odd *string
	jj            *string // json text, kept byte for byte
	j             any     // marshalled to JSON
	b             []byte
	a             []*string
}

func str(s string) *string { return &s }

// hostileRowFor builds row i from the strings, keyed by key.
func hostileRowFor(i int, key string, long string) hostileRow {
	h := func(n int) string { return hostileStrings[(i+n)%len(hostileStrings)] }
	r := hostileRow{
		k:   str(key),
		t:   str(h(1)),
		vc:  str(h(2)),
		odd: str(h(3)),
		j:   map[string]any{"k": key, h(4): h(5), "arr": []any{h(6), nil, "NULL", `\u0000`}, "n": 1.5e300},
		b:   append([]byte{0, '\'', '\\', 0, 'x'}, []byte(h(7)+"\x00")...),
		a:   []*string{str(h(8)), nil, str("NULL"), str(`a,b`), str(`{}`), str(h(9)), str(`"`), str("")},
	}
	// json (unlike jsonb) keeps its text: \u0000, duplicate keys, spacing.
	s, _ := json.Marshal(h(10))
	r.jj = str(`{"nul": "\u0000",  "dup": 1, "dup" : 2, "s":` + string(s) + "\n}")
	switch i % 5 {
	case 0:
		r.t = str(long) // stored out of line: later updates leave it unsent
	case 3:
		r.t, r.vc, r.odd, r.j, r.b, r.a, r.jj = nil, nil, nil, nil, nil, nil, nil
	}
	return r
}

// hostileTable is the source table; the canary is replicated too, and every
// payload tries to drop it.
const hostileTable = `
	CREATE TABLE h (k text PRIMARY KEY, t text, vc varchar(500000), j jsonb, b bytea, a text[], "we""ird'; --" text, jj json);
	ALTER TABLE h ALTER COLUMN t SET STORAGE EXTERNAL;
	CREATE TABLE canary (id int PRIMARY KEY, note text);
	INSERT INTO canary VALUES (1, 'still here');`

func insertHostile(ctx context.Context, tx pgx.Tx, r hostileRow) error {
	var j any
	if r.j != nil {
		b, err := json.Marshal(r.j)
		if err != nil {
			return err
		}
		j = string(b)
	}
	_, err := tx.Exec(ctx, `INSERT INTO h VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8::json)`, r.k, r.t, r.vc, j, r.b, r.a, r.odd, r.jj)
	return err
}

// longHostile is a value far over the TOAST threshold, incompressible, with
// the hostile strings spread through it.
func longHostile(seed uint64) string {
	rng := rand.New(rand.NewPCG(seed, 1))
	var b strings.Builder
	for b.Len() < 300_000 {
		for range 40 {
			b.WriteByte(byte(' ' + rng.IntN(95)))
		}
		b.WriteString(hostileStrings[rng.IntN(len(hostileStrings))])
	}
	return b.String()
}

// hostileTarget is one kind of target and how to read it.
type hostileTarget struct {
	name, target string
	rows         func(query string) ([]string, error)
	// queries of the copy, each paired with the source query it must equal
	compare [][2]string
	objects string   // lists the tables (and views, triggers) walmirror did not create for itself
	want    []string // what objects must list
}

const oddCol = `"we""ird'; --"`

// TestHostileValues: values crafted to break SQL or COPY arrive intact and
// execute nothing, in every kind of target, through the initial copy and
// through streamed inserts, updates (including unsent TOAST values and key
// changes) and deletes, all addressed by hostile keys.
func TestHostileValues(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	dsn, db := newDatabase(t, hostileTable)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	inTx := func(f func(tx pgx.Tx) error) {
		t.Helper()
		if err := pgx.BeginFunc(ctx, conn, f); err != nil {
			t.Fatal(err)
		}
	}
	n := len(hostileStrings)
	long := longHostile(1)

	// The initial copy: one row per hostile string, keyed by it.
	inTx(func(tx pgx.Tx) error {
		for i, s := range hostileStrings {
			if err := insertHostile(ctx, tx, hostileRowFor(i, s, long)); err != nil {
				return err
			}
		}
		return nil
	})

	dir := t.TempDir()
	sqlitePath, duckPath := filepath.Join(dir, "copy.db"), filepath.Join(dir, "copy.duckdb")
	pgDB, err := server.CreateDatabase(ctx, "hostile_target")
	if err != nil {
		t.Fatal(err)
	}
	pgDSN := server.DSN(pgDB)
	srcRows := fmt.Sprintf(`SELECT k, t, vc, j::text, b, a::text, %s, jj::text FROM h`, oddCol)
	canary := `SELECT id, note FROM canary`
	// DuckDB holds text[] as a LIST: its elements are compared one by one.
	elems := `SELECT k, i, CASE WHEN e IS NULL THEN 'null' ELSE 'v:' || e END FROM `
	targets := []hostileTarget{
		{
			name: "sqlite", target: "sqlite:" + sqlitePath,
			rows: func(q string) ([]string, error) { return mirrortest.SQLiteRows(ctx, sqlitePath, q) },
			compare: [][2]string{
				{fmt.Sprintf(`SELECT k, t, vc, j, b, a, %s, jj FROM h`, oddCol), srcRows},
				{canary, canary},
			},
			objects: `SELECT type || ' ' || name FROM sqlite_master WHERE type != 'index'
				AND name NOT LIKE '\_walmirror%' ESCAPE '\'`,
			want: []string{"table canary", "table h"},
		},
		{
			name: "duckdb", target: "duckdb:" + duckPath,
			rows: func(q string) ([]string, error) { return mirrortest.DuckDBRows(ctx, duckPath, q) },
			compare: [][2]string{
				{fmt.Sprintf(`SELECT k, t, vc, j::VARCHAR, b, len(a), %s, jj::VARCHAR FROM public.h`, oddCol),
					fmt.Sprintf(`SELECT k, t, vc, j::text, b, cardinality(a), %s, jj::text FROM h`, oddCol)},
				{elems + `(SELECT k, unnest(a) AS e, unnest(range(1, len(a) + 1)) AS i FROM public.h)`,
					elems + `h, unnest(a) WITH ORDINALITY AS u(e, i)`},
				{`SELECT id, note FROM public.canary`, canary},
			},
			objects: `SELECT 'table ' || schema_name || '.' || table_name FROM duckdb_tables()
				WHERE table_name NOT LIKE '\_walmirror%' ESCAPE '\'
				UNION ALL SELECT 'view ' || schema_name || '.' || view_name FROM duckdb_views() WHERE NOT internal`,
			want: []string{"table public.canary", "table public.h"},
		},
		{
			name: "postgres", target: pgDSN,
			rows:    func(q string) ([]string, error) { return mirrortest.SourceRows(ctx, pgDSN, q) },
			compare: [][2]string{{srcRows, srcRows}, {canary, canary}},
			objects: `SELECT c.relkind::text || ' ' || n.nspname || '.' || c.relname FROM pg_class c
				JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE c.relkind NOT IN ('i', 'I', 't', 'c') AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_walmirror')
				AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
				UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger
				UNION ALL SELECT 'function ' || proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
				WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')`,
			want: []string{"r public.canary", "r public.h"},
		},
	}
	replicate := func(stage string) {
		t.Helper()
		for _, tg := range targets {
			r := walmirror(t, nil, "run", "--source", dsn, "--target", tg.target, "--slot", db+"_"+tg.name, "--stop-at-lsn", "now")
			if r.code != 0 {
				t.Fatalf("%s: %s: run exited %d:\n%s", stage, tg.name, r.code, r.stderr)
			}
			for _, q := range tg.compare {
				want, err := mirrortest.SourceRows(ctx, dsn, q[1])
				if err != nil {
					t.Fatal(err)
				}
				got, err := tg.rows(q[0])
				if err != nil {
					t.Fatalf("%s: %s: %v", stage, tg.name, err)
				}
				if d := mirrortest.Diff(want, got); d != "" {
					t.Errorf("%s: %s: %s: %s", stage, tg.name, q[0], shorten(d))
				}
			}
			got, err := tg.rows(tg.objects)
			if err != nil {
				t.Fatalf("%s: %s: %v", stage, tg.name, err)
			}
			if !slices.Equal(got, tg.want) {
				t.Errorf("%s: %s: the target holds %q, want %q", stage, tg.name, got, tg.want)
			}
		}
	}
	replicate("initial copy")

	// Streamed: new rows under other hostile keys, and changes to the copied
	// rows by their keys, in a few source transactions.
	streamKey := func(i int) string { return hostileStrings[i] + "\\" + hostileStrings[(i+1)%n] }
	inTx(func(tx pgx.Tx) error {
		for i := range n {
			if err := insertHostile(ctx, tx, hostileRowFor(i+2, streamKey(i), long)); err != nil {
				return err
			}
		}
		// Inserted and deleted, inserted and updated, within one transaction.
		if err := insertHostile(ctx, tx, hostileRowFor(7, `gone'; DROP TABLE h; --`, long)); err != nil {
			return err
		}
		if err := insertHostile(ctx, tx, hostileRowFor(8, `kept\N`, long)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM h WHERE k = $1; `, `gone'; DROP TABLE h; --`)
		if err == nil {
			_, err = tx.Exec(ctx, `UPDATE h SET vc = $2, a = $3 WHERE k = $1`, `kept\N`, `\.`, []*string{str(`\N`), nil})
		}
		return err
	})
	inTx(func(tx pgx.Tx) error {
		return changeHostile(ctx, tx, 0, func(i int) string { return hostileStrings[i] }, long)
	})
	replicate("stream")

	// Changes to rows that arrived by the stream.
	inTx(func(tx pgx.Tx) error { return changeHostile(ctx, tx, 1, streamKey, longHostile(2)) })
	replicate("stream of changes")
}

// changeHostile changes the rows keyed key(0..n-1) by a rule that depends on
// the row: an update of every column, an update that leaves a TOASTed value
// unsent, a delete, a new key, values for a row of NULLs.
func changeHostile(ctx context.Context, tx pgx.Tx, shift int, key func(int) string, long string) error {
	for i := range hostileStrings {
		k := key(i)
		var err error
		switch (i + shift) % 5 {
		case 0:
			_, err = tx.Exec(ctx, `UPDATE h SET vc = $2, `+oddCol+` = $3 WHERE k = $1`, k, hostileStrings[(i+11)%len(hostileStrings)], `$$ '`)
		case 1, 3:
			r := hostileRowFor(i+17, k, long)
			var j []byte
			if j, err = json.Marshal(r.j); err == nil {
				_, err = tx.Exec(ctx, `UPDATE h SET t = $2, vc = $3, j = $4::jsonb, b = $5, a = $6, `+oddCol+` = $7, jj = $8::json WHERE k = $1`,
					k, r.t, r.vc, string(j), r.b, r.a, r.odd, r.jj)
			}
		case 2:
			_, err = tx.Exec(ctx, `DELETE FROM h WHERE k = $1`, k)
		case 4:
			_, err = tx.Exec(ctx, `UPDATE h SET k = $2 WHERE k = $1`, k, k+`'); --`)
		}
		if err != nil {
			return fmt.Errorf("row %d (%q): %w", i, k, err)
		}
	}
	return nil
}

// shorten keeps a failure message readable when rows hold 300 kB values.
func shorten(s string) string {
	if len(s) > 1500 {
		return s[:1500] + "…"
	}
	return s
}

// TestStatusHidesPassword: `walmirror status` with a PostgreSQL target never
// prints the password, whether it works, finds no state, or fails.
func TestStatusHidesPassword(t *testing.T) {
	needServer(t)
	ctx := context.Background()
	const pw = `S3cret p@ss:w/rd%?&=#'"` // needs escaping in a URL: it shows in several forms
	dsn, db := newDatabase(t, `CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);
		CREATE ROLE status_user LOGIN SUPERUSER PASSWORD 'S3cret p@ss:w/rd%?&=#''"';`)
	target, err := server.CreateDatabase(ctx, "status_target")
	if err != nil {
		t.Fatal(err)
	}
	empty, err := server.CreateDatabase(ctx, "status_empty")
	if err != nil {
		t.Fatal(err)
	}
	if r := walmirror(t, nil, "run", "--source", dsn, "--target", server.DSN(target), "--slot", "s_"+db, "--stop-at-lsn", "now"); r.code != 0 {
		t.Fatalf("run exited %d:\n%s", r.code, r.stderr)
	}
	good := server.DSNFor("status_user", pw, target)
	port := fmt.Sprint(server.Port())
	// libpq's URI decoding knows %XX only: a space must not become "+".
	queryPW := strings.ReplaceAll(url.QueryEscape(pw), "+", "%20")
	secrets := []string{pw, url.QueryEscape(pw), queryPW, url.PathEscape(pw), (&url.URL{User: url.UserPassword("u", pw)}).String(), "S3cret",
		"wrong-secret-1", "query-secret-2", "unreach-secret-3", "malformed-secret-4", "kw-secret-5", server.Password()}
	cases := []struct {
		name, target string
		ok           bool
		want         string // in stdout when ok, else in the error line
	}{
		{"works", good, true, "lsn:"},
		{"no state", server.DSNFor("status_user", pw, empty), false, "holds no walmirror state"},
		{"no state, password in the query", "postgres://status_user@127.0.0.1:" + port + "/" + empty + "?sslmode=disable&password=" + queryPW, false, "holds no walmirror state"},
		{"wrong password", server.DSNFor("status_user", "wrong-secret-1", target), false, "password authentication failed"},
		{"wrong password in the query", "postgres://status_user@127.0.0.1:" + port + "/" + target + "?sslmode=disable&password=query-secret-2", false, "password authentication failed"},
		{"unreachable", "postgres://u:unreach-secret-3@127.0.0.1:1/db?connect_timeout=3", false, "127.0.0.1"},
		{"malformed", "postgres://u:malformed-secret-4@host:notaport/db", false, "walmirror: "},
		{"keyword string", "host=127.0.0.1 port=" + port + " user=status_user password=kw-secret-5 dbname=" + target, false, "--target"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := walmirror(t, nil, "status", "--target", c.target)
			out := r.stdout + r.stderr
			if (r.code == 0) != c.ok {
				t.Fatalf("exit %d:\n%s", r.code, out)
			}
			if c.ok && !strings.Contains(r.stdout, c.want) || !c.ok && !strings.Contains(lastLine(r.stderr), c.want) {
				t.Errorf("output lacks %q:\n%s", c.want, out)
			}
			for _, s := range secrets {
				if strings.Contains(out, s) {
					t.Errorf("output shows a password (%q):\n%s", s, out)
				}
			}
			t.Logf("%s", strings.TrimSpace(out))
		})
	}
	// run logs the target it writes to: a password in its query is not shown.
	r := walmirror(t, nil, "run", "--source", dsn, "--target", "postgres://status_user@127.0.0.1:"+port+"/"+target+"?sslmode=disable&password="+queryPW,
		"--slot", "s_"+db, "--stop-at-lsn", "now")
	if r.code != 0 {
		t.Fatalf("run with the password in the target's query exited %d:\n%s", r.code, r.stderr)
	}
	for _, s := range secrets {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("run shows a password (%q):\n%s", s, r.stderr)
		}
	}
}

// TestRedactTarget: the forms a password takes in a TARGET string.
func TestRedactTarget(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"sqlite:/tmp/copy.db", "sqlite:/tmp/copy.db"},
		{"postgres://u:pw@h:5432/db", "postgres://…@h:5432/db"},
		{"postgresql://u:p@w@h/db", "postgresql://…@h/db"},
		{"postgres://u@h/db?sslmode=require&password=pw&x=1", "postgres://…@h/db?sslmode=require&password=xxxxx&x=1"},
		{"postgres://h/db?PASSWORD=pw", "postgres://h/db?PASSWORD=xxxxx"},
		{"postgres://h/db?sslpassword=pw", "postgres://h/db?sslpassword=xxxxx"},
		{"host=h password=pw dbname=db", "host=h password=xxxxx dbname=db"},
		{"host=h password = 'p w\\' x' dbname=db", "host=h password = xxxxx dbname=db"},
		{`host=h password=p\ w dbname=db`, "host=h password=xxxxx dbname=db"},
		{"host=h password='unterminated pw", "host=h password=xxxxx"},
	} {
		if got := redactTarget(c.in); got != c.want {
			t.Errorf("redactTarget(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
