# The README's two commands are `make dev` and `make test`; .ci/run calls `make test`.
GO ?= go
FUZZTIME ?= 6s

.PHONY: dev test vet jsdeps unit fuzz bench bench-ci build

build:
	$(GO) build -o keyward ./cmd/keyward

dev:
	$(GO) run ./cmd/keyward server --dev --data ./.keyward-dev

test: vet jsdeps unit fuzz bench-ci

# The JavaScript SDK test needs @azure/identity and @azure/keyvault-secrets
# (test/js/package-lock.json). Without npm it is skipped, except in CI
# (CI=true), where it fails.
jsdeps:
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix test/js --no-audit --no-fund --loglevel=error; fi

vet:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

unit:
	$(GO) test -count=1 -timeout 20m ./...

# Every fuzz target, briefly.
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/e2e/ ./internal/keys/

# The regression guard (docs/PERFORMANCE.md): every full-stack benchmark,
# briefly, with its output kept in benchstat format. No timing assertions:
# compare two files with `go run golang.org/x/perf/cmd/benchstat@latest old new`.
BENCH_OUT ?= bench-ci.txt
BENCH_CI ?= ^Benchmark(RS256Sign|PS256Sign|ES256Sign|OAEP256Wrap|OAEP256Unwrap|SecretGet|SecretSet|SecretList)$$
bench-ci:
	$(GO) test -run '^$$' -bench '$(BENCH_CI)' -benchtime 200x -benchmem -count 1 ./internal/e2e/ > $(BENCH_OUT); \
	  status=$$?; cat $(BENCH_OUT); exit $$status
