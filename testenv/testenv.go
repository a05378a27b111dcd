// Package testenv starts real, throwaway PostgreSQL servers for tests and
// benchmarks. The servers themselves are internal/pgserver's (which the demo
// in the walmirror binary uses too); this package adds what needs testing.
package testenv

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/walmirror/walmirror/internal/pgserver"
)

// Server is one running throwaway PostgreSQL instance.
type Server = pgserver.Server

// Options configures Start; the zero value gives a logical-replication-ready
// server from BinDir().
type Options = pgserver.Options

// BinDir returns the PostgreSQL bin directory: $WALMIRROR_PG_BIN if set, else
// /usr/lib/postgresql/15/bin.
func BinDir() string { return pgserver.BinDir() }

// Tool returns the path of a PostgreSQL client program (pgbench, psql):
// BinDir's, else the newest Debian installation's, else PATH's; see
// pgserver.Tool.
func Tool(name string) string { return pgserver.Tool(name) }

// SkipBelow skips the test when s is older than PostgreSQL major, naming the
// feature the test needs: SkipBelow(t, s, 15, "row filters").
func SkipBelow(tb testing.TB, s *Server, major int, feature string) {
	tb.Helper()
	if s.Major() < major {
		tb.Skipf("%s needs PostgreSQL %d or later; this server is %d (%d)", feature, major, s.Major(), s.VersionNum())
	}
}

// Start starts a server; see pgserver.Start.
func Start(ctx context.Context, opts Options) (*Server, error) { return pgserver.Start(ctx, opts) }

// NewCA writes a CA certificate into dir and returns its path (for tests of a
// wrong CA).
func NewCA(dir string) (string, error) { return pgserver.NewCA(dir) }

// StartT starts a server for a test or benchmark and registers tb.Cleanup to
// stop it and remove its files; it calls tb.Fatal on error so callers need no
// error handling.
func StartT(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := Start(context.Background(), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

// SmallDisk mounts a tmpfs of size (as mount's size= option, "2M") on a new
// directory, for tests of a target that runs out of space, and returns the
// directory; tb.Cleanup unmounts and removes it. Mounting needs root: the
// test is skipped without it. The directory is not under t.TempDir, whose
// root-only parent would keep a test server's tablespace out.
func SmallDisk(tb testing.TB, size string) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "walmirror-full-")
	if err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		os.Remove(dir)
		tb.Skipf("cannot mount a small tmpfs here (needs root): %v %s", err, out)
	}
	tb.Cleanup(func() {
		exec.Command("umount", "-l", dir).Run()
		os.RemoveAll(dir)
	})
	return dir
}

// RunTests is a test package's TestMain body when its tests share one server:
// it starts the server (none under -short, where *srv stays nil), runs the
// tests and stops it, returning the exit code.
func RunTests(m *testing.M, srv **Server) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	s, err := Start(context.Background(), Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start PostgreSQL:", err)
		return 1
	}
	defer s.Close()
	*srv = s
	return m.Run()
}
