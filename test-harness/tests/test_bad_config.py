"""Bad policies: a typo'd field and an unknown schema_version, delivered (a)
statically in the bootstrap and (b) through ECDS from a file (how istiod
delivers a WasmPlugin), plus an ECDS hot reload good -> changed -> bad.

What Envoy 1.40 does is pinned below (see the comments on each test)."""
import json
import os
import re
import time

import pytest

from harness import client as C
from harness import envoy as E
from harness.checks import standard_listeners


def minimal_policy(**over):
    p = {
        "schema_version": 1,
        "trust_domain": "cluster.local",
        "roles": [{"name": "frontend", "principals": ["ns/shop/sa/frontend"]}],
        "rules": [
            {"name": "read", "roles": ["frontend"], "paths": ["/api/*"]},
            {"name": "health", "public": True, "paths": ["/healthz"]},
        ],
    }
    p.update(over)
    return p


def typo_policy():
    # Ignoring `pathz` would make rule `read` cover EVERY path: must be refused.
    p = minimal_policy()
    p["rules"][0]["pathz"] = p["rules"][0].pop("paths")
    return p


BAD = {
    "typo": (typo_policy(), r"rules\[0\]\.pathz: unknown field"),
    "schema_version": (minimal_policy(schema_version=2), r"schema_version: schema_version 2 is not supported"),
}


def config_error_line(env, needle: str, start: int = 0):
    """Our critical/error line naming the offending field, as logged through Envoy's wasm logger."""
    return env.wait_for_log(rf"\[(critical|error)\]\[wasm\][^\n]*{needle}[^\n]*", timeout=15, start=start)


def get(env, pki, path, listener="optional", cert=None):
    try:
        return C.request(env.ports[listener], path, cert=cert, ca=pki.ca_cert, timeout=5)
    except (OSError, ConnectionError) as e:  # connection refused / reset counts as refused
        return e


@pytest.mark.parametrize("case", list(BAD))
def test_static_bad_config_refuses_to_start(workdir, pki, echo, wasm, case):
    """Observed with Envoy 1.40 + failure_policy FAIL_CLOSED: a static listener
    whose wasm plugin fails on_configure makes Envoy REFUSE TO START (exit 1,
    "Unable to create Wasm plugin oam_authz"), after our critical line naming
    the field. Nothing is ever served with the bad policy."""
    policy, needle = BAD[case]
    boot = E.render_bootstrap(standard_listeners([E.wasm_filter(json.dumps(policy))]), pki, echo.port)
    env = E.Envoy(os.path.join(workdir, f"bad-static-{case}"), boot, name=f"bad-static-{case}")
    try:
        code = env.wait_exit(timeout=30)
        assert code is not None, "Envoy kept running with a bad static policy\n" + env.log_tail()
        assert code != 0, env.log_tail()
        text = env.log_text()
        assert re.search(rf"\[critical\]\[wasm\][^\n]*oam-authz: configuration rejected: {needle}", text), \
            env.log_tail()
        assert "Unable to create Wasm plugin" in text, env.log_tail()
    finally:
        env.stop()


# ---------------------------------------------------------------------------- ECDS

def ecds_envoy(workdir, pki, echo, name, policy_json):
    d = os.path.join(workdir, name)
    cfgdir = os.path.join(d, "ecds")
    os.makedirs(cfgdir, exist_ok=True)
    path = os.path.join(cfgdir, "oam-authz.yaml")
    write_ecds(path, policy_json)
    filt = E.ecds_filter(path, watched_dir=cfgdir)
    boot = E.render_bootstrap(standard_listeners([filt]), pki, echo.port)
    return E.Envoy(d, boot, name=name), path


def write_ecds(path, policy_json):
    """Atomic replace (write + rename), which is what the directory watch reacts to."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(E.ecds_file_text(policy_json))
    os.rename(tmp, path)


@pytest.mark.parametrize("case", list(BAD))
def test_ecds_bad_config_starts_but_refuses_requests(workdir, pki, echo, wasm, case):
    """Observed with Envoy 1.40: delivered through ECDS (file), the bad config is
    rejected ("Filesystem config update rejected"), Envoy still becomes ready,
    and the listener has no filter config, so every request gets a 500 from
    Envoy (the missing-config filter): refused, never passed upstream."""
    policy, needle = BAD[case]
    env, _ = ecds_envoy(workdir, pki, echo, f"bad-ecds-{case}", json.dumps(policy))
    try:
        env.start(timeout=30)
        config_error_line(env, "oam-authz: configuration rejected: " + needle)
        env.wait_for_log(r"config update rejected", timeout=10)
        before = len(echo.requests)
        for path in ("/healthz", "/api/x", "/anything"):
            for listener, cert in (("optional", None), ("mtls", pki.clients["frontend"])):
                r = get(env, pki, path, listener, cert)
                assert hasattr(r, "status") and r.status == 500, f"{listener}{path}: {r}"
        assert len(echo.requests) == before
    finally:
        env.stop()


def test_ecds_hot_reload(workdir, pki, echo, wasm):
    """good -> tighter (reload takes effect) -> bad (refused; what serves then is pinned here)."""
    env, path = ecds_envoy(workdir, pki, echo, "ecds-reload", json.dumps(minimal_policy()))
    try:
        env.start(timeout=30)
        assert get(env, pki, "/healthz").status == 200
        # v2: /healthz no longer public
        tighter = minimal_policy()
        tighter["rules"] = tighter["rules"][:1]
        write_ecds(path, json.dumps(tighter))
        deadline = time.monotonic() + 15
        while get(env, pki, "/healthz").status == 200:
            assert time.monotonic() < deadline, "ECDS reload never took effect\n" + env.log_tail()
            time.sleep(0.2)
        assert get(env, pki, "/healthz").status == 403
        # v3: broken. The filter refuses it and logs the field.
        off = env.log_offset()
        write_ecds(path, json.dumps(typo_policy()))
        config_error_line(env, "configuration rejected: rules\\[0\\]\\.pathz", start=off)
        env.wait_for_log(r"config update rejected", timeout=10, start=off)
        # Observed with Envoy 1.40: the rejected update is NACKed and the LAST GOOD
        # policy keeps serving (the typo'd one, which would have opened every path
        # to `frontend`, never applies).
        for _ in range(5):
            r = get(env, pki, "/healthz")
            assert r.status == 403 and r.reason_code == "no_matching_rule", r
            time.sleep(0.1)
        assert get(env, pki, "/other", "mtls", pki.clients["frontend"]).status == 403
        assert get(env, pki, "/api/x", "mtls", pki.clients["frontend"]).status == 200
    finally:
        env.stop()
