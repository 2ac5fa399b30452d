# fusematrix: `make matrix` runs the default kernel matrix, `make test` the tests.
# Both install what they need first (make deps).

GO      ?= go
OUT     ?= out
JOBS    ?= 1
KERNELS ?=
ARGS    ?=
BIN     := bin/fusematrix

.PHONY: all deps build peer matrix caps bench lint test test-short fuzz bench-harness clean deps-kernel-build test-kernel-build screenshot

all: build

# deps installs QEMU from the distribution when it is missing (as root), or
# says which package to install, and likewise the optional extras: the C
# NOOP peer's build dependencies, Debian's archive keyring, shellcheck and
# Chromium.
# Kernels are fetched by fusematrix itself.
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
	@# The rest is optional: failing to get it is a warning, never an error.
	$(call optional,{ command -v $(CC) >/dev/null 2>&1 && command -v pkg-config >/dev/null 2>&1 && pkg-config --exists fuse3; },$(PEER_DEPS),\
	  the optional C NOOP peer (make peer) is built with them,benchmarks run without the C NOOP peer)
	@# fusematrix checks the Debian archive's InRelease signatures with
	@# Debian's keyring, which Debian machines have and Ubuntu ones (CI
	@# runners) lack. A keyring of your own ($$FUSEMATRIX_KEYRING) does
	@# instead. Kernel images and source trees need none.
	$(call optional,[ -n "$$FUSEMATRIX_KEYRING" ] || [ -f /usr/share/keyrings/debian-archive-keyring.gpg ],debian-archive-keyring,\
	  fusematrix checks the Debian archive's signatures with it (or set FUSEMATRIX_KEYRING to a keyring of your own),fusematrix cannot fetch Debian kernels without it)
	@# actionlint (make lint) checks the workflows' run: scripts only when
	@# shellcheck is on PATH, and lints the rest without it.
	$(call optional,command -v shellcheck >/dev/null 2>&1,shellcheck,\
	  make lint checks the workflows' run: scripts with it,make lint checks the workflows without their run: scripts)
	@# The HTML report's layout test (TestHTMLFitsLaptop) lays the report
	@# out in Debian's headless Chromium, and skips without it.
	$(call optional,command -v chromium >/dev/null 2>&1,chromium,\
	  make test checks the HTML report's layout in it,make test skips the HTML report's layout test)

# optional installs packages $(2) with apt-get when the shell test $(1)
# fails and make runs as root, or says how to; $(3) says what they are
# for, $(4) what is missing without them.
define optional
	@$(1) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make deps: installing $(2) with apt-get: $(strip $(3))"; \
	    { DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(2) >/dev/null; } || \
	      echo "make deps: warning: could not install $(2): $(strip $(4))" >&2; \
	  else \
	    echo "make deps: $(2): $(strip $(3)): run 'sudo apt-get install $(2)' (or 'sudo make deps')" >&2; \
	  fi; }
endef

# deps-kernel-build installs what `fusematrix kernels build` needs to
# compile a kernel (as root), or says which packages to install.
KERNEL_BUILD_DEPS := flex bison libelf-dev bc libssl-dev gcc make
deps-kernel-build:
	@missing=; for p in $(KERNEL_BUILD_DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "make deps-kernel-build: installing$$missing with apt-get"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	  else \
	    echo "building kernels needs:$$missing: run 'sudo apt-get install$$missing' (or 'sudo make deps-kernel-build')" >&2; exit 1; \
	  fi; \
	fi

build:
	$(GO) build -o $(BIN) ./harness/cmd/fusematrix

# peer builds the C NOOP peer, guest/nullfs/nullfs.c on libfuse3, as a
# static binary (guests have no shared libraries), which `fusematrix
# bench` puts into each guest when it exists. Without libfuse3's headers
# and pkg-config, or when the static link fails, it says so and succeeds
# without the peer.
# ld warns that a libfuse object it pulls in calls dlopen: that is the
# high-level API's module loader, which the low-level peer never runs, so
# that warning alone is dropped. A peer newer than its source and this
# Makefile is kept (make clean rebuilds it, after a libfuse upgrade say).
PEER      := bin/fusematrix-nullfs
PEER_DEPS := libfuse3-dev pkg-config gcc libc6-dev
peer:
	@if ! command -v $(CC) >/dev/null 2>&1 || ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists fuse3; then \
	  echo "make peer: skipped: the C NOOP peer needs a C compiler and libfuse3 with pkg-config (install $(PEER_DEPS), or run make deps as root)" >&2; \
	elif [ -x $(PEER) ] && [ $(PEER) -nt guest/nullfs/nullfs.c ] && [ $(PEER) -nt Makefile ]; then \
	  echo "make peer: $(PEER) is up to date"; \
	else \
	  mkdir -p $(dir $(PEER)) && \
	  if out=$$($(CC) -O2 -Wall -static -o $(PEER) guest/nullfs/nullfs.c $$(pkg-config --cflags --libs --static fuse3) 2>&1); then \
	    printf '%s\n' "$$out" | grep -v -e 'fuse_get_module' -e "Using 'dlopen' in statically linked" -e '^$$' >&2 || true; \
	    echo "make peer: built $(PEER)"; \
	  else \
	    printf '%s\n' "$$out" >&2; \
	    rm -f $(PEER); \
	    echo "make peer: warning: the static build failed (is libfuse3.a installed?); benchmarks run without the C NOOP peer" >&2; \
	  fi; \
	fi

matrix: deps build
	./$(BIN) matrix -j $(JOBS) -out $(OUT)/matrix $(if $(MATRIX),-matrix $(MATRIX)) $(ARGS) $(KERNELS)

# caps boots the kernels with probes only and prints the capability table.
caps: deps build
	./$(BIN) caps -out $(OUT)/caps $(if $(MATRIX),-matrix $(MATRIX)) $(ARGS) $(KERNELS)

# bench boots the kernels and runs only the throughput cells
# (bench/<op>/<mode>/<block>); figures land in $(OUT)/bench/results.json.
bench: deps build peer
	./$(BIN) bench -out $(OUT)/bench $(ARGS) $(KERNELS)

# lint checks every GitHub Actions workflow with actionlint, pinned in
# go.mod as a tool (no download script), and fails on any finding. It runs
# shellcheck on run: blocks, and on the nightly's gate script, when
# shellcheck is installed (make deps).
WORKFLOWS := $(wildcard .github/workflows/*.yml .github/workflows/*.yaml)
lint:
	$(GO) tool actionlint $(WORKFLOWS)
	@if command -v shellcheck >/dev/null 2>&1; then shellcheck .github/nightly-gate; else echo "make lint: no shellcheck: .github/nightly-gate not checked" >&2; fi

# test lints the workflows, then runs unit tests and the integration
# tests that boot the default kernels under TCG (kernels are fetched once
# into the user's cache).
# It also runs every fuzz target (func FuzzXxx) briefly: go test without
# -fuzz runs each one on its seed corpus (the f.Add inputs and any files
# in testdata/fuzz/FuzzXxx/) as ordinary subtests, so no time is added
# for them here; make fuzz runs them with new inputs.
test: deps
	$(MAKE) --no-print-directory lint
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...

# test-short skips everything that boots a guest or needs the network.
test-short: lint
	$(GO) test -short ./...

# fuzz runs every fuzz target of the module for FUZZTIME each, one after
# the other (go test -fuzz takes one target of one package at a time). The
# targets are found in the test files (then listed by go test -list), so a
# new FuzzXxx is run without being named here; docs/reliability.md's "Fuzz
# targets" lists them. A failing input is written to the package's
# testdata/fuzz/ and fails make test from then on, until fixed.
FUZZTIME ?= 2m
fuzz:
	@set -e; for pkg in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "make fuzz: $$pkg $$target for $(FUZZTIME)"; \
	    $(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# bench-harness reports figures of the harness itself, never pass/fail:
# initramfs build cold and warm, then per kernel the time to the agent's
# hello and the seq-read throughput and ratios (see also: time make matrix),
# and, where this machine can mount FUSE (root), the NOOP server's own loop
# against go-fuse's Server on the host.
bench-harness: deps
	$(GO) test -run '^$$' -bench 'Base' -benchtime 1x -count 1 ./harness/initramfs/
	$(GO) test -run '^$$' -bench 'Matrix' -benchtime 1x -count 1 -timeout 30m ./harness/
	$(GO) test -run '^$$' -bench 'NoopWrite' -benchtime 2s -count 1 ./scenarios/server/wire/

# screenshot redraws docs/report.png, the picture of the HTML report in
# the README and docs/output.md: a real wide run
# (harness/report/testdata/wide-run.json) laid out by headless Chromium
# at a laptop's width, 1366 px. It needs
# Debian's chromium package (apt-get install chromium).
screenshot:
	$(GO) test -count=1 -run 'TestHTMLFitsLaptop/^wide$$' ./harness/report -screenshot $(CURDIR)/docs/report.png

# test-kernel-build builds a kernel from source with the project's config
# fragment (kernels/fuse.config) on a tinyconfig base, checks every option
# took effect, boots it and checks FUSE passthrough works. The tree is
# $$KSRC, else Debian's linux-source-6.12 unpacked once into the user's
# cache. It takes minutes; the build time is printed, never judged.
test-kernel-build: deps deps-kernel-build
	FUSEMATRIX_KERNEL_BUILD=1 $(GO) test -count=1 -timeout 60m -run 'TestKernelBuild$$' -v ./kernels/

clean:
	rm -rf bin $(OUT)
