#!/usr/bin/env python3
"""`make bench-soak SOAK_S=1800`: a long mixed soak of one Envoy with the filter.

One measured Envoy (the default module, `--concurrency 2` as in Istio, pinned
to CPU 1, audit events on) gets its policy by ECDS from a watched file and its
keys from a remote JWKS served by the test IdP (`harness/idp.py`) on loopback.
The load (`loadgen`, pinned to CPU 0) runs open loop at `--load` (70%) of the
saturation measured first with a short closed-loop run of the same mix:
cache hits (a few valid tokens reused), misses (a pool of distinct valid
tokens per key generation), garbage, forged and expired tokens, requests
denied by a deny rule, by a missing role and by no rule, token-less and
public paths.

The run is cut into segments of `--reload-every` seconds (60 for runs of 4
minutes and more). In each segment the policy is hot-reloaded once (at its
middle), alternating between two versions that differ in what they allow
(`VARIANTS`); on a schedule the IdP rotates its key: it publishes a new key
(at a quarter of a segment), tokens of the new key are sent from the next
segment on (once the filter has fetched it: the IdP served the new set, plus
`KEY_SETTLE_S`), the old key is removed two segments later, and from the
segment after that its tokens must get 401 `token_unknown_kid`. Requests
whose answer depends on a key change still in flight are not sent during it
(so every expected status is exact).

Every response is joined with its audit event by `x-request-id` and checked:
the status must be the one the policy version named in the event gives that
kind of request (`KINDS`), the event's status and reason must match, and the
version must be the one in force when the request was decided (from its
write to `GRACE_S` after Envoy reported the next reload). Envoy's RSS is
sampled every 10 s; the least-squares slope over the second half is checked
against `SLOPE_BOUND_KB_MIN` on runs of at least `MIN_TREND_S`. Results:
stdout and `results/soak/latest.{md,json}`; exit 1 on any failed check.

Usage:
  test-harness/.venv/bin/python test-harness/bench/soak.py [--seconds S] [--reload-every S]
      [--load FRACTION] [--out DIR] [--wasm FILE] [--keep]
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import queue
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import bench as B  # noqa: E402
from harness import envoy as E  # noqa: E402
from harness import keys_env as K  # noqa: E402
from harness import tokens as T  # noqa: E402
from harness.idp import TestIdP  # noqa: E402

AUDIENCE = "api://soak"
HOST = "soak.local"
CONNS = 32
CONCURRENCY = 2
MIX_LINES = 40_000          # requests per cycle of the mix file (distinct miss tokens: 18% of it)
HITS_PER_GEN = 4            # the "few valid tokens reused"
SAT_WARMUP_S, SAT_S = 2.0, 5.0
RSS_EVERY_S = 10.0
# Requests decided by the old policy may start up to this long after Envoy
# reported a reload (as in test_reload_ecds.py: the main thread counts the
# reload, then posts the new config to each worker).
GRACE_S = 1.0
# After the IdP served a changed key set: the fetching worker writes it to
# shared data, every worker installs it on its next tick (250 ms, docs/operations.md
# "Worker threads: one fetcher, shared data"); 4 ticks of margin.
KEY_SETTLE_S = 1.0
SLOPE_BOUND_KB_MIN = 50.0   # the RSS goal of test-harness/bench/README.md
MIN_TREND_S = 600           # shorter runs report the slope but do not judge it
RESULTS = os.path.join(HERE, "results", "soak")


# --------------------------------------------------------------------------------------
# What is sent, and what each policy version must answer
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    name: str
    path: str
    tokens: str          # token source: hit miss garbage forged expired norole admin none prev
    expect: dict         # variant -> (status, reason)
    weight: int          # share of the mix, in %
    desc: str


def both(status: int, reason: str) -> dict:
    return {"A": (status, reason), "B": (status, reason)}


# The two policy versions (see `policy`): A lets readers into /api and admins
# into /admin and has /open-a public; B lets any valid token into /api,
# readers into /admin, and has /open-b public. Both deny /debug/ and serve
# /healthz publicly.
VARIANTS = ("A", "B")
KINDS = [
    Kind("hit", "/api/items", "hit", both(200, "role_granted"), 30, "one of 4 reader tokens, reused (cache hit)"),
    Kind("miss", "/api/items", "miss", both(200, "role_granted"), 18, "a distinct reader token (cache miss)"),
    Kind("garbage", "/api/items", "garbage", both(401, "token_malformed"), 8, "random JWT-shaped bytes"),
    Kind("forged", "/api/items", "forged", both(401, "token_bad_signature"), 5,
         "current kid, valid claims, random signature"),
    Kind("expired", "/api/items", "expired", both(401, "token_expired"), 4, "validly signed, exp an hour ago"),
    Kind("no-role", "/api/items", "norole", {"A": (403, "role_required"), "B": (200, "role_granted")}, 5,
         "valid token without the readers group"),
    Kind("reader-on-admin", "/admin/panel", "hit", {"A": (403, "role_required"), "B": (200, "role_granted")}, 4,
         "reader token on /admin"),
    Kind("admin", "/admin/panel", "admin", {"A": (200, "role_granted"), "B": (403, "role_required")}, 4,
         "admin token on /admin"),
    Kind("deny-rule", "/debug/vars", "hit", both(403, "denied_by_rule"), 4, "reader token on the denied /debug/"),
    Kind("public", "/healthz", "none", both(200, "public_rule"), 6, "no token, public in both"),
    Kind("open-a", "/open-a", "none", {"A": (200, "public_rule"), "B": (403, "no_matching_rule")}, 3,
         "no token, public in A only"),
    Kind("open-b", "/open-b", "none", {"A": (403, "no_matching_rule"), "B": (200, "public_rule")}, 3,
         "no token, public in B only"),
    Kind("no-token", "/api/items", "none", both(401, "token_missing"), 3, "no token on /api"),
    Kind("prev-key", "/api/items", "prev", both(200, "role_granted"), 3,
         "reader token of the previous key, still published"),
    Kind("removed-key", "/api/items", "prev", both(401, "token_unknown_kid"), 3,
         "reader token of the previous key, removed by the IdP"),
]
KIND_INDEX = {k.name: i for i, k in enumerate(KINDS)}


def policy(idp: TestIdP, version: str, variant: str, refresh: int) -> dict:
    """Version `version` of the soak policy, in variant A or B. The unknown-kid
    refetch interval is below the refresh, so removed-key tokens do cause
    early refetches (rate-limited)."""
    rules = [
        {"name": "no-debug", "effect": "deny", "paths": ["/debug/{**}"]},
        {"name": "health", "public": True, "methods": ["GET"], "paths": ["/healthz"]},
        {"name": "open", "public": True, "paths": ["/open-a" if variant == "A" else "/open-b"]},
        {"name": "api", "roles": ["reader" if variant == "A" else "user"], "paths": ["/api/{**}"]},
        {"name": "admin", "roles": ["admin" if variant == "A" else "reader"], "paths": ["/admin/{**}"]},
    ]
    p = K.remote_policy(idp, version, refresh=refresh, timeout_ms=1000, min_refetch=max(1, refresh // 4),
                        rules=rules)
    p["providers"][0]["audiences"] = [AUDIENCE]

    def group(g):
        return {"provider": "idp", "claims": [{"claim": "groups", "contains": g}]}

    p["roles"] = [{"name": "reader", "jwt": group("readers")}, {"name": "user", "jwt": {"provider": "idp"}}]
    if variant == "A":
        p["roles"].append({"name": "admin", "jwt": group("admins")})
    return p


def version_label(n: int, variant: str) -> str:
    return f"soak@{n}-{variant}"


def parse_version(label: str) -> tuple[int, str] | None:
    m = re.fullmatch(r"soak@(\d+)-([AB])", label)
    return (int(m.group(1)), m.group(2)) if m else None


# --------------------------------------------------------------------------------------
# Tokens, per key generation
# --------------------------------------------------------------------------------------

@dataclass
class Generation:
    n: int
    key: T.Key
    hit: list = field(default_factory=list)
    miss: list = field(default_factory=list)
    forged: list = field(default_factory=list)
    expired: list = field(default_factory=list)
    norole: list = field(default_factory=list)
    admin: list = field(default_factory=list)


def mint_generation(n: int, key: T.Key, issuer: str, lifetime: int, sizes: dict) -> Generation:
    now = int(time.time())
    header = {"alg": key.alg, "typ": "JWT", "kid": key.kid}

    def claims(i: int, what: str, groups, iat: int = now, exp: int | None = None) -> dict:
        c = {"iss": issuer, "aud": AUDIENCE, "sub": f"g{n}-{what}-{i}", "iat": iat, "nbf": iat,
             "exp": exp if exp is not None else now + lifetime, "jti": f"g{n}-{what}-{i}"}
        if groups:
            c["groups"] = list(groups)
        return c

    def sign(c):
        return T.compact(header, c, key.sign)

    g = Generation(n, key)
    g.hit = [sign(claims(i, "hit", ["readers"])) for i in range(HITS_PER_GEN)]
    g.norole = [sign(claims(i, "norole", [])) for i in range(2)]
    g.admin = [sign(claims(i, "admin", ["admins"])) for i in range(2)]
    g.miss = [sign(claims(i, "miss", ["readers"])) for i in range(sizes["miss"])]
    g.expired = [sign(claims(i, "expired", ["readers"], iat=now - 7200, exp=now - 3600))
                 for i in range(sizes["expired"])]
    h = T.b64url(json.dumps(header, separators=(",", ":")).encode())
    g.forged = [f"{h}.{T.b64url(json.dumps(claims(i, 'forged', ['readers']), separators=(',', ':')).encode())}."
                f"{T.b64url(os.urandom(64))}" for i in range(sizes["forged"])]
    return g


def pool_sizes(lines: int) -> dict:
    w = {k.name: k.weight for k in KINDS}
    return {"miss": lines * w["miss"] // 100 + 1, "forged": lines * w["forged"] // 100 + 1,
            "expired": lines * w["expired"] // 100 + 1, "garbage": lines * w["garbage"] // 100 + 1}


# --------------------------------------------------------------------------------------
# The mix of one segment
# --------------------------------------------------------------------------------------

def build_mix(path: str, lines: int, cur: Generation, prev: Generation | None, prev_kind: str | None,
              garbage: list[str], rng: random.Random) -> list[int]:
    """Writes the loadgen request file (`PATH<TAB>TOKEN` lines, shuffled by
    the kinds' weights) and returns the kind index of each line. `prev_kind`
    ("prev-key", "removed-key" or None) says what the previous key's tokens
    are expected to get; None: they are not sent (a change is in flight)."""
    weights = {k.name: k.weight for k in KINDS if k.tokens != "prev"}
    if prev is not None and prev_kind:
        weights[prev_kind] = KINDS[KIND_INDEX[prev_kind]].weight
    else:
        weights["hit"] += 3  # keep the total at 100
    total = sum(weights.values())
    order: list[int] = []
    for name, w in weights.items():
        order += [KIND_INDEX[name]] * round(lines * w / total)
    rng.shuffle(order)
    sources = {"hit": cur.hit, "miss": cur.miss, "garbage": garbage, "forged": cur.forged,
               "expired": cur.expired, "norole": cur.norole, "admin": cur.admin,
               "prev": (prev.hit + prev.miss[: 4 * len(prev.hit) * 50]) if prev else []}
    used = {k: 0 for k in sources}
    with open(path, "w") as f:
        for ki in order:
            k = KINDS[ki]
            tok = ""
            if k.tokens != "none":
                src = sources[k.tokens]
                tok = src[used[k.tokens] % len(src)]
                used[k.tokens] += 1
            f.write(f"{k.path}\t{tok}\n")
    return order


# --------------------------------------------------------------------------------------
# Envoy
# --------------------------------------------------------------------------------------

def start_envoy(work: str, idp: TestIdP, policy_json: str, wasm: str, cpu: str | None) -> tuple[B.BenchEnvoy, str]:
    """The measured Envoy: plain HTTP/1.1 listener (both workers serve: exact
    connection balance), the filter by ECDS from a watched file, an `idp`
    cluster, a direct 200 for allowed requests, client request ids kept."""
    cfgdir = os.path.join(work, "ecds")
    os.makedirs(cfgdir, exist_ok=True)
    ecds = os.path.join(cfgdir, "oam-authz.yaml")
    K.write_ecds(ecds, policy_json, wasm)
    boot = B.bootstrap([E.ecds_filter(ecds, watched_dir=cfgdir)], exact_balance=True)
    boot["static_resources"]["clusters"] = [K.idp_cluster(idp)]
    env = B.BenchEnvoy(os.path.join(work, "envoy"), boot, list(B.INFO_LOG), cpu, concurrency=CONCURRENCY,
                       name="envoy")
    env.start(timeout=60)
    return env, ecds


def ecds_stat(env: E.Envoy, name: str) -> int:
    for k, v in env.stats("extension_config_discovery").items():
        if k.endswith(f".{name}"):
            return v
    return 0


def rotate_log(env: E.Envoy, dest: str) -> None:
    """Envoy reopens its log on SIGUSR1: lines buffered before the reopen
    (file flush interval 1 s) may land in the next file."""
    os.rename(env.log_path, dest)
    os.kill(env.proc.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while not os.path.exists(env.log_path) and time.monotonic() < deadline:
        time.sleep(0.02)


def get_status(port: int, path: str, token: str | None) -> tuple[int, str | None]:
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        h = {"host": HOST}
        if token:
            h["authorization"] = f"Bearer {token}"
        c.request("GET", path, headers=h)
        r = c.getresponse()
        r.read()
        return r.status, r.getheader("x-oam-authz-reason")
    finally:
        c.close()


def loadgen_cmd(port: int, rate: float | None, seconds: float, reqs: str, cpu: str | None, id_prefix: str,
                log: str | None) -> list[str]:
    """Open loop at `rate`, or closed loop (rate None)."""
    cmd = B.pin(cpu) + [B.LOADGEN, "--addr", f"127.0.0.1:{port}", "--rate", f"{rate or 1:.1f}",
                        "--duration", f"{seconds:.3f}", "--conns", str(CONNS), "--host", HOST,
                        "--requests", reqs, "--id-prefix", id_prefix]
    return cmd + (["--log", log] if log else []) + ([] if rate else ["--closed"])


# --------------------------------------------------------------------------------------
# Checking every response against its audit event
# --------------------------------------------------------------------------------------

# audit.rs writes the fields in a fixed order; json.loads is the fallback.
AUDIT_RX = re.compile(r'\{"ts":"([^"]+)","request_id":"([^"]*)","policy":"([^"]*)","mode":"[^"]*",'
                      r'"decision":"[^"]*","status":(\d+),"reason":"([^"]*)"')
_minute_cache: dict[str, float] = {}


def ts_seconds(ts: str) -> float:
    """`2026-11-22T03:07:30.123Z` as Unix seconds (cached per minute)."""
    base = _minute_cache.get(ts[:16])
    if base is None:
        base = dt.datetime.strptime(ts[:16], "%Y-%m-%dT%H:%M").replace(tzinfo=dt.timezone.utc).timestamp()
        _minute_cache[ts[:16]] = base
    return base + float(ts[17:-1])


@dataclass
class Segment:
    seg: int
    lg: dict                 # loadgen's JSON
    log: str                 # loadgen's per-request log
    kinds: list[int]         # kind index per line of the mix
    keys: str                # the key state, for failure context


class Checker:
    """Runs in a thread: joins each segment's responses with the audit events
    of its Envoy log file (and the next one: buffered lines move on)."""

    FAILS = ("no_response", "missing_event", "event_status_differs", "wrong_status", "unexpected_status",
             "wrong_reason", "decided_before_written", "decided_by_stale_policy", "unknown_policy")

    def __init__(self, reloads: list[dict], idp_fetches, keep_dir: str):
        self.reloads = reloads           # appended by the controller: n, t_write, t_reported
        self.idp_fetches = idp_fetches   # () -> [unix s of each /jwks request]
        self.keep_dir = keep_dir
        self.q: queue.Queue = queue.Queue()
        self.fails = {k: 0 for k in self.FAILS}
        self.examples: list[dict] = []
        self.by_kind: dict[str, dict[str, dict[int, int]]] = {}
        self.statuses: dict[int, int] = {}
        self.by_version: dict[str, int] = {}
        self.reasons: dict[str, int] = {}
        self.checked = 0
        self.pending: list = []           # (seg, rid, kind, status, sent_s, keys) without an event yet
        self.nonaudit = open(os.path.join(keep_dir, "envoy-nonaudit.log"), "w")
        self.kept_logs = 0
        self.error: str | None = None
        self.seconds: list[float] = []    # processing time per Envoy log file
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            try:
                self.process(*item)
            except Exception as e:  # noqa: BLE001 - reported, the run fails
                self.error = f"checker: {type(e).__name__}: {e}"

    def parse_log(self, path: str) -> dict:
        events = {}
        with open(path, errors="replace") as f:
            for line in f:
                i = line.find(E.AUDIT_PREFIX)
                if i < 0:
                    self.nonaudit.write(line)
                    continue
                m = AUDIT_RX.match(line, i + len(E.AUDIT_PREFIX))
                if m:
                    events[m.group(2)] = (ts_seconds(m.group(1)), sys.intern(m.group(3)), int(m.group(4)),
                                          sys.intern(m.group(5)))
                else:
                    ev = json.loads(line[i + len(E.AUDIT_PREFIX):])
                    events[ev["request_id"]] = (ts_seconds(ev["ts"]), ev["policy"], ev["status"], ev["reason"])
        self.nonaudit.flush()
        return events

    def process(self, seg: Segment | None, envoy_log: str):
        t0 = time.monotonic()
        events = self.parse_log(envoy_log)
        failed_before = sum(self.fails.values())
        for p in self.pending:
            self.check(p, events.get(p[1]))
        self.pending = []
        if seg is not None:
            t_lg = seg.lg["t0_unix_us"] / 1e6
            n = len(seg.kinds)
            with open(seg.log) as f:
                for line in f:
                    i, status, sent = line.split()
                    i = int(i)
                    rid = f"s{seg.seg}-{i}"
                    p = (seg.seg, rid, seg.kinds[i % n], int(status), t_lg + int(sent) / 1e6, seg.keys)
                    ev = events.get(rid)
                    if ev is None and p[3] != 0:
                        self.pending.append(p)  # its event may be in the next file
                    else:
                        self.check(p, ev)
            os.remove(seg.log)
        if sum(self.fails.values()) > failed_before and self.kept_logs < 3:
            self.kept_logs += 1
            shutil.move(envoy_log, os.path.join(self.keep_dir, os.path.basename(envoy_log)))
        else:
            os.remove(envoy_log)
        self.seconds.append(round(time.monotonic() - t0, 2))

    def finish(self):
        for p in self.pending:
            self.check(p, None)
        self.pending = []
        self.nonaudit.close()

    def fail(self, what: str, p, ev, expect=None):
        self.fails[what] += 1
        if len(self.examples) < 40:
            seg, rid, ki, status, sent, keys = p
            ex = {"failure": what, "segment": seg, "request_id": rid, "kind": KINDS[ki].name,
                  "path": KINDS[ki].path, "status": status, "sent_unix": round(sent, 3), "keys": keys}
            if ev:
                ex["event"] = {"ts_unix": round(ev[0], 3), "policy": ev[1], "status": ev[2], "reason": ev[3]}
            if expect:
                ex["expected"] = list(expect)
            t = ev[0] if ev else sent
            done = [r for r in self.reloads if r.get("t_reported") and r["t_write"] <= t]
            if done:
                ex["s_since_last_reload_write"] = round(t - done[-1]["t_write"], 3)
                ex["last_reload"] = done[-1]["version"]
            fetches = [x for x in self.idp_fetches() if x <= t]
            if fetches:
                ex["s_since_last_idp_fetch"] = round(t - fetches[-1], 3)
            self.examples.append(ex)

    def check(self, p, ev):
        seg, rid, ki, status, sent, keys = p
        k = KINDS[ki]
        self.checked += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == 0:
            return self.fail("no_response", p, ev)
        if ev is None:
            return self.fail("missing_event", p, ev)
        ts, label, ev_status, ev_reason = ev
        self.by_version[label] = self.by_version.get(label, 0) + 1
        self.reasons[ev_reason] = self.reasons.get(ev_reason, 0) + 1
        pv = parse_version(label)
        if pv is None or pv[0] >= len(self.reloads):
            return self.fail("unknown_policy", p, ev)
        n, variant = pv
        row = self.by_kind.setdefault(k.name, {}).setdefault(variant, {})
        row[status] = row.get(status, 0) + 1
        exp = k.expect[variant]
        if ev_status != status:
            self.fail("event_status_differs", p, ev, exp)
        elif status != exp[0]:
            known = {e[0] for e in k.expect.values()}
            self.fail("wrong_status" if status in known else "unexpected_status", p, ev, exp)
        elif ev_reason != exp[1]:
            self.fail("wrong_reason", p, ev, exp)
        # the version in force: from its write until GRACE_S after the next one was reported
        r = self.reloads[n]
        if ts < r["t_write"] - 0.002:
            self.fail("decided_before_written", p, ev)
        elif n + 1 < len(self.reloads):
            nxt = self.reloads[n + 1]
            if nxt.get("t_reported") and ts > nxt["t_reported"] + GRACE_S:
                self.fail("decided_by_stale_policy", p, ev)


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------

def plan(seconds: int, reload_every: float | None) -> tuple[float, int, list[int]]:
    """Segment length, number of segments, the segments where a rotation
    starts (publish; the old key is removed two segments later and checked
    refused in the one after)."""
    seg_len = reload_every or (60.0 if seconds >= 240 else max(10.0, seconds / 4))
    nseg = max(1, int(seconds // seg_len))
    if nseg >= 8:
        starts = list(range(1, nseg - 3, 10))
    elif nseg >= 4:
        starts = [0]
    else:
        starts = []
    return seg_len, nseg, starts


class Soak:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="oam-authz-soak-")
        multi = (os.cpu_count() or 1) >= 2
        self.cpu_envoy, self.cpu_load = (B.ENVOY_CPU, B.LOAD_CPU) if multi else (None, None)
        self.seg_len, self.nseg, self.rot_starts = plan(args.seconds, args.reload_every)
        self.refresh = max(2, int(self.seg_len // 3))
        self.reloads: list[dict] = []
        self.rotations: list[dict] = []
        self.samples: list[list] = []
        self.segments: list[dict] = []
        self.notes: list[str] = []
        self.failures: list[str] = []
        self.rng = random.Random(13)
        self.mono_to_unix = time.time() - time.monotonic()

    def log(self, msg: str):
        print(msg, flush=True)

    # -- pieces --------------------------------------------------------------------------

    def reload(self, variant: str) -> dict:
        n = len(self.reloads)
        label = version_label(n, variant)
        before = ecds_stat(self.env, "config_reload")
        t_write = time.time()
        K.write_ecds(self.ecds, json.dumps(policy(self.idp, label, variant, self.refresh)), self.wasm)
        r = {"n": n, "version": label, "variant": variant, "t_write": t_write}
        self.reloads.append(r)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if ecds_stat(self.env, "config_reload") > before:
                r["t_reported"] = time.time()
                r["reported_after_ms"] = round((r["t_reported"] - t_write) * 1000, 1)
                return r
            time.sleep(0.02)
        self.failures.append(f"reload {label}: Envoy did not report it within 10 s")
        return r

    def idp_fetches(self) -> list[float]:
        with self.idp._lock:
            return [t + self.mono_to_unix for t, p in self.idp.requests if p == "/jwks"]

    def wait_pickup(self, t_change: float, what: str) -> float | None:
        """Seconds from the IdP's change to the moment every worker has the
        new set: the first /jwks request after it, plus KEY_SETTLE_S."""
        deadline = t_change + self.refresh * 1.2 + 15
        while True:
            after = [t for t in self.idp_fetches() if t >= t_change]
            if after:
                ready = after[0] + KEY_SETTLE_S
                while time.time() < ready:
                    self.maybe_sample()
                    time.sleep(0.05)
                return after[0] - t_change
            if time.time() > deadline:
                break
            self.maybe_sample()
            time.sleep(0.05)
        self.failures.append(f"{what}: the filter did not fetch the changed key set within "
                             f"{deadline - t_change:.0f} s")
        return None

    def maybe_sample(self):
        now = time.monotonic()
        if now < self.next_sample:
            return
        self.next_sample += RSS_EVERY_S
        pid = self.env.proc.pid
        heap = B.tcmalloc_split(self.env)
        ticks, cpu = B.proc_cpu_ticks(pid), B.cpu_ticks()
        other = None
        if self.last_ticks and self.cpu_envoy in cpu:
            t_prev, c_prev, cpu_prev = self.last_ticks
            d = {k: cpu[self.cpu_envoy][k] - cpu_prev[self.cpu_envoy][k] for k in cpu[self.cpu_envoy]}
            secs = (now - t_prev) or 1
            tick_s = 1 / os.sysconf("SC_CLK_TCK")
            other = round(max(0, B.busy(d) - (ticks - c_prev) - d["irq"]) * tick_s / secs, 3)
            envoy_util = round((ticks - c_prev) * tick_s / secs, 3)
        else:
            envoy_util = None
        self.last_ticks = (now, ticks, cpu)
        self.samples.append([round(now - self.t_start, 1), B.proc_status_kb(pid, "VmRSS"),
                             B.proc_status_kb(pid, "VmHWM"), heap.get("heap_live"), envoy_util, other])

    def saturation(self, mix: str) -> dict:
        port = self.env.ports["bench"]
        B.run_child(loadgen_cmd(port, None, SAT_WARMUP_S, mix, self.cpu_load, "warm-", None), timeout=60)
        b0, c0, t0 = B.cpu_ticks(), B.proc_cpu_ticks(self.env.proc.pid), time.monotonic()
        lg = json.loads(B.run_child(loadgen_cmd(port, None, SAT_S, mix, self.cpu_load, "sat-", None), timeout=60))
        b1, c1, t1 = B.cpu_ticks(), B.proc_cpu_ticks(self.env.proc.pid), time.monotonic()
        tick_s = 1 / os.sysconf("SC_CLK_TCK")
        busy = None
        if self.cpu_envoy in b0:
            d = {k: b1[self.cpu_envoy][k] - b0[self.cpu_envoy][k] for k in b0[self.cpu_envoy]}
            busy = round(min(1.0, B.busy(d) * tick_s / (t1 - t0)), 3)
        return {"rps": lg["achieved_rps"], "seconds": SAT_S, "conns": CONNS, "statuses": lg["statuses"],
                "errors": lg["errors"], "envoy_cpu_busy": busy,
                "envoy_cpu_us_per_req": round((c1 - c0) * tick_s * 1e6 / max(1, lg["completed"]), 1)}

    # -- the run ---------------------------------------------------------------------------

    def setup(self):
        a = self.args
        self.wasm = os.path.join(self.work, "oam_authz.wasm")
        shutil.copyfile(a.wasm, self.wasm)  # a rebuild during the run must not change what reloads load
        self.module = open(self.wasm, "rb").read()
        self.idp = TestIdP(audience=AUDIENCE)
        sizes = pool_sizes(a.lines)
        lifetime = a.seconds + 3600
        t0 = time.monotonic()
        keys = [self.idp.keys[0]] + [self.idp.new_key() for _ in self.rot_starts]
        self.gens = [mint_generation(i + 1, k, self.idp.issuer, lifetime, sizes) for i, k in enumerate(keys)]
        self.garbage = B.garbage_pool(sizes["garbage"], os.urandom)
        self.log(f"soak: {self.nseg} segments of {self.seg_len:.0f} s, rotations starting in segments "
                 f"{self.rot_starts or 'none'}; {len(self.gens)} key generations minted in "
                 f"{time.monotonic() - t0:.1f} s ({sizes['miss']} miss tokens each)")
        self.env, self.ecds = self._start()

    def _start(self):
        r0 = {"n": 0, "version": version_label(0, "A"), "variant": "A", "t_write": time.time()}
        pj = json.dumps(policy(self.idp, r0["version"], "A", self.refresh))
        env, ecds = start_envoy(self.work, self.idp, pj, self.wasm, self.cpu_envoy)
        r0["t_reported"] = time.time()
        self.reloads.append(r0)
        port = env.ports["bench"]
        deadline = time.monotonic() + 15
        while get_status(port, "/api/items", self.gens[0].hit[0])[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the first key set never arrived\n{env.log_tail(20)}")
            time.sleep(0.1)
        return env, ecds

    def run(self) -> dict:
        # Long on purpose: the run's sequence, segment by segment, in order.
        a = self.args
        self.setup()
        env = self.env
        port = env.ports["bench"]
        cur, prev, prev_kind = 0, None, None
        mix = os.path.join(self.work, "mix.txt")
        kinds = build_mix(mix, a.lines, self.gens[cur], None, None, self.garbage, self.rng)
        sat = self.saturation(mix)
        rate = a.load * sat["rps"]
        self.log(f"saturation (closed loop, {CONNS} connections, {SAT_S:.0f} s): {sat['rps']:.0f} req/s, "
                 f"CPU {self.cpu_envoy} busy {sat['envoy_cpu_busy']}; soak at {100 * a.load:.0f}%: {rate:.0f} req/s")
        time.sleep(1.0)  # the saturation run's last counters and events reach Envoy (250 ms tick)
        rotate_log(env, os.path.join(self.work, "envoy-setup.log"))
        checker = Checker(self.reloads, self.idp_fetches, self.work)
        self.t_start = time.monotonic()
        self.next_sample, self.last_ticks = self.t_start, None
        self.maybe_sample()
        reloads0 = ecds_stat(env, "config_reload")
        fetches0 = len(self.idp_fetches())
        self.counters0 = env.stats("oam_authz|downstream_cx_total")
        pending_change = None   # (what, unix time) of an IdP change the next segment depends on
        for seg in range(self.nseg):
            # what the previous key's tokens get in this segment
            removing = (seg - 2) in self.rot_starts
            if pending_change:
                what, t_change = pending_change
                took = self.wait_pickup(t_change, what)
                self.rotations[-1][f"{what}_fetched_after_s"] = None if took is None else round(took, 2)
                if took is None:
                    # the key state is unknown from here: no more key-dependent kinds, no more rotations
                    prev_kind, self.rot_starts = None, []
                elif what == "publish":
                    prev, cur, prev_kind = cur, cur + 1, "prev-key"
                else:
                    prev_kind = "removed-key"
                    self.rotations[-1]["done"] = True
                pending_change = None
            seg_prev_kind = None if removing else prev_kind
            kinds = build_mix(mix, a.lines, self.gens[cur], self.gens[prev] if prev is not None else None,
                              seg_prev_kind, self.garbage, self.rng)
            keys = f"current k{cur + 1}" + (f", previous k{prev + 1}: {seg_prev_kind or 'not sent'}"
                                            if prev is not None else "")
            lg_log = os.path.join(self.work, f"seg{seg}.responses")
            t_seg = time.monotonic()
            cmd = loadgen_cmd(port, rate, self.seg_len - 0.15, mix, self.cpu_load, f"s{seg}-", lg_log)
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 stdin=subprocess.DEVNULL, preexec_fn=B._die_with_parent)
            B._children.add(p)
            actions = [(t_seg + self.seg_len / 2, "reload")]
            if seg in self.rot_starts or removing:
                actions.append((t_seg + self.seg_len / 4, "rotate"))
            actions.sort()
            while p.poll() is None:
                now = time.monotonic()
                while actions and actions[0][0] <= now:
                    _, act = actions.pop(0)
                    if act == "reload":
                        r = self.reload(VARIANTS[len(self.reloads) % 2])
                        r["segment"] = seg
                    elif seg in self.rot_starts:
                        new = self.gens[cur + 1].key
                        self.idp.keys = self.idp.keys + [new]
                        pending_change = ("publish", time.time())
                        self.rotations.append({"segment": seg, "new_kid": new.kid, "old_kid": self.gens[cur].key.kid,
                                               "published_unix": pending_change[1], "done": False})
                    else:
                        self.idp.keys = [self.gens[cur].key]
                        pending_change = ("remove", time.time())
                        self.rotations[-1]["removed_unix"] = pending_change[1]
                self.maybe_sample()
                time.sleep(0.05)
            out, err = p.communicate()
            B._children.discard(p)
            if p.returncode != 0:
                raise RuntimeError(f"loadgen exited {p.returncode}: {err[-1000:]}")
            lg = json.loads(out)
            seg_log = os.path.join(self.work, f"envoy-seg{seg}.log")
            rotate_log(env, seg_log)
            behind = checker.q.qsize()
            checker.q.put((Segment(seg, lg, lg_log, kinds, keys), seg_log))
            info = {"segment": seg, "requests": lg["completed"] + lg["errors"], "rps": lg["achieved_rps"], "errors": lg["errors"],
                    "late_sends": lg["late_sends"], "statuses": lg["statuses"], "lat_p50_us": lg["lat_p50_us"],
                    "lat_p99_us": lg["lat_p99_us"], "lat_max_us": lg["lat_max_us"], "keys": keys,
                    "seconds": round(time.monotonic() - t_seg, 2)}
            self.segments.append(info)
            rss = self.samples[-1][1] / 1024 if self.samples else 0
            self.log(f"[{seg + 1}/{self.nseg}] t={time.monotonic() - self.t_start:6.0f}s {lg['completed']:7d} req "
                     f"{lg['achieved_rps']:7.0f}/s p99 {lg['lat_p99_us']} us RSS {rss:.1f} MB reloads "
                     f"{len(self.reloads) - 1} {keys}; statuses {lg['statuses']}; failures so far "
                     f"{sum(checker.fails.values())} (checker {behind} segments behind)")
        time.sleep(2.0)  # the filter's tick and Envoy's 1 s file flush
        final = os.path.join(self.work, "envoy-final.log")
        rotate_log(env, final)
        checker.q.put((None, final))
        self.maybe_sample()
        self.next_sample = 0
        self.maybe_sample()
        checker.q.put(None)
        checker.t.join()
        checker.finish()
        if checker.error:
            self.failures.append(checker.error)
        return self.summary(checker, sat, rate, reloads0, fetches0)

    # -- results ---------------------------------------------------------------------------

    def summary(self, ck: Checker, sat: dict, rate: float, reloads0: int, fetches0: int) -> dict:
        env = self.env
        elapsed = self.samples[-1][0] if self.samples else 0
        total = sum(s["requests"] for s in self.segments)
        ecds = {"config_reload": ecds_stat(env, "config_reload") - reloads0,
                "config_fail": ecds_stat(env, "config_fail")}
        now = env.stats("oam_authz|downstream_cx_total")
        # counters as deltas over the soak (gauges as they are)
        gauges = ("keys_loaded", "key_set_age_seconds")
        counters = {k.replace("wasmcustom.", ""): v - (0 if k.endswith(gauges) else self.counters0.get(k, 0))
                    for k, v in now.items() if "oam_authz" in k}
        counters = {k: v for k, v in counters.items() if v}
        # the filter's own counters against the audit events, reason by reason
        allowed = ("role_granted", "public_rule")
        from_events = {"oam_authz.allowed": sum(n for r, n in ck.reasons.items() if r in allowed)}
        from_events.update({f"oam_authz.denied.{r}": n for r, n in ck.reasons.items() if r not in allowed})
        counters_agree = all(counters.get(k, 0) == n for k, n in from_events.items()) and all(
            from_events.get(k, 0) == n for k, n in counters.items()
            if k.startswith(("oam_authz.allowed", "oam_authz.denied.")))
        workers = {}
        for k, v in now.items():
            w = re.search(r"^listener\.[^ ]*\.(worker_\d+)\.downstream_cx_total$", k)
            if w:
                workers[w.group(1)] = v - self.counters0.get(k, 0)
        rss = [s[1] for s in self.samples]
        half = [(s[0] / 60, s[1]) for s in self.samples if s[0] >= elapsed / 2]
        slope, r2 = B.linreg(half)
        judged = self.args.seconds >= MIN_TREND_S
        rss_ok = (slope <= SLOPE_BOUND_KB_MIN) if judged else None
        reported = [r["reported_after_ms"] for r in self.reloads[1:] if "reported_after_ms" in r]
        fails = {k: v for k, v in ck.fails.items() if v}
        ok = not fails and not self.failures and rss_ok is not False and ck.checked == total
        if ck.checked != total:
            self.failures.append(f"checked {ck.checked} responses of {total} sent")
        m = B.machine()
        return {
            "command": shlex.join(["test-harness/bench/soak.py", *sys.argv[1:]]),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": m, "envoy_version": B.envoy_version(),
            "module": {"path": os.path.relpath(self.args.wasm, B.REPO), "size": len(self.module),
                       "sha256": hashlib.sha256(self.module).hexdigest()},
            "envoy_cpu": self.cpu_envoy, "load_cpu": self.cpu_load, "concurrency": CONCURRENCY,
            "seconds_requested": self.args.seconds, "elapsed_s": elapsed, "segment_s": self.seg_len,
            "segments": self.segments, "saturation": sat, "load_fraction": self.args.load, "rate": round(rate, 1),
            "requests": total, "achieved_rps": round(total / max(1e-9, sum(s["seconds"] for s in self.segments)), 1),
            "mix_lines": self.args.lines, "refresh_seconds": self.refresh,
            "kinds": [{"name": k.name, "path": k.path, "weight": k.weight, "desc": k.desc,
                       "expect": {v: list(e) for v, e in k.expect.items()}} for k in KINDS],
            "statuses": dict(sorted(ck.statuses.items())), "by_kind": ck.by_kind, "by_version": ck.by_version,
            "checked": ck.checked, "failures_by_check": fails, "failure_examples": ck.examples,
            "reloads": [{k: v for k, v in r.items()} for r in self.reloads], "reloads_done": len(self.reloads) - 1,
            "reload_reported_ms": {"median": statistics.median(reported) if reported else None,
                                   "max": max(reported) if reported else None},
            "ecds": ecds, "rotations": self.rotations,
            "rotations_done": sum(1 for r in self.rotations if r.get("done")),
            "idp_jwks_fetches": len(self.idp_fetches()) - fetches0, "counters": counters,
            "connections_per_worker": workers, "reasons": ck.reasons, "counters_agree": counters_agree, "checker_seconds_per_file": ck.seconds,
            "rss": {"samples": self.samples, "columns": ["t_s", "vmrss_kb", "vmhwm_kb", "heap_live_kb",
                                                          "envoy_cpu_util", "other_on_envoy_cpu"],
                    "start_kb": rss[0] if rss else None, "end_kb": rss[-1] if rss else None,
                    "max_kb": max(rss) if rss else None, "slope_kb_per_min": round(slope, 2), "r2": round(r2, 3),
                    "fit_from_s": round(elapsed / 2, 1), "bound_kb_per_min": SLOPE_BOUND_KB_MIN,
                    "judged": judged, "ok": rss_ok},
            "notes": self.notes, "failures": self.failures, "ok": ok,
        }


def markdown(d: dict) -> str:
    # Long on purpose: the report, section by section.
    m = d["machine"]
    rs = d["rss"]
    sat = d["saturation"]
    make = f"`make bench-soak SOAK_S={d['seconds_requested']}`, i.e. " \
        if d["command"] == f"test-harness/bench/soak.py --seconds {d['seconds_requested']}" else ""
    L = [f"Command: {make}`{d['command']}`  ",
         f"Date: {d['date']}  ",
         f"Machine: {m['nproc']} CPUs, {m['cpu_model']}, Linux {m['kernel']} (shared: other work ran too); "
         f"Envoy {d['envoy_version']} `--concurrency {d['concurrency']}` on CPU {d['envoy_cpu']}, load on CPU "
         f"{d['load_cpu']}  ",
         f"Module: `{d['module']['path']}`, {d['module']['size']} bytes (sha256 {d['module']['sha256'][:12]})",
         "",
         f"**{'PASS' if d['ok'] else 'FAIL'}**: {d['checked']:,} responses checked against their audit events, "
         f"{sum(d['failures_by_check'].values())} failed; RSS slope {rs['slope_kb_per_min']:+.1f} KB/min "
         + (f"(bound {rs['bound_kb_per_min']:.0f})" if rs["judged"] else "(not judged: run under "
            f"{MIN_TREND_S} s)") + ".",
         "",
         "| | |", "|---|---|",
         f"| duration | {d['elapsed_s']:.0f} s, {len(d['segments'])} segments of {d['segment_s']:.0f} s |",
         f"| saturation (closed loop, {sat['conns']} connections, {sat['seconds']:.0f} s, the same mix) | "
         f"{sat['rps']:,.0f} req/s, CPU {d['envoy_cpu']} busy {sat['envoy_cpu_busy']}, "
         f"{sat['envoy_cpu_us_per_req']} µs Envoy CPU per request |",
         f"| offered load | {100 * d['load_fraction']:.0f}%: {d['rate']:,.0f} req/s open loop, {CONNS} connections |",
         f"| requests | {d['requests']:,} at {d['achieved_rps']:,.0f} req/s |",
         f"| latency p99 per segment | median {statistics.median([s['lat_p99_us'] for s in d['segments']]):,.0f} µs,"
         f" max {max(s['lat_p99_us'] for s in d['segments']):,} µs |",
         f"| hot reloads | {d['reloads_done']} (ECDS `config_reload` +{d['ecds']['config_reload']}, "
         f"`config_fail` {d['ecds']['config_fail']}); reported {d['reload_reported_ms']['median']} ms "
         f"(median) / {d['reload_reported_ms']['max']} ms (max) after the rename |",
         f"| JWKS rotations | {d['rotations_done']} completed of {len(d['rotations'])} started |",
         f"| IdP `/jwks` requests | {d['idp_jwks_fetches']} (refresh every {d['refresh_seconds']} s, plus "
         f"unknown-kid refetches: {d['counters'].get('oam_authz.jwks.idp.unknown_kid_refetch', 0)}) |",
         f"| connections per worker | {', '.join(f'{w}: {n}' for w, n in sorted(d['connections_per_worker'].items()))} |",
         f"| key fetches (filter counters) | success {d['counters'].get('oam_authz.jwks.idp.fetch_success', 0)}, "
         f"failure {d['counters'].get('oam_authz.jwks.idp.fetch_failure', 0)}, `jwks_unavailable` answers "
         f"{d['counters'].get('oam_authz.denied.jwks_unavailable', 0)} |",
         f"| filter counters (`allowed`, `denied.<reason>`) vs audit events | "
         f"{'equal, reason by reason' if d['counters_agree'] else 'DIFFER (see the JSON: counters, reasons)'} |",
         f"| RSS (VmRSS) | start {rs['start_kb'] / 1024:.1f} MB, end {rs['end_kb'] / 1024:.1f} MB, max "
         f"{rs['max_kb'] / 1024:.1f} MB; slope over the second half (from {rs['fit_from_s']:.0f} s) "
         f"{rs['slope_kb_per_min']:+.1f} KB/min (R² {rs['r2']:.2f}) |",
         f"| statuses | {', '.join(f'{k}: {v:,}' for k, v in d['statuses'].items())} |",
         ""]
    L += ["| kind | path | expected A | expected B | sent | statuses (A / B) |", "|---|---|---|---|---|---|"]
    for k in d["kinds"]:
        row = d["by_kind"].get(k["name"], {})
        sent = sum(sum(v.values()) for v in row.values())

        def st(v):
            return ", ".join(f"{s}: {n:,}" for s, n in sorted(row.get(v, {}).items())) or "-"
        L.append(f"| {k['name']} | `{k['path']}` | {k['expect']['A'][0]} {k['expect']['A'][1]} | "
                 f"{k['expect']['B'][0]} {k['expect']['B'][1]} | {sent:,} | {st('A')} / {st('B')} |")
    L.append("")
    for r in d["rotations"]:
        L.append(f"- rotation {r['old_kid']} → {r['new_kid']} (segment {r['segment']}): new key fetched "
                 f"{r.get('publish_fetched_after_s')} s after it was published, removal fetched "
                 f"{r.get('remove_fetched_after_s')} s after it{'' if r.get('done') else ' (not completed)'}")
    if d["failures_by_check"]:
        L += ["", "Failed checks: " + ", ".join(f"{k} {v:,}" for k, v in d["failures_by_check"].items())]
        for ex in d["failure_examples"][:10]:
            L.append(f"- `{json.dumps(ex)}`")
    for f in d["failures"]:
        L.append(f"\n**FAIL** {f}")
    for n in d["notes"]:
        L.append(f"\nNote: {n}")
    return "\n".join(L) + "\n"


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=300, help="length of the soak (default 300, at most 3600)")
    ap.add_argument("--reload-every", type=float, default=None,
                    help="segment length = seconds between hot reloads (default 60, or seconds/4 under 240 s)")
    ap.add_argument("--load", type=float, default=0.7, help="fraction of the measured saturation (default 0.7)")
    ap.add_argument("--lines", type=int, default=MIX_LINES, help="requests per cycle of the mix file")
    ap.add_argument("--out", default=RESULTS, help="directory for latest.md / latest.json")
    ap.add_argument("--wasm", default=E.WASM)
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    a = ap.parse_args(argv)
    if not 10 <= a.seconds <= 3600:
        sys.exit("soak: --seconds must be within 10..3600")
    if not 0.05 <= a.load <= 1.0:
        sys.exit("soak: --load must be within 0.05..1")
    if a.reload_every is not None and not 5 <= a.reload_every <= a.seconds:
        sys.exit("soak: --reload-every must be within 5..--seconds")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    B.require_tools(need_wrk=False)
    if not os.path.exists(args.wasm):
        sys.exit(f"soak: {args.wasm} not built: run `make build`")
    B.build_loadgen()
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {int(B.LOAD_CPU)})  # this process (IdP, checks) on the load's CPU
    s = Soak(args)
    ok = False
    try:
        d = s.run()
        ok = d["ok"]
        md = markdown(d)
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "latest.md"), "w") as f:
            f.write(md)
        with open(os.path.join(args.out, "latest.json"), "w") as f:
            json.dump(d, f, indent=1, default=str)
        print()
        print(md)
        print(f"(written to {os.path.relpath(os.path.join(args.out, 'latest.md'), os.getcwd())} and .json)")
        return 0 if ok else 1
    finally:
        B._kill_children()
        for e in list(E._live):
            e.stop()
        if getattr(s, "idp", None):
            s.idp.close()
        if args.keep or not ok:
            print(f"kept work dir {s.work} (envoy-nonaudit.log: Envoy's lines other than audit events; "
                  f"envoy-seg*.log: up to 3 segment logs with failures)")
        else:
            shutil.rmtree(s.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
