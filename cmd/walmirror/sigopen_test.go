package main

import (
	"bytes"
	"net"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignalWhileTargetOpens: SIGTERM while the target is still opening (a
// PostgreSQL target that accepts the connection and never answers; a DuckDB
// file replaying a long WAL after a kill -9) stops the run with exit 0, as
// a signal does at any other moment. Before, it exited 1 with the driver's
// "context canceled" (for DuckDB with a hint about a file held open).
func TestSignalWhileTargetOpens(t *testing.T) {
	needServer(t) // the binary is built only then
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	cmd := exec.Command(binary, "run", "--source", "postgres://nobody@127.0.0.1:1/none",
		"--target", "postgres://nobody@"+ln.Addr().String()+"/none?sslmode=disable")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("walmirror never connected to the target:\n%s", stderr.String())
	}
	time.Sleep(200 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || strings.Contains(stderr.String(), "walmirror: ") {
			t.Fatalf("walmirror after SIGTERM while opening its target: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("walmirror did not stop on SIGTERM while opening its target:\n%s", stderr.String())
	}
}
