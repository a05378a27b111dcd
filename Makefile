# walmirror: the targets people expect. `make demo` and `make test` are the two
# commands; .ci/run calls `make test` after installing what a fresh machine lacks.

GO      ?= go
PKGS    := ./...
# Slow scenarios are opt-in: each has its own target.
RSS_ROWS      ?= 5000000
CRASH_SECONDS ?= 120
FUZZTIME      ?= 60s

.PHONY: test-resume check-files build test test-slow test-short test-matrix test-pg lint demo rss test-crash fuzz bench bench-quick clean sim soak

build:
	$(GO) build -o bin/walmirror ./cmd/walmirror

# The long end-to-end scenarios: kill loops and fault points, loads and
# scale (pgbench -i while following, backlogs, lock tables), windows held open
# by a synchronous standby that never answers, the verify sidecar. `make test`
# leaves them to `make test-slow` so the default run stays near half an hour on
# 2 cores (it was about 40 minutes); CI runs both, `make test-matrix` everything on every major.
# A test not named here (a new one, a renamed one) runs in `make test`.
SLOW_TESTS := TestFaultPoints|TestOnlineCopyFaults|TestCrashLoop|TestPartitionChangesCrash|TestResyncRowsFaults|TestNetworkFaults|TestRenameAfterChangesCrash|TestSchemaChangeCrash|TestTargetDiskFull|TestPgbenchInitWhileFollowing|TestCopyWaitsForBacklog|TestTargetLockTableSmall|TestCopyOutgrowsLockTable|TestPartitionLinksLive|TestAttachNotYetVisible|TestCommitNotYetVisible|TestCommitNotYetVisibleAfterRestart|TestRenameAwayNotYetVisible|TestVerifySidecar|TestChunkedCopyTextKey|TestOnlineCopyWhileTablesDropped|TestDivergedTableCopiedAgain|TestOnlineCopyKeysMove

# Unit tests plus end-to-end tests against throwaway PostgreSQL servers.
test: check-files
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 60m -skip '^($(SLOW_TESTS))$$' $(PKGS)

# The long scenarios `make test` leaves out (SLOW_TESTS).
test-slow:
	$(GO) test -race -count=1 -timeout 60m -run '^($(SLOW_TESTS))$$' ./cmd/walmirror

# The suite against each PostgreSQL major in turn (server builds fetched by
# scripts/pg-versions.sh into a cache outside the repo), then a version x
# package table with skips and wall times. PG_VERSIONS narrows it; `debian`
# stands for the default bin dir. MATRIX_ARGS passes -run, -pkgs, -out.
PG_VERSIONS ?= 14 15 16 17 18
MATRIX_ARGS ?=
test-matrix:
	$(GO) vet $(PKGS)
	$(GO) run ./scripts/testmatrix $(MATRIX_ARGS) $(PG_VERSIONS)

# `make test`'s suite against one major: make test-pg VERSION=18
VERSION ?= 18
test-pg:
	$(GO) vet $(PKGS)
	$(GO) run ./scripts/testmatrix -skip '^($(SLOW_TESTS))$$' $(MATRIX_ARGS) $(VERSION)

# Pure tests only: no PostgreSQL needed.
test-short:
	$(GO) test -short -count=1 $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# Starts a throwaway PostgreSQL, loads a sample schema, replicates it into
# ./walmirror-demo.duckdb while a workload runs, then compares (--target sqlite:PATH also works).
demo:
	$(GO) run ./cmd/walmirror demo

# One source transaction of RSS_ROWS rows; prints walmirror's peak RSS.
rss:
	WALMIRROR_RSS_ROWS=$(RSS_ROWS) $(GO) test -count=1 -timeout 60m -run TestHugeTransactionMemory -v ./cmd/walmirror/ | grep -E 'RESULT|PASS|FAIL|ok|main_test'

# A chunked initial copy of RESUME_ROWS rows killed at about half resumes
# after its last committed chunk and ends equal.
RESUME_ROWS ?= 5000000
test-resume:
	WALMIRROR_RESUME_ROWS=$(RESUME_ROWS) $(GO) test -count=1 -timeout 60m -run TestResumeLargeCopy -v ./cmd/walmirror/ | grep -E 'resumed|rows equal|rows missing|PASS|FAIL|ok'

# Every fault test, repeated: SOAK_ROUNDS rounds of fault-point kills and
# network outages, and the kill -9 loop for CRASH_SECONDS per target.
SOAK_ROUNDS ?= 5
soak:
	WALMIRROR_FAULT_ROUNDS=$(SOAK_ROUNDS) WALMIRROR_CRASH_SECONDS=$(CRASH_SECONDS) $(GO) test -count=1 -timeout 120m -v \
		-run 'TestCrashLoop|TestFaultPoints|TestNetworkFaults' ./cmd/walmirror/ > soak.log 2>&1; \
		status=$$?; grep -E 'survived|^\s*(---|ok|FAIL|PASS)' soak.log; echo "full output: soak.log"; exit $$status

# The kill -9 loop for longer (the default test run has a 15 s version).
test-crash:
	WALMIRROR_CRASH_SECONDS=$(CRASH_SECONDS) $(GO) test -count=1 -timeout 60m -run TestCrashLoop -v ./cmd/walmirror/

# The deterministic simulation (internal/sim): seeded random transactions
# replicated into SQLite, DuckDB and PostgreSQL, each compared with a model.
# SEED=n replays one seed (a failure prints the command); SEEDS=k runs k
# random seeds and reports how many passed; without either, one random seed.
# SIM_DDL is the percentage of transactions that also change a table's shape;
# SIM_AVOID lists the known walmirror bugs the generator steers clear of
# (default: all of internal/sim's KnownBugs; "none" runs them too).
# SIM_COPY lists the online-copy features a seed uses: list (tables added to
# the publication mid-stream), resync (resync requests), chunked (chunked
# initial copy), live (rounds replicated while generated), "all" or "none";
# without it each seed picks.
# The default test run has a short version.
SEED       ?=
SEEDS      ?=
SIM_TXNS   ?= 300
SIM_ROUNDS ?= 4
SIM_BIG    ?= 3000
SIM_DDL    ?= 6
SIM_AVOID  ?=
SIM_COPY   ?=
sim:
	WALMIRROR_SIM_LONG=1 WALMIRROR_SIM_SEED=$(SEED) WALMIRROR_SIM_SEEDS=$(SEEDS) WALMIRROR_SIM_TXNS=$(SIM_TXNS) \
	WALMIRROR_SIM_ROUNDS=$(SIM_ROUNDS) WALMIRROR_SIM_BIG=$(SIM_BIG) WALMIRROR_SIM_DDL=$(SIM_DDL) WALMIRROR_SIM_AVOID=$(SIM_AVOID) WALMIRROR_SIM_COPY=$(SIM_COPY) \
	$(GO) test -count=1 -timeout 120m -run '^TestSim$$' -v ./internal/sim/

# Side-by-side catch-up benchmarks against a decode-only consumer and the
# built-in subscriber, measured in the same run (see bench/main.go). Takes
# about 10-12 minutes; BENCH_ARGS narrows it, e.g. BENCH_ARGS="-workloads insert -consumers decode,sqlite".
BENCH_ARGS ?=
bench:
	$(GO) run ./bench -out bench/results/latest.md $(BENCH_ARGS)

bench-quick:
	$(GO) run ./bench -quick $(BENCH_ARGS)

# Every fuzz target for FUZZTIME each (go test runs one fuzz target at a time).
fuzz:
	$(GO) test -run XXX -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./source/pgoutput/
	$(GO) test -run XXX -fuzz '^FuzzParseTableName$$' -fuzztime $(FUZZTIME) ./source/
	$(GO) test -run XXX -fuzz '^FuzzDecodeCopyLine$$' -fuzztime $(FUZZTIME) ./source/
	$(GO) test -run XXX -fuzz '^FuzzConfigValidate$$' -fuzztime $(FUZZTIME) ./source/
	$(GO) test -run XXX -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./lsn/
	$(GO) test -run XXX -fuzz '^FuzzPgx$$' -fuzztime $(FUZZTIME) ./internal/pgtext/
	$(GO) test -run XXX -fuzz '^FuzzParseArray$$' -fuzztime $(FUZZTIME) ./sinks/duckdb/
	$(GO) test -run XXX -fuzz '^FuzzParseValues$$' -fuzztime $(FUZZTIME) ./sinks/duckdb/
	$(GO) test -run XXX -fuzz '^FuzzBinaryEncoders$$' -fuzztime $(FUZZTIME) -short ./sinks/postgres/

clean:
	rm -rf bin walmirror-demo.duckdb walmirror-demo.duckdb.wal walmirror-demo.sqlite walmirror-demo.sqlite-wal walmirror-demo.sqlite-shm

# No build output or other large file is ever committed (an 87 MB binary
# once was): every tracked file stays under 4 MB.
check-files:
	@big=$$(git ls-files -z 2>/dev/null | xargs -0 -r stat -c '%s %n' 2>/dev/null | awk '$$1 > 4*1024*1024 {print $$2 " (" int($$1/1048576) " MB)"}'); \
	if [ -n "$$big" ]; then echo "tracked files over 4 MB (build outputs belong in .gitignore):"; echo "$$big"; exit 1; fi
