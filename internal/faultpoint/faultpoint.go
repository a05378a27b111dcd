//go:build !faultinject

// Package faultpoint marks the instants where a crash is most dangerous for
// exactly-once delivery (between a target commit and the status that reports
// it, inside a commit, between chunks of one transaction), so tests can kill
// walmirror exactly there instead of hoping a random kill -9 lands in a
// microsecond window. Ordinary builds compile Hit to nothing; binaries built
// with -tags faultinject read WALMIRROR_FAULT (see inject.go).
package faultpoint

// Hit marks a fault point.
func Hit(name string) {}
