# vsm build, test and benchmark targets. `make help` lists them.
GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
# Real-process tests start many daemons; keep the whole suite bounded.
TEST_TIMEOUT ?= 20m

# The deadline test (issue 5) runs one full proving period with real
# processes, about 5 minutes: make e2e runs it alone; make test skips it.
E2E_TIMEOUT ?= 15m
E2E_LOG     ?= /tmp/vsm-e2e-deadlines.log

.PHONY: help build test vet fuzz bench bench-etcd bench-ffi demo clean ffi ffi-gpu params test-ffi e2e e2e-ffi

help:
	@echo "make build   build bin/vsm"
	@echo "make demo    devnet + 3-node cluster proving deadlines live under ./.demo (the README's run command; ENGINE=ffi for real SNARKs)"
	@echo "make test    go vet + every test, real processes included (but the deadline e2e)"
	@echo "make e2e     the deadline test: devnet, 3 nodes, 12 miners, one proving period, kill -9 (about 5 min)"
	@echo "make fuzz    run each fuzz target briefly (FUZZTIME=200000x executions each)"
	@echo "make bench   print the performance figures the issues ask for"
	@echo "make bench-etcd  vsm's single-record write figures and a local 3-node etcd's, same run (installs etcd-server with apt-get)"
	@echo "make ffi     build bin/vsm-ffi-prover and bin/vsm-params: filecoin-ffi from source for the CPU (needs Rust; minutes the first time)"
	@echo "make params  generate Groth16 parameters for 2 KiB and 8 MiB PoSt in $$FIL_PROOFS_PARAMETER_CACHE (local setup, not the ceremony's)"
	@echo "make test-ffi   the real engine's tests (seal, prove, verify)"
	@echo "make e2e-ffi    a devnet proving period with real SNARKs on 3 nodes"
	@echo "make ffi-gpu    the engine with CUDA (FFI_GPU=opencl for OpenCL); see docs/engine.md"

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/vsm ./cmd/vsm

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

test: vet
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -skip '^(TestDeadlinesSurviveNodeLoss|TestFFIDeadlines)$$' ./...

# Its last line is the devnet's count for the proving period, e.g.
# "deadlines proven 576, faulty 0, missed 0".
e2e:
	@echo "== e2e: devnet at 80 ms/epoch, 3 nodes x 2 children, 12 miners, one proving period (log: $(E2E_LOG))"
	@$(GO) test -count=1 -timeout $(E2E_TIMEOUT) -run '^TestDeadlinesSurviveNodeLoss$$' -v ./e2e > $(E2E_LOG) 2>&1 || { tail -150 $(E2E_LOG); exit 1; }
	@grep -E 'deadlines_test.go|^--- |^reassignment latency' $(E2E_LOG)
	@grep '^deadlines proven' $(E2E_LOG) | tail -1

# A count of executions, not a duration: with -fuzztime 10s Go's fuzzer can
# fail a target with a bare "context deadline exceeded" when a busy worker
# misses the stop deadline (golang/go#75804); a count has no deadline to race.
FUZZTIME ?= 200000x
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; \
	    out=$$($(GO) test -run XXX -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg 2>&1) || { echo "$$out"; exit 1; }; \
	  done; \
	done

# Every benchmark group runs through scripts/bench-group.sh, which records a
# failing group and lets make go on, so one failure does not hide the other
# groups' figures; the last step lists the failed groups and fails if any.
# Add a group as: @$(BENCH_GROUP) "name" -- command...
BENCH_FAILURES ?= $(CURDIR)/bin/bench-failures
BENCH_GROUP    := BENCH_FAILURES=$(BENCH_FAILURES) ./scripts/bench-group.sh

bench:
	@$(BENCH_GROUP) --reset
	@echo "== fsm: apply, lookup, snapshot/restore, memory at 1M sectors"
	@$(BENCH_GROUP) "fsm apply/lookup" -- $(GO) test -run XXX -bench 'ApplyPutLocations|LocationLookup1M' ./fsm
	@$(BENCH_GROUP) "fsm snapshot/memory" -- $(GO) test -run XXX -bench 'SnapshotRestore1M|MemoryPerSector' -benchtime 1x ./fsm
	@echo "== import of 1,000,000 locations through RPC into a real daemon"
	@$(BENCH_GROUP) "import 1M" -- $(GO) test -run XXX -bench 'Import1M' -benchtime 1x ./e2e
	@echo "== member footprint: CLI import of 1M and 10M lines (client peak RSS), then a day of updates (every location put again, 1,000 a request): member RSS and peak per sector, raft log files vs newest snapshot"
	@$(BENCH_GROUP) "member footprint" -- $(GO) test -run XXX -bench 'MemberFootprint' -benchtime 1x -timeout 60m ./e2e
	@echo "== cluster: leader kill -9 to first acknowledged write (20 trials; default timeouts and the earlier 1s/1s/500ms, min/p50/p99/max), 3-node/1-node throughput, gossip dead detection"
	@$(BENCH_GROUP) "cluster" -- $(GO) test -run XXX -bench 'Failover|ReplicatedThroughput|GossipDeadDetection' -benchtime 1x -timeout 20m ./e2e
	@echo "== cluster: spurious elections in 10 minutes of both cores saturated by CPU burners, under writes (default raft timeouts)"
	@$(BENCH_GROUP) "elections under saturation" -- env VSM_BENCH_SATURATE=10m $(GO) test -run XXX -bench 'ElectionsUnderSaturation' -benchtime 1x -timeout 20m ./e2e
	@echo "== write path: 1000 sequential single-record puts and 100k from 64 clients, 3 rounds (min/med/max); etcd side by side: make bench-etcd"
	@$(BENCH_GROUP) "write path" -- $(GO) test -run XXX -bench 'WritePath' -benchtime 1x -timeout 30m ./e2e
	@$(BENCH_GROUP) "token check" -- $(GO) test -run XXX -bench VerifyToken ./rpc
	@$(BENCH_GROUP) "raft log append (WAL, raft.db)" -- $(GO) test -run XXX -bench LogStoreAppend -benchtime 2000x -count 3 ./cluster
	@echo "== prover: vanilla partition (parallel vs sequential reads), supervisor round trip"
	@$(BENCH_GROUP) "prover vanilla partition" -- $(GO) test -run XXX -bench BenchmarkVanillaPartition -benchtime 3x ./prover/engine/
	@$(BENCH_GROUP) "prover supervisor round trip" -- $(GO) test -run XXX -bench BenchmarkSupervisorRoundTrip -benchtime 5000x ./prover/
	@echo "== reassignment latency: kill -9 of a node -> its deadlines reassigned in the FSM (3 real nodes)"
	@$(BENCH_GROUP) "reassignment latency" -- $(GO) test -run XXX -bench BenchmarkReassignmentLatency -benchtime 1x -timeout 20m ./e2e
	@echo "== scheduler: 10,000 miners x 48 deadlines over 1,000 GPUs: plan times; cold start placed/unplaced and balance (min/med/max of 5 seeds); 12 h steady state with a failure and a join, peak/lower bound and moves per hour, rebalancing vs off (min/med/max of 3 seeds)"
	@$(BENCH_GROUP) "scheduler plan time" -- $(GO) test -run XXX -bench 'PlanFromScratch|Replan' -benchtime 5x ./cluster/schedule
	@$(BENCH_GROUP) "scheduler cold start" -- $(GO) test -run XXX -bench 'ColdStart' -benchtime 5x ./cluster/schedule
	@$(BENCH_GROUP) "scheduler steady state" -- $(GO) test -run XXX -bench 'SteadyState' -benchtime 3x -timeout 30m ./cluster/schedule
	@echo "== proxy (raft non-voter of the source): lag p50/p99 under a stream of updates, catch-up from empty and RSS at 1M sectors"
	@$(BENCH_GROUP) "proxy 1M" -- $(GO) test -run XXX -bench BenchmarkProxy1M -benchtime 1x -timeout 20m ./e2e
	@echo "== chain messages: build + CBOR-encode a SubmitWindowedPoSt of 3 full 32 GiB partitions; runner chain calls per deadline against the devnet"
	@$(BENCH_GROUP) "submit message encoding" -- $(GO) test -run XXX -bench 'SubmitWindowedPoSt32GiB' -benchmem ./prover/runner
	@$(BENCH_GROUP) "runner chain calls" -- $(GO) test -run XXX -bench 'RunnerChainCalls' -benchtime 1x -v ./prover/runner
	@echo "== --miner: ComputeProof round trip through the gateway (hub -> websocket -> listener -> answer) vs the handler called directly, 200 requests"
	@$(BENCH_GROUP) "gateway round trip" -- $(GO) test -run XXX -bench ComputeProofRoundTrip -benchtime 3x ./gateway
	@echo "== real engine (filecoin-ffi, CPU): sealing, one partition per engine first/warm, child RSS"
	@$(BENCH_GROUP) "ffi engine" -- $(MAKE) --no-print-directory bench-ffi
	@$(BENCH_GROUP) --summary

# Issue 13: the same write figures against Debian's etcd 3.4, 3 nodes on
# loopback, in one run (not part of make test or make bench).
bench-etcd:
	scripts/etcd-compare.sh

# The real proof engine (issue 9): filecoin-ffi built from source for the
# CPU. scripts/ffi.sh keeps cargo's output in ~/.cache/vsm, so only the first
# build on a machine takes minutes.
FFI_PARAMS ?= $(HOME)/.cache/vsm/params
export FIL_PROOFS_PARAMETER_CACHE ?= $(FFI_PARAMS)

ffi:
	VERSION=$(VERSION) ./scripts/ffi.sh build

# GPU build (CUDA by default; FFI_GPU=opencl for OpenCL): needs the CUDA
# toolkit (nvcc) or an OpenCL ICD and headers; see docs/engine.md.
FFI_GPU ?= cuda
ffi-gpu:  # writes bin/vsm-ffi-prover-$(FFI_GPU)
	FFI_GPU=$(FFI_GPU) VERSION=$(VERSION) ./scripts/ffi.sh build

params: ffi
	./scripts/ffi.sh params

# The engine's own tests: real sealing, proving and verification on the CPU.
test-ffi: params
	cd prover/ffi && VSM_FFI_PROVER=$(CURDIR)/bin/vsm-ffi-prover CGO_ENABLED=1 $(GO) test -tags nofvm -count=1 -timeout 20m .

# A devnet proving period with real SNARKs (see e2e/ffi_test.go).
E2E_FFI_LOG ?= /tmp/vsm-e2e-ffi.log
E2E_FFI_TIMEOUT ?= 25m
e2e-ffi: build params
	@echo "== e2e-ffi: devnet with filecoin-ffi sealed 2 KiB sectors, 3 nodes x 2 vsm-ffi-prover children (log: $(E2E_FFI_LOG))"
	@VSM_FFI_PROVER=$(CURDIR)/bin/vsm-ffi-prover $(GO) test -count=1 -timeout $(E2E_FFI_TIMEOUT) -run '^(TestFFIEngineJudgesRealProofs|TestFFIDeadlines)$$' -v ./e2e > $(E2E_FFI_LOG) 2>&1 || { tail -150 $(E2E_FFI_LOG); exit 1; }
	@grep -E 'ffi_test.go|^--- ' $(E2E_FFI_LOG)
	@grep '^deadlines proven' $(E2E_FFI_LOG) | tail -1

# Issue 9's figures: sealing per sector, one WindowPoSt partition per engine
# (first request on a fresh child and warm median), the child's peak RSS.
# `make ffi` and `make params` print the build and parameter times.
bench-ffi: build params
	cd prover/ffi && VSM_FFI_PROVER=$(CURDIR)/bin/vsm-ffi-prover VSM_BIN=$(CURDIR)/bin/vsm CGO_ENABLED=1 \
	  $(GO) test -tags nofvm -run XXX -bench . -benchtime 1x -timeout 20m .

# make demo ENGINE=ffi runs it with real sectors and SNARKs (builds the
# engine and the parameters first).
ENGINE ?= builtin
demo: build $(if $(filter ffi,$(ENGINE)),params)
	ENGINE=$(ENGINE) ./scripts/demo.sh

clean:
	rm -rf bin .demo build
