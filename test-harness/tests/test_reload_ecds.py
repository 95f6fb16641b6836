"""Hot policy reload under load, the standalone equivalent of istiod's push:
the filter config comes from an ECDS file (``config_discovery`` +
``path_config_source`` with a watched directory) that is replaced by an
atomic rename while 4 client threads keep requests flowing through an Envoy
with ``--concurrency 2``.

v1 -> v2 swaps which of /a and /b is public; /api/x needs a token whose
keys come from a remote JWKS; /healthz is public in both. Then a bad v3 (a
typo'd field) is written. Checked for every single response:

* it matches the policy version that decided it (the audit event's
  ``policy``), so no request is decided half by one policy and half by
  another, and its status is one of the two policies' answers;
* before the swap only v1 decides; from shortly after Envoy reports the
  reload only v2 does; the bad v3 never decides anything;
* /api/x and /healthz are never anything but 200: the new policy starts with
  the key set the old one fetched (shared data), no 503 window, no 5xx.
"""
from __future__ import annotations

import json
import re
import time

from harness.idp import TestIdP
from harness.keys_env import Load, ecds_keys_envoy, get, remote_policy, wait_for, wait_keys_in_every_worker, write_ecds

V1, V2 = "reload@1", "reload@2"
EXPECTED = {
    V1: {"/a": 200, "/b": 403, "/api/x": 200, "/healthz": 200},
    V2: {"/a": 403, "/b": 200, "/api/x": 200, "/healthz": 200},
}
# Requests started this long after Envoy reported the reload may still be
# decided by the old policy: the main thread counts the reload, then posts
# the new config to each worker's event loop.
GRACE = 1.0


def policy(idp, version, public_path):
    rules = [
        {"name": "api", "roles": ["user"], "paths": ["/api/{**}"]},
        {"name": "open", "public": True, "paths": [public_path]},
        {"name": "health", "public": True, "paths": ["/healthz"]},
    ]
    return remote_policy(idp, version, refresh=300, rules=rules)


def ecds_stat(env, name: str) -> int:
    for k, v in env.stats("extension_config_discovery").items():
        if k.endswith(f".{name}"):
            return v
    return 0


def test_reload_ecds_swap_under_load_two_workers(workdir, pki, echo, wasm):
    idp = TestIdP()
    v1 = json.dumps(policy(idp, V1, "/a"))
    env, path = ecds_keys_envoy(workdir, "reload-load", pki, echo, idp, v1, concurrency=2, direct=True)
    env.start(timeout=30)
    try:
        tok = idp.token(lifetime=900)
        wait_for(lambda: get(env, "/api/x", tok).status == 200, 10, what="v1 with keys")
        wait_keys_in_every_worker(env, 2)
        reloads0 = ecds_stat(env, "config_reload")
        fetches0 = idp.count("/jwks")

        load = Load(env.ports["plain"], [("/a", None), ("/b", None), ("/api/x", tok), ("/healthz", None)],
                    threads=4, max_seconds=40).start()
        time.sleep(2.0)

        # v1 -> v2
        t_swap = time.monotonic()
        write_ecds(path, json.dumps(policy(idp, V2, "/b")))
        _, waited = wait_for(lambda: ecds_stat(env, "config_reload") > reloads0, 10, interval=0.02,
                             what="ECDS reload of v2")
        t_applied = time.monotonic()
        time.sleep(2.0)

        # v2 -> broken v3: rejected, v2 keeps serving.
        off = env.log_offset()
        bad = policy(idp, "reload@3-bad", "/a")
        bad["rules"][1]["pathz"] = bad["rules"][1].pop("paths")
        fails0 = ecds_stat(env, "config_fail")
        t_bad = time.monotonic()
        write_ecds(path, json.dumps(bad))
        env.wait_for_log(r"configuration rejected: rules\[1\]\.pathz: unknown field", timeout=10, start=off)
        env.wait_for_log(r"config update rejected", timeout=10, start=off)
        wait_for(lambda: ecds_stat(env, "config_fail") > fails0, 5, what="config_fail counted")
        time.sleep(2.0)
        results = load.stop()
        t_end = time.monotonic()

        # ---- every response, checked against the policy that decided it
        def load_events():
            return {e["request_id"]: e for e in env.audit_events() if e.get("request_id", "").startswith("load-")}

        wanted = {r.request_id for r in results if r.status}
        events, _ = wait_for(lambda: (lambda ev: ev if wanted <= set(ev) else None)(load_events()), 5,
                             interval=0.1, what="every audit line flushed to the log")
        assert len(results) > 500, len(results)
        unexpected, mismatched, missing = [], [], []
        by_version = {V1: [], V2: []}
        for r in results:
            allowed = {EXPECTED[V1][r.path], EXPECTED[V2][r.path]}
            if r.status not in allowed:
                unexpected.append(r)
                continue
            ev = events.get(r.request_id)
            if ev is None:
                missing.append(r)
                continue
            version = ev["policy"]
            assert version in EXPECTED, ev
            by_version[version].append(r)
            if EXPECTED[version][r.path] != r.status or ev["status"] != r.status:
                mismatched.append((r, ev))
        assert not unexpected, unexpected[:10]
        assert not mismatched, mismatched[:10]
        assert not missing, missing[:10]

        # v1 only before the swap, v2 only from shortly after the reload.
        assert all(r.start < t_applied + GRACE for r in by_version[V1]), "v1 decided after the reload"
        assert all(r.end > t_swap for r in by_version[V2]), "v2 decided before the swap"
        late_v1 = max((r.start - t_applied for r in by_version[V1]), default=0.0)
        v2_ids = {r.request_id for r in by_version[V2]}
        after_bad = [r for r in results if r.start > t_bad]
        assert len(after_bad) > 100 and all(r.request_id in v2_ids for r in after_bad)

        # Unchanged paths never failed: keys carried over the reload, no 5xx.
        steady = [r for r in results if r.path in ("/api/x", "/healthz")]
        non2xx = [r for r in steady if r.status != 200]
        assert not non2xx, non2xx[:10]
        assert idp.count("/jwks") == fetches0, "the reload refetched the JWKS instead of reusing it"

        total_non2xx = sum(1 for r in results if r.status != 200)
        print(f"\n[figure] hot reload under load: {len(results)} requests in {t_end - t_swap + 2:.1f} s, "
              f"v1={len(by_version[V1])} v2={len(by_version[V2])}, unexpected statuses=0, "
              f"non-2xx on unchanged paths=0 of {len(steady)}, non-2xx overall={total_non2xx} "
              f"(all the policies' own 403s), reload reported {waited:.2f} s after the rename, "
              f"last v1 decision started {late_v1 * 1000:.0f} ms after it")
        # After the bad swap, v2 still answers.
        assert get(env, "/b").status == 200 and get(env, "/a").status == 403
        text = env.log_text()
        assert not re.search(r"panicked|wasm trap|unreachable", text.lower())
    finally:
        env.stop()
        idp.close()
