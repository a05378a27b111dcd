//go:build faultinject

package faultpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// WALMIRROR_FAULT=NAME:N kills the process with SIGKILL at the Nth hit of
// point NAME, after a pause that lets every other goroutine act as it would
// (a status update already decided on gets sent), so a kill finds whatever
// an early acknowledgement could have leaked.
const pause = 400 * time.Millisecond

var (
	once   sync.Once
	target string
	nth    int64
	hits   atomic.Int64
)

func load() {
	spec := os.Getenv("WALMIRROR_FAULT")
	name, n, ok := strings.Cut(spec, ":")
	if !ok {
		return
	}
	v, err := strconv.ParseInt(n, 10, 64)
	if err != nil || v < 1 {
		fmt.Fprintf(os.Stderr, "faultpoint: bad WALMIRROR_FAULT %q (want NAME:N)\n", spec)
		os.Exit(2)
	}
	target, nth = name, v
}

// Hit kills the process at the configured hit of the configured point.
func Hit(name string) {
	once.Do(load)
	if name != target || hits.Add(1) != nth {
		return
	}
	fmt.Fprintf(os.Stderr, "faultpoint: %s hit %d: killing walmirror\n", name, nth)
	time.Sleep(pause)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // never returns: the kill is on its way
}
