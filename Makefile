# The README's two commands are `make dev` and `make test`; .ci/run calls `make test`.
GO ?= go
FUZZTIME ?= 10s

.PHONY: dev test vet unit fuzz bench build

build:
	$(GO) build -o keyward ./cmd/keyward

dev:
	$(GO) run ./cmd/keyward server --dev --data ./.keyward-dev

test: vet unit fuzz

vet:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

unit:
	$(GO) test -count=1 -timeout 20m ./...

# Every fuzz target, briefly (go test -fuzz takes one target at a time).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg >/dev/null || { echo "FAIL fuzz $$pkg $$f"; exit 1; }; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/e2e/ ./internal/keys/
