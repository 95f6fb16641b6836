"""The differential test against Envoy's native filters (docs/differences.md
"Differential test").

A seeded generator makes random policies within the subset both sides can
express (principal patterns, claim `equals`/`contains`, methods, hosts, exact,
prefix, `{*}` and `{**}` paths, deny rules, public rules) and random requests
against each (client certificates or none, valid, expired, wrong-audience,
forged and other tokens, paths near the patterns, normalization tricks). Each
policy runs twice in one Envoy: on a listener with the oam-authz filter and on
a listener with what `oam-authz export-envoy` emits for it (`jwt_authn` +
`rbac`). Every request goes to both; allow/deny must agree except where the
request carries a documented difference (`DIFFERENCES`, each with its anchor in
docs/differences.md).

One Envoy serves a batch of policies (two listeners each), so thousands of
pairs cost a few Envoy starts; connections are kept alive per listener and
client certificate.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import ssl
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field

import yaml

from . import envoy as E
from . import pki as P
from .tokens import Issuer, b64url

CLI = os.environ.get("OAM_AUTHZ_CLI", os.path.join(E.REPO, "target", "release", "oam-authz"))
DOCS = os.path.join(E.REPO, "docs", "differences.md")

# Every difference a mismatch may be blamed on: tag -> anchor in DOCS. A tag is
# set on a request when it is generated, from what it contains, never after
# looking at the answers.
DIFFERENCES = {
    "empty-bearer": "empty-bearer",
    "bearer-case": "bearer-case",
    "crit-header": "crit-header",
    "no-iat-lifetime": "no-iat-lifetime",
    "several-uri-sans": "several-uri-sans",
    "path-not-canonical": "path-not-canonical",
    "several-tokens": "several-tokens",
}

# ---- the identities ---------------------------------------------------------------------

ALIAS = P.ALIAS_DOMAIN
# Extra client certificates (stem -> URI SANs), beyond harness/pki.py's WORKLOADS.
EXTRA_CERTS = {
    "upper": ["spiffe://cluster.local/ns/shop/sa/Frontend"],
    "underscore": ["spiffe://cluster.local/ns/shop/sa/front_end"],
    "extra-segment": ["spiffe://cluster.local/ns/ci/sa/deployer/extra"],
    "not-k8s": ["spiffe://partner.example/workload/x"],
    "two-sans": ["spiffe://cluster.local/ns/admin/sa/nobody", "spiffe://cluster.local/ns/shop/sa/frontend"],
}
CERTS = [None, None, None] + sorted(P.WORKLOADS) + sorted(EXTRA_CERTS)
PRINCIPALS = [
    "spiffe://cluster.local/ns/shop/sa/frontend", "ns/shop/sa/backend", "ns/ci/sa/*", "ns/batch/*",
    "spiffe://partner.example/*", "*", f"spiffe://{ALIAS}/ns/shop/sa/backend", "ns/admin/sa/admin",
    "ns/shop/sa/*", "spiffe://evil.example/ns/shop/sa/frontend",
]

# ---- the token issuers ------------------------------------------------------------------


def make_issuers() -> dict[str, Issuer]:
    return {
        "a": Issuer("https://a.example.com", "api://a", ("RS256", "ES256"), "a"),
        "b": Issuer("https://b.example.com/oauth2", "api://b", ("ES256",), "b"),
        # never configured: an unknown issuer
        "c": Issuer("https://c.example.com", "api://a", ("RS256",), "c"),
    }


CLAIMS = {
    "dept": ["eng", "ops"],
    "groups": ["admins", "devs", "ops"],
    "level": [1, 3],
    "org.team": ["payments", "search"],
}

# ---- policies ---------------------------------------------------------------------------

PATH_PATTERNS = [
    "/a", "/a/b", "/api/items", "/p/*", "/static/*", "/t/{*}/x", "/t/{*}", "/r/{**}", "/api/{*}/items",
    "/deploy", "/admin/{**}", "*",
]
HOSTS = ["api.example.com", "*.example.org", "localhost"]
METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE"]


def _claim_condition(rng: random.Random) -> dict:
    name = rng.choice(sorted(CLAIMS))
    if name == "groups":
        return {"claim": name, "contains": rng.choice(CLAIMS[name])}
    return {"claim": name, "equals": rng.choice(CLAIMS[name])}


def _provider(key: str, iss: Issuer, rng: random.Random) -> dict:
    p = {"name": f"p{key}", "issuer": iss.issuer, "audiences": [iss.audience], "algorithms": sorted(iss.keys),
         "jwks": iss.jwks()}
    roll = rng.random()
    if roll < 0.15:
        p["from"] = [{"header": {"name": "x-token"}}]
    elif roll < 0.25:
        p["from"] = [{"header": {"name": "authorization", "prefix": "Bearer "}}, {"query": "access_token"}]
    if rng.random() < 0.3:
        p["forward_token"] = True
    return p


def _role(i: int, providers: list[dict], rng: random.Random) -> dict:
    role = {"name": f"role{i}"}
    kind = rng.random()
    if kind < 0.4 or not providers:
        role["principals"] = rng.sample(PRINCIPALS, rng.randint(1, 2))
    if kind >= 0.3 and providers:
        prov = rng.choice(providers)
        role["jwt"] = {"provider": prov["name"],
                       "claims": [_claim_condition(rng) for _ in range(rng.choice([0, 1, 1, 2]))]}
    return role


def _rule(i: int, roles: list[dict], rng: random.Random) -> dict:
    r = {"name": f"rule{i}"}
    kind = rng.random()
    if kind < 0.15:
        r["effect"] = "deny"
        if rng.random() < 0.5:
            r["roles"] = [rng.choice(roles)["name"]]
    elif kind < 0.3:
        r["public"] = True
    else:
        r["roles"] = [x["name"] for x in rng.sample(roles, rng.randint(1, min(2, len(roles))))]
    if rng.random() < 0.8:
        r["paths"] = rng.sample(PATH_PATTERNS, rng.randint(1, 2))
    if rng.random() < 0.5:
        r["methods"] = rng.sample(METHODS, rng.randint(1, 2))
    if rng.random() < 0.25:
        r["hosts"] = rng.sample(HOSTS, 1)
    return r


def gen_policy(rng: random.Random, issuers: dict[str, Issuer]) -> dict:
    providers = [_provider(k, issuers[k], rng) for k in sorted(rng.sample(["a", "b"], rng.choice([0, 1, 1, 2])))]
    roles = [_role(i, providers, rng) for i in range(rng.randint(1, 4))]
    rules = [_rule(i, roles, rng) for i in range(rng.randint(1, 5))]
    cfg = {"schema_version": 1, "policy_version": "differential", "trust_domain": "cluster.local", "providers": providers,
           "roles": roles, "rules": rules}
    if rng.random() < 0.3:
        cfg["trust_domain_aliases"] = [ALIAS]
    if not providers:
        del cfg["providers"]
    return cfg


# ---- requests ---------------------------------------------------------------------------

@dataclass
class Req:
    method: str
    path: str
    host: str
    cert: str | None
    headers: list = field(default_factory=list)
    tags: set = field(default_factory=set)
    what: str = ""  # a short description for reports

    def describe(self) -> str:
        return f"{self.method} {self.path} host={self.host} cert={self.cert} {self.what}"


def _fill(pattern: str, rng: random.Random) -> str:
    if pattern == "*":
        return rng.choice(["/", "/anything", "/x/y"])
    seg = lambda: rng.choice(["v1", "x", "items", "a.b", "z9"])  # noqa: E731
    out = pattern.replace("{**}", "/".join(seg() for _ in range(rng.randint(1, 3))))
    while "{*}" in out:
        out = out.replace("{*}", seg(), 1)
    if out.endswith("*"):
        out = out[:-1] + rng.choice(["", "x", "x/y", "deep/er/path"])
    return out


def gen_path(rng: random.Random, policy: dict, tags: set) -> str:
    pats = [p for r in policy["rules"] for p in r.get("paths", [])] or PATH_PATTERNS
    base = _fill(rng.choice(pats), rng)
    roll = rng.random()
    if roll < 0.45:
        return base
    near = [
        base + "/", base.rstrip("/") + "x", base.upper(), base + "?q=1&access_token=x", base + "/extra",
        base.rsplit("/", 1)[0] or "/", "/t//x", "/t/x/x/x", "/r", "/r/", "/r//a", "/admin", "/admin/",
        "/api//items", "/static", "/p", "/a/b/../b", "/x/../a", "/a/./b", "//a", "/a%2Fb", "/r/%2e%2e/a",
        "/a%20b", "/%61", "/a;b", base + ";jsessionid=1", "/a\\b", "/t/%7E/x", "/a#frag",
    ]
    p = rng.choice(near + ["//", "//?x=1"])
    # What Envoy's normalization leaves non-canonical: ';', '\\', and a
    # path of just '//' (merge_slashes leaves it alone).
    if ";" in p or "\\" in p or p.split("?")[0] == "//":
        tags.add("path-not-canonical")
    return p


def _token(kind: str, iss: Issuer, rng: random.Random) -> str:
    now = int(time.time())
    extra = {}
    for name, values in CLAIMS.items():
        if rng.random() < 0.7:
            v = rng.choice(values)
            if name == "groups":
                v = rng.sample(values, rng.randint(1, 2))
            if name == "org.team":
                extra["org"] = {"team": v}
            else:
                extra[name] = v
    alg = rng.choice(sorted(iss.keys))
    if kind == "valid":
        return iss.token(alg, claims=iss.claims(lifetime=600, **extra))
    if kind == "expired":
        return iss.token(alg, claims={**iss.claims(**extra), "iat": now - 4000, "nbf": now - 4000, "exp": now - 3600})
    if kind == "not-yet":
        return iss.token(alg, claims={**iss.claims(**extra), "nbf": now + 3600, "exp": now + 4000, "iat": now})
    if kind == "wrong-aud":
        return iss.token(alg, claims={**iss.claims(**extra), "aud": "api://somebody-else"})
    if kind == "forged":
        return iss.tampered(alg, **extra)
    if kind == "unknown-kid":
        return iss.unknown_kid(alg, **extra)
    if kind == "no-exp":
        c = iss.claims(**extra)
        del c["exp"]
        return iss.token(alg, claims=c)
    if kind == "long-lived":
        return iss.token(alg, claims={**iss.claims(**extra), "exp": now + 3 * 86400})
    if kind == "no-iat":
        c = {**iss.claims(**extra), "exp": now + 2 * 86400}
        del c["iat"], c["nbf"]
        return iss.token(alg, claims=c)
    if kind == "crit":
        return iss.token(alg, claims=iss.claims(lifetime=600, **extra), header_extra={"crit": ["exp"]})
    if kind == "alg-none":
        return iss.alg_none()
    if kind == "garbage":
        return f"{b64url(b'{}')}.{b64url(b'junk')}.{b64url(b'x')}"
    raise ValueError(kind)


TOKEN_KINDS = ["none"] * 6 + ["valid"] * 8 + ["expired", "not-yet", "wrong-aud", "forged", "unknown-kid", "no-exp",
                                                 "long-lived", "no-iat", "crit", "alg-none", "garbage"]


def _placement(policy: dict, iss: Issuer) -> list:
    """Where this issuer's provider reads a token (a random one of its locations)."""
    for p in policy.get("providers", []):
        if p["issuer"] == iss.issuer:
            return p.get("from", [{"header": {"name": "authorization", "prefix": "Bearer "}}])
    return [{"header": {"name": "authorization", "prefix": "Bearer "}}]


def gen_request(rng: random.Random, policy: dict, issuers: dict[str, Issuer]) -> Req:
    tags: set = set()
    method = rng.choice(METHODS + ["GET", "GET"])
    path = gen_path(rng, policy, tags)
    host = rng.choice(["localhost", "api.example.com", "API.Example.com:443", "a.example.org", "example.org",
                       "api.example.com.", "other.example.net"])
    cert = rng.choice(CERTS)
    if cert == "two-sans":
        tags.add("several-uri-sans")
    headers = []
    kind = rng.choice(TOKEN_KINDS)
    what = f"token={kind}"
    if kind != "none":
        iss = issuers[rng.choice(["a", "a", "b", "c"])]
        tok = _token(kind, iss, rng)
        what += f" iss={iss.issuer}"
        if kind == "crit":
            tags.add("crit-header")
        if kind == "no-iat":
            tags.add("no-iat-lifetime")
        loc = rng.choice(_placement(policy, iss))
        if "query" in loc:
            sep = "&" if "?" in path else "?"
            path = f"{path}{sep}{loc['query']}={tok}"
            if "access_token=" in path.split(f"{loc['query']}={tok}")[0]:
                tags.add("several-tokens")
        else:
            h = loc["header"]
            prefix = h.get("prefix", "")
            if prefix and rng.random() < 0.08:
                prefix = prefix.lower()
                tags.add("bearer-case")
            headers.append((h["name"], prefix + tok))
    elif rng.random() < 0.06:
        headers.append(("Authorization", "Bearer "))
        tags.add("empty-bearer")
        what = "token=empty-bearer"
    if "access_token=" in path and headers:
        tags.add("several-tokens")
    return Req(method, path, host, cert, headers, tags, what)


# ---- running ----------------------------------------------------------------------------

def native_filters(policy_path: str) -> list:
    out = subprocess.run([CLI, "export-envoy", "--plugin-config", policy_path], capture_output=True, text=True,
                         timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"export-envoy {policy_path}: {out.stderr}")
    return yaml.safe_load(out.stdout)["http_filters"]


class Pool:
    """Keep-alive HTTPS connections per (port, client certificate)."""

    def __init__(self, pki: P.TestPKI, extra: dict):
        self.pki, self.extra = pki, extra
        self.ctx: dict = {}
        self.conns: dict = {}

    def _context(self, cert: str | None) -> ssl.SSLContext:
        if cert not in self.ctx:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(self.pki.ca_cert)
            files = self.extra.get(cert) or self.pki.clients.get(cert) if cert else None
            if files:
                ctx.load_cert_chain(files.cert, files.key)
            ctx.set_alpn_protocols(["http/1.1"])
            self.ctx[cert] = ctx
        return self.ctx[cert]

    def send(self, port: int, r: Req) -> int:
        for attempt in (0, 1):
            key = (port, r.cert)
            conn = self.conns.get(key)
            if conn is None:
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=self._context(r.cert), timeout=10)
                conn._context.check_hostname = False  # the server certificate says localhost
                self.conns[key] = conn
            try:
                conn.putrequest(r.method, r.path, skip_host=True, skip_accept_encoding=True)
                conn.putheader("Host", r.host)
                for k, v in r.headers:
                    conn.putheader(k, v)
                conn.endheaders()
                resp = conn.getresponse()
                resp.read()
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    self.conns.pop(key, None)
                return resp.status
            except (http.client.HTTPException, OSError):
                conn.close()
                self.conns.pop(key, None)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns.clear()


def verdict(status: int) -> str:
    if 200 <= status < 300:
        return "allow"
    if status in (400, 401, 403, 503):
        return "deny"
    return f"other-{status}"


@dataclass
class Result:
    pairs: int = 0
    requests: int = 0
    mismatches: list = field(default_factory=list)     # unexplained
    tolerated: Counter = field(default_factory=Counter)  # tag -> mismatches it explains
    statuses: Counter = field(default_factory=Counter)   # (ours, native) -> count
    seconds: float = 0.0

    def merge(self, other: "Result"):
        self.pairs += other.pairs
        self.requests += other.requests
        self.mismatches += other.mismatches
        self.tolerated.update(other.tolerated)
        self.statuses.update(other.statuses)
        self.seconds += other.seconds

    def summary(self) -> str:
        lines = [f"differential: {self.pairs} policy pairs, {self.requests} requests, "
                 f"{len(self.mismatches) + sum(self.tolerated.values())} allow/deny mismatches, "
                 f"{len(self.mismatches)} unexplained ({self.seconds:.0f} s)"]
        for tag, n in sorted(self.tolerated.items()):
            lines.append(f"  documented difference {tag}: {n} (docs/differences.md#{DIFFERENCES[tag]})")
        for m in self.mismatches[:20]:
            lines.append(f"  UNEXPLAINED {m}")
        return "\n".join(lines)


def run_batch(workdir: str, name: str, pki, echo, extra, policies: list[dict], requests: list[list[Req]],
              wasm: str = E.WASM, native_override: list | None = None) -> Result:
    """One Envoy with two listeners per policy; every request to both.
    `native_override` replaces the exported filters (to show the comparison
    can fail)."""
    listeners = []
    os.makedirs(workdir, exist_ok=True)
    for i, pol in enumerate(policies):
        path = os.path.join(workdir, f"{name}-{i}.json")
        with open(path, "w") as f:
            json.dump(pol, f)
        listeners.append(E.Listener(f"ours{i}", tls="optional", http_filters=[E.wasm_filter(json.dumps(pol), wasm)]))
        listeners.append(E.Listener(f"native{i}", tls="optional", http_filters=native_override or native_filters(path)))
    env = E.Envoy(os.path.join(workdir, name), E.render_bootstrap(listeners, pki, echo.port), name=name)
    res = Result()
    pool = Pool(pki, extra)
    env.start(timeout=60)
    try:
        for i, (pol, reqs) in enumerate(zip(policies, requests)):
            res.pairs += 1
            for r in reqs:
                ours = pool.send(env.ports[f"ours{i}"], r)
                native = pool.send(env.ports[f"native{i}"], r)
                res.requests += 1
                res.statuses[(ours, native)] += 1
                if verdict(ours) != verdict(native):
                    known = sorted(r.tags & set(DIFFERENCES))
                    if known:
                        res.tolerated[known[0]] += 1
                    else:
                        res.mismatches.append(f"policy {name}-{i}.json: {r.describe()}: ours {ours}, native {native}")
    finally:
        pool.close()
        env.stop()
    return res


def extra_certs(pki: P.TestPKI) -> dict:
    return {stem: pki.issue_client(stem, uris) for stem, uris in EXTRA_CERTS.items()}


def run(seed: int, pairs: int, requests_per_pair: int, batch: int, workdir: str, pki, echo,
        issuers: dict[str, Issuer] | None = None, progress=None) -> Result:
    rng = random.Random(seed)
    issuers = issuers or make_issuers()
    extra = extra_certs(pki)
    total = Result()
    t0 = time.monotonic()
    for b in range(0, pairs, batch):
        pols = [gen_policy(rng, issuers) for _ in range(min(batch, pairs - b))]
        reqs = [[gen_request(rng, p, issuers) for _ in range(requests_per_pair)] for p in pols]
        total.merge(run_batch(workdir, f"batch{b // batch}", pki, echo, extra, pols, reqs))
        if progress:
            progress(total)
    total.seconds = time.monotonic() - t0
    return total


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="oam-authz vs export-envoy's native filters, on random policies")
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=25, help="requests per policy pair")
    ap.add_argument("--batch", type=int, default=40, help="policy pairs per Envoy")
    ap.add_argument("--seed", type=int, default=13)
    a = ap.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="oam-authz-differential-")
    pki = P.TestPKI(os.path.join(workdir, "pki"))
    echo = E.EchoServer()
    try:
        res = run(a.seed, a.pairs, a.requests, a.batch, workdir, pki, echo,
                  progress=lambda r: print(f"  … {r.pairs} pairs, {r.requests} requests", flush=True))
    finally:
        echo.close()
    print(res.summary())
    print("  status pairs (ours, native): " + ", ".join(f"{k}: {v}" for k, v in res.statuses.most_common()))
    return 1 if res.mismatches else 0
