"""Helpers for the remote-JWKS and hot-reload scenarios: a policy whose
provider fetches its keys from a ``TestIdP``, an Envoy with an ``idp``
cluster (static filter or ECDS from a file), polling, and a bounded load
loop that records every response."""
from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field

from . import envoy as E
from .idp import TestIdP

IDP_CLUSTER = "idp"


def remote_policy(idp: TestIdP, version: str = "keys@1", *, refresh: int = 300, timeout_ms: int = 1000,
                  max_stale: int | None = None, min_refetch: int = 30, discovery: bool = False,
                  rules: list | None = None, algorithms: tuple = ("ES256",)) -> dict:
    remote = {"cluster": IDP_CLUSTER, "refresh_seconds": refresh, "timeout_ms": timeout_ms,
              "min_refetch_interval_seconds": min_refetch}
    if discovery:
        remote["discovery"] = True  # uri derived from the issuer
    else:
        remote["uri"] = f"{idp.base}/jwks"
    if max_stale is not None:
        remote["max_stale_seconds"] = max_stale
    return {
        "schema_version": 1,
        "policy_version": version,
        "trust_domain": "cluster.local",
        "providers": [{"name": "idp", "issuer": idp.issuer, "audiences": [idp.audience],
                       "algorithms": list(algorithms), "remote_jwks": remote}],
        "roles": [
            {"name": "user", "jwt": {"provider": "idp"}},
            {"name": "frontend", "principals": ["ns/shop/sa/frontend"]},
        ],
        "rules": rules if rules is not None else [
            {"name": "api", "roles": ["user"], "paths": ["/api/{**}"]},
            {"name": "mtls", "roles": ["frontend"], "paths": ["/mtls/{**}"]},
            {"name": "health", "public": True, "paths": ["/healthz"]},
        ],
    }


def idp_cluster(idp: TestIdP) -> dict:
    return {
        "name": IDP_CLUSTER, "type": "STATIC", "connect_timeout": "0.5s",
        "load_assignment": {"cluster_name": IDP_CLUSTER, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": idp.port}}}}]}]},
    }


def listeners(filters) -> list:
    return [E.Listener("plain", tls=None, http_filters=filters),
            E.Listener("mtls", tls="require", http_filters=filters)]


def keys_envoy(workdir: str, name: str, pki, echo, idp: TestIdP, policy: dict, concurrency: int = 1) -> E.Envoy:
    """An Envoy (not started) with the filter inline and the ``idp`` cluster."""
    boot = E.render_bootstrap(listeners([E.wasm_filter(json.dumps(policy))]), pki, echo.port)
    boot["static_resources"]["clusters"].append(idp_cluster(idp))
    return E.Envoy(os.path.join(workdir, name), boot, concurrency=concurrency, name=name)


def write_ecds(path: str, policy_json: str, wasm_path: str = E.WASM) -> None:
    """Atomic replace (write + rename): what the directory watch reacts to."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(E.ecds_file_text(policy_json, wasm_path))
    os.rename(tmp, path)


def direct_responses(boot: dict) -> dict:
    """Allowed requests get a 200 from Envoy itself instead of the echo
    upstream (a Python thread), so a load loop measures the filter."""
    for lst in boot["static_resources"]["listeners"]:
        hcm = lst["filter_chains"][0]["filters"][0]["typed_config"]
        hcm["route_config"]["virtual_hosts"][0]["routes"] = [
            {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}]
    return boot


def ecds_keys_envoy(workdir: str, name: str, pki, echo, idp: TestIdP, policy_json: str,
                    concurrency: int = 1, direct: bool = False) -> tuple[E.Envoy, str]:
    """An Envoy (not started) whose filter config comes from an ECDS file."""
    d = os.path.join(workdir, name)
    cfgdir = os.path.join(d, "ecds")
    os.makedirs(cfgdir, exist_ok=True)
    path = os.path.join(cfgdir, "oam-authz.yaml")
    write_ecds(path, policy_json)
    boot = E.render_bootstrap(listeners([E.ecds_filter(path, watched_dir=cfgdir)]), pki, echo.port)
    boot["static_resources"]["clusters"].append(idp_cluster(idp))
    if direct:
        direct_responses(boot)
    return E.Envoy(d, boot, concurrency=concurrency, name=name), path


def get(env: E.Envoy, path: str, token: str | None = None, timeout: float = 5.0, **kw):
    from . import client as C
    return C.request(env.ports["plain"], path, tls=False, bearer=token, timeout=timeout, **kw)


def wait_for(pred, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Polls ``pred()`` until truthy; returns (value, seconds waited)."""
    t0 = time.monotonic()
    while True:
        v = pred()
        if v:
            return v, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(interval)


def wait_keys_in_every_worker(env: E.Envoy, workers: int, version: int | None = None,
                              timeout: float = 10.0) -> None:
    """Waits until each of ``workers`` worker VMs has installed key set
    ``version`` (any when None), by its log line and Envoy's thread id (the
    main thread's VM also logs; it does not count). One 200 only proves that
    the worker which served it has the keys: the others install the shared
    set on their next tick, and until then answer 503 jwks_unavailable."""
    main = re.compile(r"^\[[^\]]+\]\[(\d+)\]\[\w+\]\[main\]", re.M)
    used = re.compile(r"^\[[^\]]+\]\[(\d+)\]\[info\]\[wasm\] .*: key set version "
                      + (str(version) if version is not None else r"\d+") + r" (?:in use|replaces)", re.M)

    def threads():
        text = env.log_text()
        mains = set(main.findall(text))
        return len(set(used.findall(text)) - mains) >= workers

    wait_for(threads, timeout, interval=0.05, what=f"key set version {version or 'any'} in {workers} workers")


def jwks_stats(env: E.Envoy, provider: str = "idp") -> dict[str, int]:
    prefix = f"wasmcustom.oam_authz.jwks.{provider}."
    return {k[len(prefix):]: v for k, v in env.stats("oam_authz.jwks").items() if k.startswith(prefix)}


# --------------------------------------------------------------------------------------
# A bounded load loop
# --------------------------------------------------------------------------------------

@dataclass
class Result:
    start: float
    end: float
    path: str
    status: int
    reason: str | None
    request_id: str


@dataclass
class Load:
    """``threads`` keep-alive connections to the plain listener, each cycling
    through ``requests`` ([(path, token or None)]) until ``stop()`` or
    ``max_seconds``. Every response is kept (``results``); a failed
    connection is recorded as status 0 and reopened."""
    port: int
    requests: list
    threads: int = 4
    max_seconds: float = 60.0
    results: list = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.threads)]

    def start(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> list:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=15)
        return self.results

    def count(self) -> int:
        with self._lock:
            return len(self.results)

    def _run(self, i: int) -> None:
        deadline = time.monotonic() + self.max_seconds
        conn = None
        n = i
        while not self._stop.is_set() and time.monotonic() < deadline:
            path, token = self.requests[n % len(self.requests)]
            n += 1
            rid = f"load-{i}-{next(self._ids)}"
            headers = {"host": "localhost", "x-request-id": rid}
            if token:
                headers["authorization"] = f"Bearer {token}"
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", path, headers=headers)
                r = conn.getresponse()
                r.read()
                res = Result(t0, time.monotonic(), path, r.status, r.getheader("x-oam-authz-reason"), rid)
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                res = Result(t0, time.monotonic(), path, 0, "connection_error", rid)
                if conn is not None:
                    conn.close()
                conn = None
            with self._lock:
                self.results.append(res)
        if conn is not None:
            conn.close()
