#!/usr/bin/env bash
# Build the library's unit tests for wasm32-wasip1 and run them inside V8
# (Node's WASI), the engine Envoy uses. With the full build's features: the
# tests verify RS*/ES*/PS* tokens, and there is no host verifier here (the
# default module's host path is covered by the real-Envoy suite). A failing test aborts the module
# (wasm has no unwinding), which fails this script.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null || { echo "error: node is required for the in-wasm tests" >&2; exit 1; }
bins=$(cargo test --release --lib --target wasm32-wasip1 --features wasm-crypto --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["executable"])')
[ -n "$bins" ] || { echo "error: no wasm test binary was built" >&2; cargo test --release --lib --target wasm32-wasip1 --features wasm-crypto --no-run; exit 1; }
for b in $bins; do
  echo "running $b in V8 (node WASI)"
  node --no-warnings test-harness/wasi-run.mjs "$b" --test-threads=1 --nocapture "$@"
done
