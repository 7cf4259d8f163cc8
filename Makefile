# Chit's build. Everything here needs only Go: buf and the protoc plugins are
# pinned in tools/go.mod and run through `go tool`.
GO        ?= go
BUF       := $(GO) tool -modfile=tools/go.mod buf
DATA_DIR  ?= ./data

# The race detector needs cgo and a C compiler; without them tests still run.
RACE := $(shell [ "$$($(GO) env CGO_ENABLED)" = 1 ] && command -v "$$($(GO) env CC)" >/dev/null 2>&1 && echo -race)

.PHONY: all help build run test interop lint breaking breaking-baseline generate check-generated sdk-check bench bench-growth bench-compare soak fuzz ci clean

all: lint test build

## help: list the targets and what they do
help:
	@awk '/^## [a-z-]+:/ { sub(/^## /, ""); print; next } /^## / { sub(/^## /, "    "); print }' $(firstword $(MAKEFILE_LIST))

## build: compile chitd and chit into ./bin (chit-bench is a module of its own, in bench/)
build:
	$(GO) build -o bin/ ./cmd/...

## run: start chitd on the embedded SQLite default (gRPC :9090, HTTP :8080), http issuer for local use
run:
	$(GO) run ./cmd/chitd serve --data-dir $(DATA_DIR) --insecure-dev

## test: every test, with the race detector where the machine supports it
test:
	@[ -n "$(RACE)" ] || echo "note: no C compiler for cgo; running tests without -race"
	$(GO) test $(RACE) -count=1 ./...
	cd gen && $(GO) test $(RACE) -count=1 ./...
	cd pkg && $(GO) test $(RACE) -count=1 ./...
	cd bench && $(GO) test $(RACE) -count=1 ./...

## interop: only the tests that drive Chit with real relying parties (a single-page app in Chromium); make test
## runs them too, and they skip where Chromium is missing (fail under CI=true)
interop:
	$(GO) test $(RACE) -count=1 -v ./internal/interop/...

## lint: buf lint, buf format, gofmt, go vet and staticcheck (its default checks, pinned in tools/go.mod); vet
## and staticcheck build with make test's flags (-race), so the packages compiled for one serve the other
lint:
	$(BUF) lint
	$(BUF) format -d --exit-code
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/chit/')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet $(RACE) ./...
	cd gen && $(GO) vet $(RACE) ./...
	cd pkg && $(GO) vet $(RACE) ./...
	cd bench && $(GO) vet $(RACE) ./...
	@staticcheck=$$($(GO) tool -modfile=tools/go.mod -n staticcheck) && export GOFLAGS="$(RACE) $$GOFLAGS" && $$staticcheck ./... && \
	  (cd gen && $$staticcheck ./...) && (cd pkg && $$staticcheck ./...) && (cd bench && $$staticcheck ./...)

## breaking: fail when the contract breaks a client on the wire or in JSON (buf's WIRE_JSON rules) against
## buf.baseline.binpb, the recorded baseline
breaking:
	$(BUF) breaking --against buf.baseline.binpb

## breaking-baseline: record the contract as it is now as the baseline; only when a change is meant to break
breaking-baseline:
	$(BUF) build -o buf.baseline.binpb

## generate: regenerate gen/chit/ (Go) and gen/openapi/ (the OpenAPI document) from proto/ (offline)
generate:
	rm -rf gen/chit gen/openapi/chit.swagger.json
	$(BUF) generate

## check-generated: fail when gen/ is not what `make generate` produces
check-generated: generate
	@git add -N gen >/dev/null 2>&1 || true
	@git diff --exit-code --stat -- gen || { echo "generated code is stale: run make generate and commit"; exit 1; }

## sdk-check: fail when a fresh consumer of the SDK modules (gen, pkg) gets the server, a store driver, argon2 or the browser
## driver (.ci/sdk-consumer)
sdk-check:
	bash .ci/sdk-consumer

## bench: a load run of every scenario on both ports, then the Go micro-benchmarks and the SDK verifier's (bench/results.md);
## set CHIT_BENCH_POSTGRES_DSN to measure PostgreSQL too
BENCH_DURATION ?= 4s
bench: build
	cd bench && $(GO) run ./cmd/chit-bench suite --chitd ../bin/chitd --out results.md --duration $(BENCH_DURATION)
	@{ echo; echo '## Go micro-benchmarks'; echo; echo '```'; \
	  CHIT_TEST_POSTGRES_DSN="$${CHIT_TEST_POSTGRES_DSN:-$$CHIT_BENCH_POSTGRES_DSN}" \
	  $(GO) test -run='^$$' -bench=. -benchmem -benchtime=1s ./internal/tokens ./internal/passwords ./internal/storage/sqlite ./internal/storage/postgres \
	  | grep -E '^(Benchmark|goos|cpu|pkg)'; \
	  echo '```'; } >> bench/results.md
	GO=$(GO) bash bench/sdk-verifier.sh >> bench/results.md
	@echo "wrote bench/results.md"

## bench-growth: bytes per login as logins rotate (100 and 10,000 times), and rotations at 100 and 100,000 live
## logins, on SQLite and, with CHIT_BENCH_POSTGRES_DSN, PostgreSQL -> bench/growth.md
bench-growth:
	cd bench && $(GO) run ./cmd/chit-bench growth --out growth.md

## bench-compare: the scenarios named like ONLY (client credentials by default) on this tree's chitd and on
## BASELINE's (a git revision, default HEAD~1), in turns in one run -> bench/compare.md; set
## CHIT_BENCH_POSTGRES_DSN to compare PostgreSQL too (each binary in a fresh schema of its own)
BASELINE ?= HEAD~1
ONLY     ?= Token, client credentials
bench-compare: build
	@rm -rf .baseline && git worktree add --detach -f .baseline $(BASELINE) >/dev/null
	cd .baseline && $(GO) build -o ../bin/chitd-baseline ./cmd/chitd
	@git worktree remove --force .baseline
	cd bench && $(GO) run ./cmd/chit-bench compare --chitd ../bin/chitd --baseline ../bin/chitd-baseline --only "$(ONLY)" \
	  --postgres "$$CHIT_BENCH_POSTGRES_DSN"

## soak: five minutes of CheckToken load; fails if the server's RSS grows by more than 10% after the first minute
soak: build
	cd bench && $(GO) run ./cmd/chit-bench soak --chitd ../bin/chitd --duration 5m

## fuzz: run every fuzz target briefly (FUZZTIME each: a count of calls, Nx, because a duration trips a race in
## go1.26's fuzz coordinator that fails the run with "context deadline exceeded", go.dev/issue/75804);
## the seed corpora in testdata/fuzz also run in make test; each new input is minimized for 10 calls, not 60s,
## which would eat a short run whose inputs cost a store write
FUZZTIME ?= 30000x
FUZZ_TARGETS := ./internal/tokens:FuzzCheck ./internal/tokens:FuzzRefresh ./internal/passwords:FuzzVerify ./internal/gateway:FuzzRequestDecoders ./internal/server:FuzzHTTP ./pkg/dpop:FuzzVerify
fuzz:
	@for target in $(FUZZ_TARGETS); do \
	  pkg=$${target%%:*}; name=$${target##*:}; dir=.; \
	  case $$pkg in ./pkg/*) dir=pkg; pkg=./$${pkg#./pkg/};; esac; \
	  echo "fuzz $$target: $(FUZZTIME)"; \
	  (cd $$dir && $(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=10x $$pkg) || exit 1; \
	done

## ci: what .ci/run runs
ci: lint breaking check-generated test fuzz

clean:
	rm -rf bin
