// Command testmatrix runs the test suite against several PostgreSQL major
// versions in turn and prints a version x package table (make test-matrix,
// make test-pg VERSION=n):
//
//	go run ./scripts/testmatrix [-out DIR] [-run REGEXP] [-skip REGEXP] [-pkgs ./...] 14 15 16 17 18
//
// Each version's bin dir comes from scripts/pg-versions.sh --bin N (which
// fetches it when missing); "debian" stands for $WALMIRROR_PG_BIN or the
// default bin dir. Per version it runs `go test -race -count=1 -timeout 60m
// -json` with WALMIRROR_PG_BIN set, keeps the JSON in DIR/N.json, prints the
// output of every failed test, and at the end a table: per package "ok",
// "ok, 2 skip" (tests skipped, e.g. a feature the version lacks), "FAIL 1/30"
// or "-" (no tests); and each version's wall time. The exit status is 1 if
// anything failed.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json`.
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output and build-fail events
	Test       string
	Output     string
}

// pkgResult is what one package did on one version.
type pkgResult struct {
	action  string // pass, fail, skip (no test files / all skipped), "" (never finished)
	tests   int    // top-level tests that ran
	failed  []string
	skipped []string // "Test: reason"
}

// run is one version's outcome.
type run struct {
	version string
	binDir  string
	pkgs    map[string]*pkgResult
	elapsed time.Duration
	err     error // go test could not run, or exited non-zero without a failed package
}

func main() {
	out := flag.String("out", filepath.Join(os.TempDir(), "walmirror-test-matrix"), "directory for each version's go test -json output")
	runRE := flag.String("run", "", "go test -run (default: every test)")
	skipRE := flag.String("skip", "", "go test -skip (default: none)")
	pkgs := flag.String("pkgs", "./...", "packages to test")
	timeout := flag.String("timeout", "60m", "go test -timeout, per version")
	flag.Parse()
	versions := flag.Args()
	if len(versions) == 0 {
		versions = []string{"14", "15", "16", "17", "18"}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fatal(err)
	}
	var runs []*run
	for _, v := range versions {
		r := &run{version: v, pkgs: map[string]*pkgResult{}}
		runs = append(runs, r)
		if r.binDir, r.err = binDir(v); r.err != nil {
			fmt.Printf("== PostgreSQL %s: %v\n", v, r.err)
			continue
		}
		fmt.Printf("== PostgreSQL %s (%s): go test %s\n", v, r.binDir, *pkgs)
		args := []string{"test", "-race", "-count=1", "-timeout", *timeout, "-json"}
		if *runRE != "" {
			args = append(args, "-run", *runRE)
		}
		if *skipRE != "" {
			args = append(args, "-skip", *skipRE)
		}
		args = append(args, strings.Fields(*pkgs)...)
		r.err = r.test(args, filepath.Join(*out, v+".json"))
		fmt.Printf("== PostgreSQL %s: %s in %s\n", v, r.verdict(), r.elapsed.Round(time.Second))
	}
	ok := report(os.Stdout, runs)
	fmt.Printf("go test -json output: %s/<version>.json\n", *out)
	if !ok {
		os.Exit(1)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "testmatrix:", err)
	os.Exit(2)
}

// binDir returns the bin dir of version v: fetched by scripts/pg-versions.sh,
// or for "debian" the default.
func binDir(v string) (string, error) {
	if v == "debian" || v == "default" {
		if d := os.Getenv("WALMIRROR_PG_BIN"); d != "" {
			return d, nil
		}
		return "/usr/lib/postgresql/15/bin", nil
	}
	cmd := exec.Command("scripts/pg-versions.sh", "--bin", v)
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/pg-versions.sh --bin %s: %w", v, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// test runs go test with args for r, saving its JSON to path, printing each
// package's result as it finishes and the output of failed tests.
func (r *run) test(args []string, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "WALMIRROR_PG_BIN="+r.binDir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	r.read(io.TeeReader(stdout, f))
	err = cmd.Wait()
	r.elapsed = time.Since(start)
	if err != nil && !r.failed() {
		return fmt.Errorf("go test: %w", err)
	}
	return nil
}

// read consumes go test -json events.
func (r *run) read(in io.Reader) {
	output := map[[2]string]*bytes.Buffer{} // (package, test) -> output so far
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Println(sc.Text()) // not JSON: a build error, say
			continue
		}
		if e.Package == "" {
			if e.Action == "build-output" {
				fmt.Print(e.Output) // compiler errors
			}
			continue
		}
		p := r.pkgs[e.Package]
		if p == nil {
			p = &pkgResult{}
			r.pkgs[e.Package] = p
		}
		key := [2]string{e.Package, e.Test}
		switch e.Action {
		case "output":
			b := output[key]
			if b == nil {
				b = &bytes.Buffer{}
				output[key] = b
			}
			b.WriteString(e.Output)
		case "pass", "fail", "skip":
			if e.Test == "" {
				p.action = e.Action
				if e.Action == "fail" && len(p.failed) == 0 {
					// A build failure, a panic or a timeout outside (or
					// across) tests: the package's own output and what is
					// left of unfinished tests.
					fmt.Printf("--- %s failed:\n%s", e.Package, tail(testOutput(output, e.Package, ""), 80))
				}
				if e.Action != "skip" {
					fmt.Printf("   %-4s %s\n", e.Action, e.Package)
				}
				break
			}
			top := !strings.Contains(e.Test, "/")
			if top && e.Action != "skip" {
				p.tests++
			}
			switch {
			case e.Action == "fail" && top:
				p.failed = append(p.failed, e.Test)
				fmt.Printf("--- FAIL %s %s:\n%s", e.Package, e.Test, tail(testOutput(output, e.Package, e.Test), 60))
			case e.Action == "skip":
				p.skipped = append(p.skipped, e.Test+": "+skipReason(output[key].String()))
			}
			if top {
				// Subtests' output is kept for their parent's failure.
				for k := range output {
					if k[0] == e.Package && (k[1] == e.Test || strings.HasPrefix(k[1], e.Test+"/")) {
						delete(output, k)
					}
				}
			}
		}
	}
}

// testOutput is the output of test and its subtests.
func testOutput(output map[[2]string]*bytes.Buffer, pkg, test string) string {
	var keys []string
	for k := range output {
		if k[0] == pkg && (test == "" || k[1] == test || strings.HasPrefix(k[1], test+"/")) {
			keys = append(keys, k[1])
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(output[[2]string{pkg, k}].String())
	}
	return b.String()
}

// skipReason is the message of a skipped test's t.Skip.
func skipReason(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		if i := strings.Index(l, ".go:"); i >= 0 {
			if j := strings.Index(l[i:], ": "); j >= 0 {
				l = l[i+j+2:]
			}
		}
		lines = append(lines, l)
	}
	if len(lines) == 0 {
		return "(no reason given)"
	}
	return lines[len(lines)-1]
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("    [... %d lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n") + "\n"
}

func (r *run) failed() bool {
	for _, p := range r.pkgs {
		if p.action == "fail" || len(p.failed) > 0 {
			return true
		}
	}
	return false
}

func (r *run) verdict() string {
	switch {
	case r.err != nil:
		return "ERROR (" + r.err.Error() + ")"
	case r.failed():
		return "FAIL"
	default:
		return "ok"
	}
}

// cell is one package's entry in the table.
func (p *pkgResult) cell() string {
	switch {
	case p == nil:
		return "?"
	case p.action == "fail" || len(p.failed) > 0:
		if len(p.failed) == 0 {
			return "FAIL"
		}
		return fmt.Sprintf("FAIL %d/%d", len(p.failed), p.tests)
	case p.action == "":
		return "?"
	case p.tests == 0 && len(p.skipped) == 0:
		return "-"
	case len(p.skipped) > 0:
		return fmt.Sprintf("ok, %d skip", len(p.skipped))
	default:
		return "ok"
	}
}

// report prints the table, the skips with their reasons, and whether all passed.
func report(w io.Writer, runs []*run) bool {
	pkgSet := map[string]bool{}
	for _, r := range runs {
		for p := range r.pkgs {
			pkgSet[p] = true
		}
	}
	var pkgs []string
	prefix := ""
	for p := range pkgSet {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	if len(pkgs) > 0 {
		prefix = pkgs[0]
		for _, p := range pkgs {
			for !strings.HasPrefix(p, prefix) {
				prefix = prefix[:len(prefix)-1]
			}
		}
		prefix = prefix[:strings.LastIndex(prefix, "/")+1]
	}
	rows := [][]string{{"package"}}
	for _, r := range runs {
		rows[0] = append(rows[0], "PG "+r.version)
	}
	allOK := true
	for _, p := range pkgs {
		row := []string{strings.TrimPrefix(p, prefix)}
		empty := true
		for _, r := range runs {
			c := r.pkgs[p].cell()
			if r.err != nil && r.pkgs[p] == nil {
				c = "ERROR"
			}
			if c != "-" {
				empty = false
			}
			row = append(row, c)
		}
		if !empty {
			rows = append(rows, row)
		}
	}
	verdict := []string{"result"}
	times := []string{"wall time"}
	for _, r := range runs {
		verdict = append(verdict, r.verdict())
		times = append(times, r.elapsed.Round(time.Second).String())
		if r.verdict() != "ok" {
			allOK = false
		}
	}
	rows = append(rows, verdict, times)
	widths := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			widths[i] = max(widths[i], len(c))
		}
	}
	fmt.Fprintln(w)
	for i, row := range rows {
		var b strings.Builder
		for j, c := range row {
			fmt.Fprintf(&b, "| %-*s ", widths[j], c)
		}
		fmt.Fprintln(w, b.String()+"|")
		if i == 0 || i == len(rows)-3 {
			var sep strings.Builder
			for _, wd := range widths {
				sep.WriteString("|" + strings.Repeat("-", wd+2))
			}
			fmt.Fprintln(w, sep.String()+"|")
		}
	}
	// Skips, grouped by reason so a version gate reads as one line.
	type skip struct{ pkg, reason string }
	byReason := map[skip][]string{}
	for _, r := range runs {
		for _, p := range pkgs {
			res := r.pkgs[p]
			if res == nil {
				continue
			}
			for _, s := range res.skipped {
				test, reason, _ := strings.Cut(s, ": ")
				k := skip{strings.TrimPrefix(p, prefix), test + ": " + versionless(reason)}
				byReason[k] = append(byReason[k], r.version)
			}
		}
	}
	if len(byReason) > 0 {
		fmt.Fprintln(w, "\nskipped (versions):")
		var keys []skip
		for k := range byReason {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].pkg != keys[j].pkg {
				return keys[i].pkg < keys[j].pkg
			}
			return keys[i].reason < keys[j].reason
		})
		for _, k := range keys {
			fmt.Fprintf(w, "  %s %s (%s)\n", k.pkg, k.reason, strings.Join(byReason[k], ", "))
		}
	}
	return allOK
}

// versionless drops "this server is N (NNNNNN)" from a skip reason, so one
// gate skipped on several versions is one line.
func versionless(reason string) string {
	if i := strings.Index(reason, "; this server is "); i >= 0 {
		return reason[:i]
	}
	return reason
}
