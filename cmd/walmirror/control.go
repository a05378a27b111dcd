package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walmirror/walmirror/internal/observe"
)

// A running walmirror serves its HTTP endpoints (POST /verify, /wait,
// /metrics, ...) on a Unix socket too, named after the source cluster and
// the slot: one slot has one walsender, so one run at a time follows it.
// walmirror verify --source --target finds the run that holds the copy's
// slot through it and verifies through it, as --sidecar does (before, it
// exited 2 and asked for --sidecar, which needed --metrics-addr:
// helper-130), once the run's GET /identity names the same target (a copy
// of the file, or a restored backup of the database, holds the same state
// and slot: helper-136). The socket lives in a directory of the user's own
// (walmirror-UID in the temporary directory, 0700), which both sides check
// before using it: another local user cannot stand in for the run. The
// listener removes the socket at the run's end; a socket a killed run left
// is replaced by the next.

// controlDir is the directory of the current user's control sockets.
func controlDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("walmirror-%d", os.Getuid()))
}

// checkControlDir says whether dir is a directory of this user's alone,
// not a symlink.
func checkControlDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case !ok || int(st.Uid) != os.Getuid():
		return fmt.Errorf("%s belongs to another user", dir)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%s is open to other users (mode %o)", dir, fi.Mode().Perm())
	}
	return nil
}

// controlSocketPath is the control socket of the run following slot on the
// source cluster systemID.
func controlSocketPath(systemID, slot string) string {
	sum := sha256.Sum256([]byte(systemID + "\x00" + slot))
	return filepath.Join(controlDir(), hex.EncodeToString(sum[:8])+".sock")
}

// controlServer is a run's control socket, started once the copy's source
// system is known (at start for a copy that has a state, else when its
// initial copy is ready).
type controlServer struct {
	handler http.Handler
	log     *slog.Logger
	ctx     context.Context
	mu      sync.Mutex
	stopped bool
	stopFn  func()
}

// start listens on the socket for systemID and slot, once; a failure is
// logged (a run needs no socket to replicate: verify then asks for
// --sidecar or for the run to be stopped).
func (c *controlServer) start(systemID, slot string) {
	if systemID == "" || slot == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || c.stopFn != nil {
		return
	}
	path := controlSocketPath(systemID, slot)
	ln, err := listenControl(path)
	if err != nil {
		c.log.Warn("no control socket: walmirror verify --source --target cannot find this run (verify --sidecar needs --metrics-addr)", "err", err)
		c.stopFn = func() {}
		return
	}
	c.stopFn = observe.ServeListener(c.ctx, ln, c.handler, c.log)
	c.log.Debug("serving the control socket (walmirror verify finds this run through it)", "path", path)
}

// stop ends the server, removing the socket; later starts do nothing.
func (c *controlServer) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.stopFn != nil {
		c.stopFn()
	}
}

// listenControl listens on the Unix socket path, replacing a socket no
// process listens on any more.
func listenControl(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	if err := checkControlDir(dir); err != nil {
		return nil, err
	}
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return nil, fmt.Errorf("%s: another process listens on it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	// Only this user may ask for a verification or a repair.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// runningControl returns the control socket of a run that follows slot on
// systemID now, or "" when none answers there.
func runningControl(systemID, slot string) string {
	if systemID == "" || slot == "" {
		return ""
	}
	path := controlSocketPath(systemID, slot)
	if checkControlDir(filepath.Dir(path)) != nil {
		return ""
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return ""
	}
	conn.Close()
	return path
}

// unixClient is an HTTP client whose every request goes to the socket path.
func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// targetIdentity names the file or database target is, as the file system
// or the server knows it: the same for two spellings of one target,
// another for a copy of the file or a restored backup of the database.
func targetIdentity(ctx context.Context, target string) (string, error) {
	kind, path, err := parseTarget(target)
	if err != nil {
		return "", err
	}
	if kind != "postgres" {
		fi, err := os.Stat(path)
		if err != nil {
			return "", err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return "", fmt.Errorf("%s: no file identity", path)
		}
		return fmt.Sprintf("file:%d:%d", st.Dev, st.Ino), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, path)
	if err != nil {
		return "", fmt.Errorf("connect to target %s: %w", redactTarget(target), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var id string
	err = conn.QueryRow(ctx, `SELECT current_database() || ':' || d.oid::text || ':' || current_setting('port') || ':' || extract(epoch FROM pg_postmaster_start_time())::text
		FROM pg_catalog.pg_database d WHERE d.datname = current_database()`).Scan(&id)
	return "postgres:" + id, err
}

// controlHandler is h with GET /identity: the run's target's identity.
func controlHandler(h http.Handler, target string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("GET /identity", func(w http.ResponseWriter, r *http.Request) {
		id, err := targetIdentity(r.Context(), target)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, id)
	})
	return mux
}

// sameTarget says whether the run at the control socket path writes
// target.
func sameTarget(ctx context.Context, path, target string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://walmirror/identity", nil)
	if err != nil {
		return false, err
	}
	resp, err := unixClient(path).Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil || resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET /identity: %s %s %v", resp.Status, body, err)
	}
	mine, err := targetIdentity(ctx, target)
	if err != nil {
		return false, err
	}
	return string(body) == mine, nil
}
