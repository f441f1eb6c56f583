# gotfs: `make demo` runs the main job on an embedded default, `make test` runs every test.
GO        ?= go
BIN       := bin/gotfs
PREFIX    ?= /usr/local
DESTDIR   ?=
# -buildvcs=auto stamps the module version and VCS revision that `gotfs version` prints (some
# machines set -buildvcs=false in GOFLAGS).
BUILDFLAGS ?= -buildvcs=auto
FUZZTIME  ?= 30s
# Packages whose concurrency the race detector checks.
RACE_PKGS := $(shell $(GO) list ./p2p/... ./fetch/... ./cache/... ./fusefs/... ./dht/... ./httpserve/... ./internal/netsim/... ./internal/rawnet/... ./webseed/... ./lsd/... ./portmap/... 2>/dev/null)

.PHONY: build deps test test-race demo bench fuzz lint clean man install

build:
	$(GO) build $(BUILDFLAGS) -o $(BIN) ./cmd/gotfs

# Man pages (section 1) for every command, generated from the command tree.
man: build
	rm -rf bin/man && ./$(BIN) gen-docs --man bin/man/man1

# The binary, man pages and bash/zsh/fish completions under $(DESTDIR)$(PREFIX).
install: build
	rm -rf bin/share && ./$(BIN) gen-docs --man bin/share/man/man1 --completions bin/share
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/gotfs
	install -m 0644 bin/share/man/man1/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 bin/share/bash-completion/completions/gotfs $(DESTDIR)$(PREFIX)/share/bash-completion/completions/gotfs
	install -m 0644 bin/share/zsh/site-functions/_gotfs $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_gotfs
	install -m 0644 bin/share/fish/vendor_completions.d/gotfs.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/gotfs.fish

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

# staticcheck comes from the Go module proxy at a fixed version (built once, then cached).
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

clean:
	rm -rf bin
