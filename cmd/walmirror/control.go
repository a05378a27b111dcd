package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/walmirror/walmirror/internal/observe"
)

// A running walmirror serves its HTTP endpoints (POST /verify, /wait,
// /metrics, ...) on a Unix socket too, named after the source cluster and
// the slot: one slot has one walsender, so one run at a time follows it.
// walmirror verify --source --target finds the run that holds the copy's
// slot through it and verifies through the running process, as --sidecar
// does (before, it exited 2 and asked for --sidecar, which needed
// --metrics-addr: helper-130). The socket is the run's user's alone (0600),
// in the temporary directory ($TMPDIR, else /tmp); the listener removes it
// at the run's end, and a socket a killed run left is replaced by the next.

// controlSocketPath is the control socket of the run following slot on the
// source cluster systemID.
func controlSocketPath(systemID, slot string) string {
	sum := sha256.Sum256([]byte(systemID + "\x00" + slot))
	return filepath.Join(os.TempDir(), "walmirror-"+hex.EncodeToString(sum[:8])+".sock")
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
		c.log.Info("no control socket: walmirror verify --source --target cannot find this run (verify --sidecar needs --metrics-addr)", "err", err)
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
