#!/usr/bin/env python3
"""`make demo APP=path/app.yaml CASES=path/cases.yaml`: your own application
in a local Envoy running the oam-authz filter, with real certificates and
real signed tokens, and each policy test case sent to it as a request.

For every protected component, the plugin configuration `oam-authz compile
--format envoy` emits is loaded into an Envoy (one per component) whose mTLS
listener trusts a throw-away mesh CA. Each case becomes one request:

* its `principal` (a component name, `ns/<ns>/sa/<sa>` or a SPIFFE ID) is a
  client certificate with that SPIFFE ID, minted by the CA;
* its `claims`, or the claims of its `token`, are signed into a real token
  with a demo key: the providers' own keys (inline JWKS, or fetched with
  remoteJwks) are replaced by a fresh key per provider, since no one but the
  IdP can sign with those. Times are kept relative to the case's `now`.

Each case prints its curl command line and Envoy's answer, checked against
the case's `expect`; the exit status is 1 if any answer differs. The Envoy
listener has path normalization off, so the filter judges exactly the path of
the case (as `oam-authz test` does). KEEP=1 keeps the directory with the
certificates, configs and logs (so the curl commands can be studied).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import yaml  # noqa: E402

from harness import client as C  # noqa: E402
from harness import envoy as E  # noqa: E402
from harness import replay as R  # noqa: E402
from harness import tokens as T  # noqa: E402

REAL_TIME_CLAIMS = ("nbf", "iat", "exp")


class DemoKeys:
    """One fresh key per provider, of the provider's first allowed algorithm."""

    def __init__(self, configs: dict):
        self.keys: dict[str, T.Key] = {}
        for cfg in configs.values():
            for p in cfg.get("providers", []):
                if p["name"] not in self.keys:
                    self.keys[p["name"]] = T.make_key(p["algorithms"][0], f"demo-{p['name']}")

    def install(self, cfg: dict) -> dict:
        """`cfg` with every provider's keys replaced by its demo key (inline)."""
        out = copy.deepcopy(cfg)
        for p in out.get("providers", []):
            p.pop("remote_jwks", None)
            p["jwks"] = {"keys": [self.keys[p["name"]].jwk]}
        return out


def provider_of(cfg: dict, claims: dict, name: str | None) -> dict | None:
    """The provider the filter routes a token to: by name, else by `iss`."""
    for p in cfg.get("providers", []):
        if (name and p["name"] == name) or (not name and p["issuer"] == claims.get("iss")):
            return p
    providers = cfg.get("providers", [])
    return providers[0] if not name and len(providers) == 1 and "iss" not in claims else None


def case_token(cfg: dict, keys: DemoKeys, case: dict, case_now: int | None,
               real_now: int) -> tuple[str | None, str | None, str]:
    """The token sent for a case, its provider, and how it was made."""
    if case.get("claims") is not None:
        claims = dict(case["claims"])
        p = provider_of(cfg, claims, case.get("provider"))
        if p is None:
            return None, None, "no provider of this component takes these claims: sent without a token"
        # What `test` does not check for given claims (audience, lifetime), a
        # real token must satisfy: fill in what the case leaves out.
        claims.setdefault("iss", p["issuer"])
        claims.setdefault(p.get("audience_claim", "aud"), p["audiences"][0])
        lifetime = min(600, int(p.get("max_lifetime_seconds", 86400)) - 60)
        claims["iat"], claims["exp"] = real_now - 30, real_now - 30 + lifetime
        claims.pop("nbf", None)
    elif case.get("token") is not None:
        _, claims = R.decode(case["token"].strip())
        p = provider_of(cfg, claims, case.get("provider")) or (cfg.get("providers") or [None])[0]
        if p is None:
            return case["token"].strip(), None, "the case's own token"
        if case_now is not None:
            # The same times relative to now as to the case's `now`.
            delta = real_now - case_now
            for k in REAL_TIME_CLAIMS:
                if isinstance(claims.get(k), (int, float)):
                    claims[k] = int(claims[k]) + delta
    else:
        return None, None, "none"
    key = keys.keys[p["name"]]
    token = T.compact({"alg": key.alg, "typ": "JWT", "kid": key.kid}, claims, key.sign)
    return token, p["name"], f"the case's claims, signed with the demo key of provider '{p['name']}'"


def expected(case: dict) -> str:
    e = case["expect"]
    parts = [e["decision"]] + [str(e[k]) for k in ("status", "reason") if k in e]
    if "rule" in e:
        parts.append(f"rule '{e['rule']}'")
    return " ".join(parts)


def matches(case: dict, status: int, reason: str | None, rule: str | None) -> bool:
    """Envoy's answer (status; reason and rule from the response and its audit
    event) against the case's `expect`."""
    e = case["expect"]
    return ((e["decision"] == "allow") == (status == 200)
            and e.get("status", status) == status
            and e.get("reason", reason) == reason
            and e.get("rule", rule) == rule)


def curl_line(port: int, case: dict, path: str, headers: list, cert, token: str | None) -> str:
    hide = (lambda v: v.replace(token, "$TOKEN")) if token else (lambda v: v)
    args = ["curl", "-sS", "--cacert", "…/ca.pem"]
    if cert:
        args += ["--cert", f"…/{os.path.basename(cert.cert)}", "--key", f"…/{os.path.basename(cert.key)}"]
    for k, v in headers:
        if k != "x-request-id":
            args += ["-H", f"{k}: {hide(v)}"]
    method = case.get("method", "GET")
    if method == "HEAD":
        args += ["--head"]
    elif method != "GET":
        args += ["-X", method]
    host = case.get("host", case["component"])
    args += ["--resolve", f"{host}:{port}:127.0.0.1", f"https://{host}:{port}{hide(path)}"]
    return " ".join(f'"{a}"' if "$TOKEN" in a else shlex.quote(a) for a in args)


def run_case(i: int, case: dict, ctx: dict) -> bool:
    comp = case["component"]
    if comp not in ctx["envoys"]:
        print(f"\n### cases[{i}] {case['name']}: component '{comp}' is not protected; skipped")
        return False
    env, cfg = ctx["envoys"][comp], ctx["configs"][comp]
    case_now = case.get("now", ctx["doc"].get("now"))
    token, provider, how = case_token(cfg, ctx["keys"], case, case_now, int(time.time()))
    rid = f"demo-{uuid.uuid4().hex}"
    headers, path = [("x-request-id", rid)], case["path"]
    if token is not None:
        extra, path = R.place_token(token, R.token_location(cfg, provider), path)
        headers += extra
    principal = case.get("principal")
    cert = ctx["pki"].client(ctx["app"].spiffe(principal)) if principal else None
    listener = "mtls-raw" if cert else "optional-raw"
    port = env.ports[listener]
    print(f"\n### cases[{i}] {case['name']}  (component {comp})")
    if principal:
        print(f"# as workload {ctx['app'].spiffe(principal)}")
    if token is not None:
        print(f"TOKEN={token[:24]}…{token[-8:]}  # {how}")
    print(curl_line(port, case, path, headers, cert, token))
    r = C.request(port, path, case.get("method", "GET"), headers, cert=cert, ca=ctx["pki"].ca_cert,
                  host=case.get("host", comp), timeout=10)
    ev = env.wait_audit(rid, timeout=10)
    reason, rule = r.header("x-oam-authz-reason") or ev.get("reason"), ev.get("rule")
    ok = matches(case, r.status, reason, rule)
    got = f"HTTP {r.status}" + (f"  x-oam-authz-reason: {r.header('x-oam-authz-reason')}" if r.header("x-oam-authz-reason") else "")
    print(f"=> {got}  (rule {rule!r}; expected {expected(case)}: {'as expected' if ok else 'DIFFERENT'})")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("app")
    ap.add_argument("cases")
    a = ap.parse_args()
    if not os.path.exists(E.WASM):
        print(f"{E.WASM} is missing: run `make build`", file=sys.stderr)
        return 2
    cli = R.Cli()
    work = tempfile.mkdtemp(prefix="oam-authz-demo-app-")
    envoys: dict = {}
    echo = E.EchoServer()
    try:
        app = R.App.load(a.app)
        with open(a.cases) as f:
            doc = yaml.safe_load(f) or {}
        cases = doc.get("cases") or []
        if not cases:
            print(f"{a.cases}: no cases", file=sys.stderr)
            return 2
        configs = {c: json.loads(t) for c, t in cli.compile_envoy(app, os.path.join(work, "compiled")).items()}
        keys = DemoKeys(configs)
        pki = R.SpiffePKI(os.path.join(work, "pki"))
        for comp, cfg in configs.items():
            envoys[comp] = R.start_component_envoy(work, comp, pki, echo, json.dumps(keys.install(cfg)))
        where = ", ".join(f"{c} on :{e.ports['mtls-raw']}" for c, e in envoys.items())
        print(f"Envoy {E.envoy_binary()}: one per protected component of {app.name} ({where}), "
              f"the filter {E.WASM}, an echo upstream on 127.0.0.1:{echo.port}")
        print(f"certificates, configs and logs: {work}" + ("" if os.environ.get("KEEP") else " (removed at the end; KEEP=1 keeps them)"))
        ctx = {"app": app, "doc": doc, "configs": {c: keys.install(cfg) for c, cfg in configs.items()},
               "keys": keys, "pki": pki, "envoys": envoys}
        results = [run_case(i, c, ctx) for i, c in enumerate(cases)]
        good = sum(results)
        print(f"\n{good} of {len(results)} cases answered by Envoy as expected")
        return 0 if good == len(results) else 1
    finally:
        for env in envoys.values():
            env.stop()
        echo.close()
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
