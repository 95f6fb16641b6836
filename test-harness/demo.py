#!/usr/bin/env python3
"""`make demo`: a real Envoy on localhost with the oam-authz filter and the
example shop policy (examples/envoy/demo-policy.json, JWKS filled in with a
key made just now). Shows each request as a curl command line, its result,
and then the audit lines Envoy logged."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness import client as C  # noqa: E402
from harness import envoy as E  # noqa: E402
from harness.pki import TestPKI  # noqa: E402
from harness.tokens import Issuer  # noqa: E402

POLICY = os.path.join(E.REPO, "examples", "envoy", "demo-policy.json")
CURL = shutil.which("curl")


def short(tok: str) -> str:
    return tok[:24] + "…" + tok[-8:]


def run(port: int, pki: TestPKI, title: str, path: str, who: str, token: str | None = None,
        token_label: str | None = None) -> None:
    cert = pki.clients[who]
    print(f"\n### {title}")
    env_prefix = f"TOKEN={short(token)}  # {token_label}\n" if token else ""
    args = ["curl", "-sS", "--max-time", "10", "--cacert", pki.ca_cert, "--cert", cert.cert, "--key", cert.key]
    shown = list(args)
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
        shown += ["-H", "Authorization: Bearer $TOKEN"]
    url = f"https://localhost:{port}{path}"
    print(f"# as workload {pki.spiffe[who]}")
    print(env_prefix + " ".join(shlex.quote(a) if "$TOKEN" not in a else f'"{a}"' for a in shown + [url]))
    if CURL:
        hdr_file = tempfile.NamedTemporaryFile(delete=False)
        hdr_file.close()
        out = subprocess.run(args + ["-D", hdr_file.name, "-o", "-", "-w", "\n%{http_code}", url],
                             capture_output=True, text=True, timeout=20)
        body, _, code = out.stdout.rpartition("\n")
        headers = open(hdr_file.name).read().lower().splitlines()
        os.unlink(hdr_file.name)
        reason = next((h.split(":", 1)[1].strip() for h in headers if h.startswith("x-oam-authz-reason:")), None)
        www = next((h.split(":", 1)[1].strip() for h in headers if h.startswith("www-authenticate:")), None)
        status = int(code or 0)
    else:
        r = C.request(port, path, cert=cert, ca=pki.ca_cert, bearer=token)
        status, body, reason, www = r.status, r.body.decode(), r.reason_code, r.header("www-authenticate")
    print(f"=> HTTP {status}" + (f"  x-oam-authz-reason: {reason}" if reason else ""))
    if www:
        print(f"   www-authenticate: {www}")
    if status == 200:
        seen = json.loads(body)
        fwd = {k: v for k, v in seen["headers"] if k.startswith("x-oam-") or k == "authorization"}
        print(f"   upstream got {seen['method']} {seen['path']} with {fwd or 'no identity headers'}"
              + ("" if any(k == "authorization" for k, _ in seen["headers"]) else " (token removed)"))
    else:
        print(f"   body: {body.strip()}")


def main() -> int:
    if not os.path.exists(E.WASM):
        print(f"{E.WASM} is missing: run `make build`", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="oam-authz-demo-")
    pki = TestPKI(os.path.join(work, "pki"))
    okta = Issuer("https://shop.okta.example/oauth2/default", "api://shop", ("RS256", "ES256"), "shop")
    policy = json.load(open(POLICY))
    policy["providers"][0]["jwks"] = okta.jwks()
    echo = E.EchoServer()
    listeners = [E.Listener("inbound", tls="require", http_filters=[E.wasm_filter(json.dumps(policy))])]
    env = E.Envoy(os.path.join(work, "envoy"), E.render_bootstrap(listeners, pki, echo.port), name="demo")
    try:
        env.start()
        port = env.ports["inbound"]
        print(f"Envoy {E.envoy_binary()} is up; inbound mTLS listener on https://localhost:{port}")
        print(f"policy: {POLICY} (JWKS filled with fresh keys), upstream: echo server on 127.0.0.1:{echo.port}")
        admin = okta.token("RS256", groups=["admins", "staff"], sub="alice@shop.example")
        staff = okta.token("ES256", groups=["staff"], sub="bob@shop.example")
        expired = okta.token("RS256", claims=okta.claims(groups=["admins"], sub="alice@shop.example",
                                                         iat=0, nbf=0, exp=60))
        forged = okta.tampered("RS256", groups=["staff"], sub="mallory@shop.example")
        off = env.log_offset()
        run(port, pki, "allow: the frontend workload reads the catalogue", "/api/items", "frontend")
        run(port, pki, "allow: an admin token (groups contains admins) on /admin/**", "/admin/users/42", "backend",
            admin, "Okta RS256, groups=[admins, staff]")
        run(port, pki, "allow: public health check, any workload", "/healthz", "backend")
        run(port, pki, "401: /admin/** without a token", "/admin/users", "frontend")
        run(port, pki, "401: an expired token", "/admin/users", "frontend", expired, "Okta RS256, expired in 1970")
        run(port, pki, "401: a forged token (payload edited, signature kept)", "/admin/users", "frontend", forged,
            "payload says groups=[admins]")
        run(port, pki, "403: a valid token without the admins group", "/admin/users", "frontend", staff,
            "Okta ES256, groups=[staff]")
        run(port, pki, "403: the backend workload may not read /api/*", "/api/items", "backend")
        print("\n### audit lines from the Envoy log (prefix 'oam-authz-audit ')")
        env.wait_for_log(r"(?s)(oam-authz-audit .*){8}", timeout=10, start=off)
        for line in env.log_text()[off:].splitlines():
            i = line.find(E.AUDIT_PREFIX)
            if i >= 0:
                print(line[i:])
        print("\nnon-zero counters (admin /stats):")
        for k, v in sorted(env.stats('oam_authz').items()):
            if v and k.startswith('wasmcustom.'):
                print(f"  {k}: {v}")
        return 0
    finally:
        env.stop()
        echo.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
