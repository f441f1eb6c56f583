# gotfs: `make demo` runs the main job on an embedded default, `make test` runs every test.
GO        ?= go
BIN       := bin/gotfs
FUZZTIME  ?= 30s
# Packages whose concurrency the race detector checks.
RACE_PKGS := $(shell $(GO) list ./p2p/... ./fetch/... ./cache/... ./fusefs/... ./dht/... 2>/dev/null)

.PHONY: build deps test test-race demo bench fuzz lint clean

build:
	$(GO) build -o $(BIN) ./cmd/gotfs

deps:
	./scripts/install-deps.sh

test: deps lint
	$(GO) test -count=1 -timeout 15m ./...
ifneq ($(strip $(RACE_PKGS)),)
	$(GO) test -count=1 -race -timeout 15m $(RACE_PKGS)
endif

demo: deps build
	./scripts/demo.sh

bench: build
	WITH_BENCH_DEPS=1 ./scripts/install-deps.sh
	./scripts/bench.sh

# Runs every fuzz target for FUZZTIME each.
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin
