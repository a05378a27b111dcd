package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// version is set at build time for release builds:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/walmirror
//
// Without it, the module version and VCS revision Go records in the binary
// are shown (go build -buildvcs=true in a git checkout records them).
var version string

// versionString is what --version prints: one line.
func versionString() string {
	v := version
	var rev, at string
	modified := false
	goVersion := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	out := "walmirror " + v
	var details []string
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if modified {
			rev += "+modified"
		}
		details = append(details, "revision "+rev)
	}
	if at != "" {
		details = append(details, at)
	}
	if goVersion != "" {
		details = append(details, goVersion)
	}
	if len(details) > 0 {
		out += " (" + strings.Join(details, ", ") + ")"
	}
	return out
}

func printVersion() { fmt.Println(versionString()) }
