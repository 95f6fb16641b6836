"""The Grafana dashboard (istio/dashboards/oam-authz.json) queries only
metrics a real Envoy running the filter exposes in /stats/prometheus.

One Envoy, a remote-JWKS provider whose key set has been fetched, and a
shadow policy, so every family the dashboard charts is defined: decisions,
audit would-deny, shadow changes, per-rule hits (enforced, shadow, over the
cap: the policies have 263 and 264 rules), config errors, JWKS key-set age, fetch failures and keys loaded. Each
metric name a query spells out must be in the exposition; each
`__name__=~"…"` regex must match at least one exposed name."""
from __future__ import annotations

import copy
import json
import os
import re

import pytest

from harness import envoy as E
from harness.idp import TestIdP
from harness.keys_env import get, jwks_stats, keys_envoy, remote_policy, wait_for

DASHBOARD = os.path.join(E.REPO, "istio", "dashboards", "oam-authz.json")
NAME_REGEX = re.compile(r'__name__=~"([^"]+)"')
# A metric name spelled out: not inside a quoted string (those are regexes,
# label values or replacement patterns).
LITERAL = re.compile(r'\boam_authz_[a-z0-9_]+\b')


def exprs() -> list[str]:
    with open(DASHBOARD) as f:
        dash = json.load(f)
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def exposed(body: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? ", body, re.M)}


@pytest.fixture(scope="module")
def prometheus(workdir, pki, echo, wasm):
    idp = TestIdP()
    policy = remote_policy(idp, "dash@1")
    # Past the per-rule counter cap (256), so the over-cap counters exist too.
    policy["rules"] += [{"name": f"extra-{i}", "public": True, "paths": [f"/extra/{i}"]} for i in range(260)]
    shadow = copy.deepcopy(policy)
    shadow["policy_version"] = "dash@2"
    shadow["rules"] = [{"name": "no-api", "effect": "deny", "paths": ["/api/{**}"]}] + shadow["rules"]
    policy["shadow"] = shadow
    env = keys_envoy(workdir, "dashboard", pki, echo, idp, policy).start()
    try:
        wait_for(lambda: jwks_stats(env).get("fetch_success", 0) >= 1, 10, what="the key set fetched")
        assert get(env, "/api/x", idp.token()).status == 200
        env.wait_stats("oam_authz", {"wasmcustom.oam_authz.shadow.allow_to_deny": 1})
        status, body = env.admin_get("/stats/prometheus")
        assert status == 200
        yield body
    finally:
        env.stop()
        idp.close()


def test_the_dashboard_queries_every_family():
    text = "\n".join(exprs())
    for family in ("oam_authz_allowed", "oam_authz_denied_", "oam_authz_audit_would_deny_", "oam_authz_shadow_",
                   "oam_authz_rule_hits_", "oam_authz_shadow_rule_hits_", "key_set_age_seconds", "fetch_failure"):
        assert family in text, f"the dashboard charts no {family}"


def test_every_metric_the_dashboard_queries_exists(prometheus):
    names = exposed(prometheus)
    ours = sorted(n for n in names if "oam_authz" in n)
    assert ours, prometheus[:2000]
    checked = 0
    for expr in exprs():
        unquoted = re.sub(r'"[^"]*"', '""', expr)
        for name in LITERAL.findall(unquoted):
            assert name in names, f"{name} (in {expr}) is not in /stats/prometheus; ours: {ours}"
            checked += 1
        for rx in NAME_REGEX.findall(expr):
            assert any(re.fullmatch(rx, n) for n in names), \
                f'__name__=~"{rx}" (in {expr}) matches nothing in /stats/prometheus; ours: {ours}'
            checked += 1
    assert checked >= 12, checked
