# fusematrix: `make matrix` runs the default kernel matrix, `make test` the tests.
# Both install what they need first (make deps).

GO      ?= go
OUT     ?= out
JOBS    ?= 1
KERNELS ?=
ARGS    ?=
BIN     := bin/fusematrix

.PHONY: all deps build matrix caps bench test test-short bench-harness clean

all: build

# deps installs QEMU from the distribution when it is missing (as root), or
# says which package to install. Kernels are fetched by fusematrix itself.
deps:
	@command -v $(GO) >/dev/null 2>&1 || { echo "fusematrix needs Go 1.26 or newer on PATH" >&2; exit 1; }
	@command -v qemu-system-x86_64 >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make deps: installing qemu-system-x86 with apt-get"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null || exit 1; \
	  else \
	    echo "fusematrix needs QEMU: run 'sudo apt-get install qemu-system-x86' (or 'sudo make deps')" >&2; exit 1; \
	  fi; }

build:
	$(GO) build -o $(BIN) ./harness/cmd/fusematrix

matrix: deps build
	./$(BIN) matrix -j $(JOBS) -out $(OUT)/matrix $(if $(MATRIX),-matrix $(MATRIX)) $(ARGS) $(KERNELS)

# caps boots the kernels with probes only and prints the capability table.
caps: deps build
	./$(BIN) caps -out $(OUT)/caps $(if $(MATRIX),-matrix $(MATRIX)) $(ARGS) $(KERNELS)

# bench boots the kernels and runs only the throughput cells
# (bench/<op>/<mode>/<block>); figures land in $(OUT)/bench/results.json.
bench: deps build
	./$(BIN) bench -out $(OUT)/bench $(ARGS) $(KERNELS)

# test runs unit tests and the integration tests that boot the default
# kernels under TCG (kernels are fetched once into the user's cache).
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...

# test-short skips everything that boots a guest or needs the network.
test-short:
	$(GO) test -short ./...

# bench-harness reports figures of the harness itself, never pass/fail:
# initramfs build cold and warm, then per kernel the time to the agent's
# hello and the seq-read throughput and ratios (see also: time make matrix).
bench-harness: deps
	$(GO) test -run '^$$' -bench 'Base' -benchtime 1x -count 1 ./harness/initramfs/
	$(GO) test -run '^$$' -bench 'Matrix' -benchtime 1x -count 1 -timeout 30m ./harness/

clean:
	rm -rf bin $(OUT)
