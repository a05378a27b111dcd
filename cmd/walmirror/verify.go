package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/walmirror/walmirror/apply"

	"github.com/walmirror/walmirror/sinks/duckdb"
	"github.com/walmirror/walmirror/source"
	"github.com/walmirror/walmirror/verify"
)

// Exit codes of walmirror verify.
const (
	verifyEqual     = 0
	verifyDifferent = 1
	verifyFailed    = 2 // could not verify (or bad usage)
)

// tableList is a repeatable --table flag.
type tableList []string

func (l *tableList) String() string { return strings.Join(*l, ",") }

// Set takes one table or a comma-separated list (as an environment
// variable or a config file gives it); commas inside double quotes belong
// to the name.
func (l *tableList) Set(v string) error {
	for _, name := range source.SplitTableNames(v) {
		if name == "" {
			continue
		}
		if _, err := source.ParseTableName(name); err != nil {
			return err
		}
		*l = append(*l, name)
	}
	return nil
}

// cmdVerify compares a copy with its source as of one source position and
// returns the exit code: 0 equal, 1 different, 2 not verified.
func cmdVerify(ctx context.Context, args []string) int {
	fs := newFlagSet("verify", "--source DSN --target TARGET [--table schema.t ...] [--json] [--repair]\n       walmirror verify --sidecar http://HOST:PORT [--table schema.t ...] [--json] [--repair]")
	var (
		cfg     verify.Config
		target  string
		tables  tableList
		asJSON  bool
		repair  bool
		rows    int
		sidecar string
		catchUp time.Duration
		profile string
		options = defaultTargetOptions()
	)
	fs.StringVar(&cfg.Source.DSN, "source", "", "source PostgreSQL: URL or keyword string (sslmode, SCRAM etc. as libpq)")
	fs.StringVar(&target, "target", "", "the copy: duckdb:PATH, sqlite:PATH or postgres://user:pass@host/db")
	fs.StringVar(&cfg.Source.Publication, "publication", "walmirror", "the publication the copy is made from")
	fs.Var(repeated(&tables, func() { tables = nil }), "table", "compare only this table (schema.table, or a comma-separated list); repeat for more (default: every published table)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.IntVar(&cfg.Options.Examples, "examples", 5, "name up to this many missing, extra and changed rows per table")
	fs.BoolVar(&repair, "repair", false, "copy what differs again (online: the differing rows by key, or whole tables), bring the copy up to date and verify those tables again: exit 0 when they are then equal (a running walmirror, found or --sidecar, copies them)")
	fs.IntVar(&rows, "repair-rows", verify.DefaultRepairKeys, "with --repair: copy a table's differing rows again by key when there are at most this many and its key is of integers, uuids, text and varchar; else the whole table (0: always whole tables)")
	fs.StringVar(&sidecar, "sidecar", "", "verify through the walmirror run that replicates into the copy, at its --metrics-addr (http://HOST:PORT): it pauses the copy at the comparison's position for a moment and compares while it replicates on (--source and --target are then its own); without it, a run on this machine that holds the copy's slot is found through its control socket")
	durationFlag(fs, &catchUp, "catch-up-timeout", verify.DefaultCatchUp, "through a running walmirror (one found replicating into the copy, or --sidecar): how long the copy may take to reach the comparison's position (exit 2 after)")
	durationFlag(fs, &cfg.SnapshotWait, "snapshot-timeout", verify.DefaultSnapshotWait, "how long taking the source's snapshot may wait for transactions open on the source to end (a forgotten prepared transaction would hold it forever; exit 2 after, naming them; with --sidecar at most 25s, as long as the running walmirror may be held)")
	durationFlag(fs, &cfg.Source.Timeout, "source-timeout", source.DefaultTimeout, "how long the source may stay silent before walmirror gives up on a connection")
	fs.BoolVar(&options.pg.ReplicaRole, "pg-replica-role", options.pg.ReplicaRole, "PostgreSQL target: catch up with session_replication_role = replica, as walmirror run does")
	fs.StringVar(&options.pg.Origin, "pg-origin", options.pg.Origin, "PostgreSQL target: tag the catch-up's writes with this replication origin, as walmirror run --pg-origin does")
	fs.StringVar(&profile, "cpuprofile", "", "write a CPU profile of the verification to this file (go tool pprof)")
	log, err := fs.parse(args)
	switch {
	case errors.Is(err, errHelp):
		return 0
	case errors.Is(err, errUsage):
		return verifyFailed
	}
	if err == nil && profile != "" {
		var stop func()
		if stop, err = startCPUProfile(profile); err == nil {
			defer stop()
		}
	}
	fail := func(err error) int {
		msg := oneLine(err.Error())
		fmt.Fprintf(os.Stderr, "walmirror: verify: %s\n", msg)
		if asJSON {
			_ = json.NewEncoder(os.Stdout).Encode(map[string]any{"equal": false, "error": msg})
		}
		return verifyFailed
	}
	if err != nil {
		return fail(err)
	}
	cfg.Tables, cfg.Logger = tables, log
	// The target's state, read once: its publication, the run replicating
	// into it, whether it holds a copy at all.
	var ts targetState
	var tsErr error
	if sidecar == "" {
		ts, tsErr = readTargetState(ctx, target)
		if tsErr == nil && ts.Found {
			if _, err := followPublication(ts.State, &cfg.Source.Publication, flagGiven(fs.FlagSet, "publication")); err != nil {
				return fail(err)
			}
		}
	}
	if repair {
		cfg.Options.Keys = rows
	}

	var running runningServer
	if sidecar != "" {
		running = sidecarAt(sidecar)
	} else if path := liveControl(ctx, log, target, ts, tsErr); path != "" {
		log.Info("walmirror run is replicating into this copy: verifying through it", "socket", path)
		running = controlAt(path)
	}
	if running.base != "" {
		if !repair {
			rows = -1
		}
		return verifySidecar(ctx, running, tables, cfg.Options.Examples, catchUp, cfg.SnapshotWait, rows, asJSON, fail)
	}
	check := cfg.Source
	check.Slot = "walmirror" // the copy's own is used; any valid name checks the rest
	if err := check.Validate(); err != nil {
		return fail(err)
	}

	// Opening the target as a sink would create walmirror's tables in a
	// database or file that holds no copy (helper-98): look first.
	if tsErr == nil && !ts.Found {
		if !ts.Exists {
			return fail(fmt.Errorf("--target %q does not exist: run walmirror run into it first", redactTarget(target)))
		}
		return fail(errors.New("the target holds no copy: run walmirror run into it first"))
	} else if _, busy := duckdb.LockHolder(tsErr); busy {
		return fail(tsErr) // says to verify through the running walmirror (--sidecar)
	}
	sink, err := openTarget(ctx, target, log, true, options)
	if err != nil {
		return fail(err)
	}
	defer sink.Close()
	open := copyReader(sink, target)
	rep, err := verify.Run(ctx, cfg, verify.Target{Sink: sink, Open: open})
	if err != nil {
		switch {
		case ctx.Err() != nil:
			err = errors.New("interrupted")
		case errors.Is(err, verify.ErrInUse):
			err = fmt.Errorf("%w; or verify through it: walmirror verify --sidecar http://HOST:PORT (its --metrics-addr)", err)
		}
		return fail(err)
	}
	if repair && rep.TablesDiffer() {
		return repairCopy(ctx, cfg, verify.Target{Sink: sink, Open: open}, rep, asJSON)
	}
	if asJSON {
		err = rep.WriteJSON(os.Stdout)
	} else {
		err = rep.WriteText(os.Stdout)
	}
	switch {
	case err != nil:
		return fail(err)
	case repair && len(rep.CopiedAgain) > 0 && !rep.TablesDiffer():
		// The catch-up copied them again: repaired, and compared equal.
		for i := range rep.Tables {
			if rep.Tables[i].Err != "" {
				return verifyFailed
			}
		}
		return verifyEqual
	case rep.Different():
		return verifyDifferent
	case !rep.Equal():
		return verifyFailed // some table could not be compared (the report says why)
	}
	return verifyEqual
}

// repairCopy copies the tables rep found different again, verifies them
// again and returns the exit code: 0 when they are then equal (and every
// other table was), 1 when one still differs, 2 when the repair or the
// verification failed.
func repairCopy(ctx context.Context, cfg verify.Config, target verify.Target, rep *verify.Report, asJSON bool) int {
	if !asJSON {
		// The first report now: the copies may take a while.
		if err := rep.WriteText(os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "walmirror: verify: %v\n", err)
			return verifyFailed
		}
	}
	rp, err := verify.RepairTables(ctx, cfg, target, rep)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		rp.Err = oneLine(err.Error())
	}
	var werr error
	if asJSON {
		rep.Repair = rp
		werr = rep.WriteJSON(os.Stdout)
	} else {
		werr = rp.WriteText(os.Stdout)
	}
	return repairExit(rep, rp, werr)
}

// repairExit is the exit code of a verification rep followed by repair rp,
// whose printing failed with werr.
func repairExit(rep *verify.Report, rp *verify.Repair, werr error) int {
	switch {
	case rp.Err != "":
		fmt.Fprintf(os.Stderr, "walmirror: verify: repair: %s\n", rp.Err)
		return verifyFailed
	case werr != nil:
		fmt.Fprintf(os.Stderr, "walmirror: verify: %v\n", werr)
		return verifyFailed
	case rp.After.Different():
		return verifyDifferent
	case !rp.After.Equal():
		return verifyFailed
	}
	for i := range rep.Tables {
		if rep.Tables[i].Err != "" {
			return verifyFailed // not compared the first time, so not repaired either
		}
	}
	return verifyEqual
}

// copyReader opens a read transaction on the copy: through the DuckDB
// sink's own database (a second connection; no other process may open the
// file), or a connection of its own to a SQLite file or a PostgreSQL
// database.
func copyReader(sink apply.Sink, target string) func(context.Context) (verify.ReadCloser, error) {
	return func(ctx context.Context) (verify.ReadCloser, error) {
		if s, ok := sink.(*duckdb.Sink); ok {
			return verify.DuckDB(ctx, s.DB())
		}
		if kind, path, _ := strings.Cut(target, ":"); kind == "sqlite" {
			return verify.OpenSQLite(ctx, path)
		}
		return verify.OpenPostgres(ctx, target)
	}
}

// oneLine joins a message's lines, for one log or stderr line.
func oneLine(msg string) string {
	return strings.Join(strings.FieldsFunc(msg, func(r rune) bool { return r == '\n' || r == '\t' }), " ")
}

// runningServer is where a running walmirror serves POST /verify.
type runningServer struct {
	base   string       // URL without the path
	client *http.Client // nil: http.DefaultClient
	name   string       // for errors: "--sidecar" or the socket
	hint   string       // what to check when nothing answers
	bad    error        // the address is malformed
}

// sidecarAt is verify --sidecar's addr.
func sidecarAt(addr string) runningServer {
	base := strings.TrimRight(addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	rs := runningServer{base: base, name: "--sidecar", hint: "is walmirror run --metrics-addr serving there?"}
	if u, err := url.Parse(base); err != nil || u.Host == "" {
		rs.bad = fmt.Errorf("--sidecar %q: want the running walmirror's --metrics-addr, like http://127.0.0.1:9187", addr)
	}
	return rs
}

// controlAt is the control socket path of a running walmirror.
func controlAt(path string) runningServer {
	return runningServer{base: "http://walmirror", client: unixClient(path), name: "the running walmirror's control socket " + path, hint: "did the run just end?"}
}

// liveControl returns the control socket of the walmirror run that
// replicates into target now, or "": the state verify read of target (ts,
// or err when it could not) names the run's socket, whose GET /identity
// must name target (a copied file or a restored backup holds the same
// state and slot, and is verified here, which says whether it can).
func liveControl(ctx context.Context, log *slog.Logger, target string, ts targetState, err error) string {
	var path string
	switch _, busy := duckdb.LockHolder(err); {
	case err == nil && ts.Found:
		path = runningControl(ts.State.SystemID, ts.State.Slot)
	case busy:
		if rs, err := readRunState(ts.Path); err == nil {
			path = runningControl(rs.SystemID, rs.Slot)
		}
	}
	if path == "" {
		return ""
	}
	switch same, err := sameTarget(ctx, path, target); {
	case err != nil:
		log.Info("could not ask the walmirror run following this copy's slot which target it writes: not verifying through it", "socket", path, "err", err)
		return ""
	case !same:
		log.Info("the walmirror run following this copy's slot writes another target: not verifying through it", "socket", path)
		return ""
	}
	return path
}

// verifySidecar asks the running walmirror at srv to verify its copy
// (POST /verify) and prints its report; the exit code is as verify's.
// repairRows >= 0 asks it to repair what differs too (verify --repair).
func verifySidecar(ctx context.Context, srv runningServer, tables []string, examples int, catchUp, snapshotWait time.Duration, repairRows int, asJSON bool, fail func(error) int) int {
	if srv.bad != nil {
		return fail(srv.bad)
	}
	u, err := url.Parse(srv.base + "/verify")
	if err != nil {
		return fail(err)
	}
	client := srv.client
	if client == nil {
		client = http.DefaultClient
	}
	q := url.Values{"table": tables, "examples": {strconv.Itoa(examples)}, "timeout": {catchUp.String()}, "snapshot_timeout": {snapshotWait.String()}}
	if repairRows >= 0 {
		q.Set("repair", "1")
		q.Set("repair_rows", strconv.Itoa(repairRows))
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return fail(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fail(errors.New("interrupted"))
		}
		return fail(fmt.Errorf("%s: %w (%s)", srv.name, err, srv.hint))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fail(fmt.Errorf("%s: read the answer: %w", srv.name, err))
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			return fail(fmt.Errorf("%s: POST %s: %s (a walmirror run of this version?)", srv.name, u.Path, resp.Status))
		}
		return fail(fmt.Errorf("the running walmirror could not verify: %s", e.Error))
	}
	rep, err := verify.ReadJSON(body)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", srv.name, err))
	}
	if rp := rep.Repair; rp != nil {
		if asJSON {
			_, err = os.Stdout.Write(body)
		} else if err = rep.WriteText(os.Stdout); err == nil {
			err = rp.WriteText(os.Stdout)
		}
		return repairExit(rep, rp, err)
	}
	if repairRows >= 0 && rep.TablesDiffer() {
		return fail(fmt.Errorf("%s: the running walmirror did not repair (a walmirror run of an older version?)", srv.name))
	}
	if asJSON {
		_, err = os.Stdout.Write(body)
	} else {
		err = rep.WriteText(os.Stdout)
	}
	switch {
	case err != nil:
		return fail(err)
	case rep.Different():
		return verifyDifferent
	case !rep.Equal():
		return verifyFailed
	}
	return verifyEqual
}
