# ironcast: build and test.
#   make build   builds ./ironcast
#   make test    installs test dependencies (as root), checks formatting, vet,
#                staticcheck, the generated OpenAPI spec, and runs every test
#                with -race.
GO        ?= go
SWAG      ?= $(GO) run github.com/swaggo/swag/cmd/swag@v1.16.6
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
PKGS      := ./...
TEST_TIMEOUT ?= 40m
# Tests that need root or a tool fail instead of skipping when this is 1.
STRICT    ?= $(shell [ "$$(id -u)" = 0 ] && echo 1 || echo 0)

.PHONY: build test deps fmt-check vet lint spec spec-check unit fuzz bench clean

build:
	$(GO) build -o ironcast ./cmd/ironcast

test: deps fmt-check vet lint spec-check unit

deps:
	./scripts/install-test-deps.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# lint runs staticcheck (unused code, misused APIs, naming); its module comes
# through the Go module proxy like every other dependency.
lint:
	$(STATICCHECK) $(PKGS)

# spec regenerates the OpenAPI spec into docs/.
spec:
	$(GO) generate ./docs

# spec-check fails when the committed spec differs from a fresh generation.
spec-check:
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	cp -r docs $$tmp/docs.orig; \
	$(GO) generate ./docs >/dev/null; \
	if ! diff -r $$tmp/docs.orig docs >/dev/null; then \
	  diff -r $$tmp/docs.orig docs | head -40; \
	  rm -rf docs; cp -r $$tmp/docs.orig docs; \
	  echo "docs/ is stale: run 'make spec' and commit it"; exit 1; \
	fi; echo "spec-check: docs/ is current"

unit:
	IRONCAST_TEST_STRICT=$(STRICT) $(GO) test -race -timeout $(TEST_TIMEOUT) $(PKGS)

# fuzz runs each fuzz target briefly (FUZZTIME per target).
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x $(PKGS)

clean:
	rm -f ironcast
