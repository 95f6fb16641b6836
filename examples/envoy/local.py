#!/usr/bin/env python3
"""Run the standalone Envoy examples on this machine (README "Standalone Envoy").

    make build venv
    test-harness/.venv/bin/python examples/envoy/local.py             # certificates, a token, envoy.yaml with local paths
    test-harness/.venv/bin/python examples/envoy/local.py --upstream & # a stand-in app on 127.0.0.1:8080
    test-harness/.venv/bin/envoy -c target/envoy-example/envoy.yaml --concurrency 1

The example files name the paths of an Istio sidecar (/etc/certs/…,
/etc/oam-authz/…). This writes, into --dir (default target/envoy-example/):
a mesh CA, the server certificate, client certificates for the workloads
frontend (spiffe://cluster.local/ns/shop/sa/frontend) and backend, a token
minted with the test-only example key (examples/keys/mint.py), and copies of
envoy.yaml and envoy-ecds.yaml (with ecds/oam-authz.yaml) whose paths point
there and at the module `make build` produced. Then it prints the curl
commands to try. test-harness/tests/test_examples.py runs the same steps.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "test-harness"))
sys.path.insert(0, os.path.join(REPO, "examples", "keys"))

WASM = os.path.join(REPO, "target", "wasm32-wasip1", "release", "oam_authz.wasm")


def localize(text: str, paths: dict, ports: dict | None = None) -> str:
    """The example text with its sidecar paths (and, if given, ports)
    replaced. `paths`: wasm, cert, key, ca, and ecds (a directory)."""
    subs = {
        "/etc/oam-authz/oam_authz.wasm": paths["wasm"],
        "/etc/certs/cert-chain.pem": paths["cert"],
        "/etc/certs/key.pem": paths["key"],
        "/etc/certs/root-cert.pem": paths["ca"],
    }
    if "ecds" in paths:
        subs["/etc/oam-authz/ecds"] = paths["ecds"]
    for name, port in (ports or {}).items():
        subs[{"admin": "port_value: 15000", "inbound": "port_value: 15006", "app": "port_value: 8080"}[name]] = \
            f"port_value: {port}"
    if ports:
        subs["address: 0.0.0.0"] = "address: 127.0.0.1"
    for a, b in subs.items():
        text = text.replace(a, b)
    return text


def setup(out: str) -> dict:
    from harness.pki import TestPKI
    from mint import mint

    pki = TestPKI(os.path.join(out, "certs"))
    paths = {"wasm": WASM, "cert": pki.server.cert, "key": pki.server.key, "ca": pki.ca_cert,
             "ecds": os.path.join(out, "ecds")}
    os.makedirs(paths["ecds"], exist_ok=True)
    for src, dst in (("envoy.yaml", "envoy.yaml"), ("envoy-ecds.yaml", "envoy-ecds.yaml"),
                     (os.path.join("ecds", "oam-authz.yaml"), os.path.join("ecds", "oam-authz.yaml"))):
        with open(os.path.join(HERE, src)) as f:
            text = localize(f.read(), paths)
        with open(os.path.join(out, dst), "w") as f:
            f.write(text)
    now = int(time.time())
    token = mint({"iss": "https://shop.okta.example/oauth2/default", "aud": "api://shop", "sub": "alice@shop.example",
                  "groups": ["admins"], "iat": now, "exp": now + 3000})
    with open(os.path.join(out, "admin.jwt"), "w") as f:
        f.write(token + "\n")
    return {"pki": pki, "token": token}


def upstream(port: int) -> None:
    from harness.envoy import _EchoHandler
    from http.server import ThreadingHTTPServer

    httpd = ThreadingHTTPServer(("127.0.0.1", port), _EchoHandler)
    httpd.requests = []  # type: ignore[attr-defined]
    print(f"echo upstream on http://127.0.0.1:{port}: answers 200 with the request it got, as JSON")
    httpd.serve_forever()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=os.path.join(REPO, "target", "envoy-example"))
    ap.add_argument("--upstream", action="store_true", help="run the stand-in app on 127.0.0.1:8080 instead")
    a = ap.parse_args()
    if a.upstream:
        upstream(8080)
        return 0
    if not os.path.exists(WASM):
        print(f"{WASM} is missing: run `make build` first", file=sys.stderr)
        return 1
    out = os.path.abspath(a.dir)
    made = setup(out)
    pki = made["pki"]
    rel = os.path.relpath(out)
    fe, be = pki.clients["frontend"], pki.clients["backend"]
    curl = f"curl -sS --cacert {rel}/certs/ca.pem"
    print(f"""wrote {rel}/: certs/ (mesh CA, server, client certificates), envoy.yaml, envoy-ecds.yaml, ecds/, admin.jwt

Start the stand-in app and Envoy (two terminals, from the repository root):
  test-harness/.venv/bin/python examples/envoy/local.py --upstream
  test-harness/.venv/bin/envoy -c {rel}/envoy.yaml --concurrency 1

Then:
  # 200: workload frontend (ns/shop/sa/frontend) reads the API over mTLS
  {curl} --cert {os.path.relpath(fe.cert)} --key {os.path.relpath(fe.key)} https://localhost:15006/api/items
  # 403 role_required: workload backend may not
  {curl} --cert {os.path.relpath(be.cert)} --key {os.path.relpath(be.key)} https://localhost:15006/api/items
  # 401 token_missing, then 200 with a token minted by examples/keys/mint.py (groups: [admins])
  {curl} --cert {os.path.relpath(fe.cert)} --key {os.path.relpath(fe.key)} https://localhost:15006/admin/users
  {curl} --cert {os.path.relpath(fe.cert)} --key {os.path.relpath(fe.key)} -H "Authorization: Bearer $(cat {rel}/admin.jwt)" https://localhost:15006/admin/users
  # counters
  curl -s localhost:15000/stats | grep oam_authz""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
