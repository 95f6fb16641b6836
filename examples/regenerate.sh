#!/usr/bin/env bash
# Regenerate the checked-in compiled output of every example application.
# tests/cli_examples.rs runs the same commands and fails when the files drift.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin oam-authz
BIN=target/debug/oam-authz
URL=oci://registry.example.com/oam-authz/filter:0.1.0
for app in shop deploy-api artifact-store remote-jwks quickstart; do
  dir=examples/$app
  rm -rf "$dir/compiled"
  "$BIN" compile "$dir/app.yaml" --url "$URL" --namespace-default --idp-manifests --out-dir "$dir/compiled"
  "$BIN" compile "$dir/app.yaml" --format envoy --out-dir "$dir/compiled/envoy"
  "$BIN" export-istio "$dir/app.yaml" > "$dir/compiled/istio-native.yaml"
done

# Rollout manifests for the shop (istio/ROLLOUT.md).
R=istio/rollout
rm -f "$R"/plain/*/oam-authz-*.yaml "$R"/kustomize/base/oam-authz-*.yaml "$R"/ambient/*/oam-authz-*.yaml
"$BIN" compile examples/shop/app.yaml --url "$URL" --mode audit --out-dir "$R/plain/1-audit"
"$BIN" compile examples/shop/app.yaml --url "$URL" --mode enforce --out-dir "$R/plain/2-enforce"
"$BIN" compile examples/shop/app.yaml --url "$URL" --out-dir "$R/kustomize/base"
# The same on Istio ambient: plugins on the Services' waypoints (istio/ROLLOUT.md "Ambient").
"$BIN" compile examples/shop/app.yaml --url "$URL" --mode audit --ambient --out-dir "$R/ambient/1-audit"
"$BIN" compile examples/shop/app.yaml --url "$URL" --mode enforce --ambient --out-dir "$R/ambient/2-enforce"
