"""Metrics (/stats and /stats/prometheus) and audit lines, on fresh Envoys so
the counts are exact; audit mode on its own Envoy."""
import re

import pytest

from harness import policy as POL
from harness.checks import SENT_TOKENS, Caller, assert_allowed, assert_denied, start_envoy

AUDIT_FIELDS = {"ts", "request_id", "policy", "mode", "decision", "status", "reason", "rule", "roles", "peer",
                "iss", "sub", "method", "host", "path"}


@pytest.fixture(scope="module")
def fresh(workdir, pki, echo, wasm, policy):
    env = start_envoy(workdir, "metrics", pki, echo, POL.to_json(policy))
    yield env
    env.stop()


@pytest.fixture(scope="module")
def traffic(fresh, pki, issuers):
    """Known traffic: 3 allowed, 2 role_required, 1 token_missing, 1 no_matching_rule."""
    call = Caller(fresh, pki)
    tok = issuers["okta"].token(dept="eng", sub="alice")
    SENT_TOKENS.append(tok)
    out = {
        "health1": call("/healthz"),
        "health2": call("/healthz", listener="plain"),
        "claim": call("/claim/eq", token=tok),
        "role1": call("/mtls/exact", listener="optional"),
        "role2": call("/mtls/exact", "backend"),
        "missing": call("/claim/eq"),
        "nomatch": call("/nothing"),
    }
    return out, tok


def test_known_traffic_outcomes(traffic):
    r, _ = traffic
    for k in ("health1", "health2", "claim"):
        assert_allowed(r[k])
    assert_denied(r["role1"], 403, "role_required")
    assert_denied(r["role2"], 403, "role_required")
    assert_denied(r["missing"], 401, "token_missing")
    assert_denied(r["nomatch"], 403, "no_matching_rule")


def test_stats_counters(fresh, traffic):
    s = fresh.wait_stats("oam_authz", {"wasmcustom.oam_authz.allowed": 3,
                                        "wasmcustom.oam_authz.denied.role_required": 2,
                                        "wasmcustom.oam_authz.denied.token_missing": 1,
                                        "wasmcustom.oam_authz.denied.no_matching_rule": 1})
    assert s.get("wasmcustom.oam_authz.allowed") == 3, s
    assert s.get("wasmcustom.oam_authz.denied.role_required") == 2, s
    assert s.get("wasmcustom.oam_authz.denied.token_missing") == 1, s
    assert s.get("wasmcustom.oam_authz.denied.no_matching_rule") == 1, s
    assert s.get("wasmcustom.oam_authz.config_errors", 0) == 0, s
    assert not [k for k in s if "audit_would_deny" in k and s[k]], s


def test_prometheus_exposition(fresh, traffic):
    status, body = fresh.admin_get("/stats/prometheus")
    assert status == 200

    def value(metric):
        rx = re.compile(rf"^(?:envoy_)?(?:wasmcustom_)?{re.escape(metric)}(?:\{{[^}}]*\}})? (\d+)$", re.M)
        m = rx.search(body)
        assert m, f"{metric} not in /stats/prometheus:\n" + "\n".join(
            line for line in body.splitlines() if "oam" in line)
        return int(m.group(1))

    assert value("oam_authz_allowed") == 3
    assert value("oam_authz_denied_role_required") == 2


def _rid(resp):
    if resp.status == 200:
        return resp.upstream_headers("x-request-id")[0]
    return resp.json()["request_id"]


def test_audit_line_for_allow(fresh, traffic, pki, issuers):
    r, _ = traffic
    ev = fresh.wait_audit(_rid(r["claim"]))
    assert AUDIT_FIELDS <= set(ev), ev
    assert ev["decision"] == "allow" and ev["status"] == 200 and ev["reason"] == "role_granted", ev
    assert ev["rule"] == "claim-eq" and "r-eq" in ev["roles"], ev
    assert ev["policy"] == POL.POLICY_VERSION and ev["mode"] == "enforce", ev
    assert ev["iss"] == issuers["okta"].issuer and ev["sub"] == "alice", ev
    assert ev["method"] == "GET" and ev["path"] == "/claim/eq" and ev["host"] == "localhost", ev
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", ev["ts"]), ev


def test_audit_line_for_public_and_deny(fresh, traffic, pki):
    r, _ = traffic
    ev = fresh.wait_audit(_rid(r["health1"]))
    assert (ev["decision"], ev["status"], ev["reason"], ev["rule"]) == ("allow", 200, "public_rule", "health"), ev
    ev = fresh.wait_audit(_rid(r["role2"]))
    assert (ev["decision"], ev["status"], ev["reason"]) == ("deny", 403, "role_required"), ev
    assert ev["rule"] == "mtls-exact" and ev["peer"] == pki.spiffe["backend"], ev
    ev = fresh.wait_audit(_rid(r["missing"]))
    assert (ev["decision"], ev["status"], ev["reason"]) == ("deny", 401, "token_missing"), ev


def test_one_audit_line_per_decision(fresh, traffic):
    r, _ = traffic
    fresh.wait_audit(_rid(r["nomatch"]))
    events = fresh.audit_events()
    assert len(events) == len(r), events
    assert len({e["request_id"] for e in events}) == len(r)


def test_audit_lines_are_valid_json_and_token_never_logged(fresh, traffic):
    r, tok = traffic
    fresh.wait_audit(_rid(r["claim"]))
    text = fresh.log_text()
    for line in text.splitlines():
        if "oam-authz-audit " in line:
            assert line.rstrip().endswith("}"), line
    sig = tok.rsplit(".", 1)[1]
    assert tok not in text and sig not in text and tok.split(".")[1] not in text


# ---------------------------------------------------------------------- audit mode

@pytest.fixture(scope="module")
def audit_env(workdir, pki, echo, wasm, issuers):
    env = start_envoy(workdir, "audit", pki, echo, POL.to_json(POL.build_policy(issuers, mode="audit")))
    yield env
    env.stop()


def test_audit_mode_lets_denials_through_and_counts_them(audit_env, pki, issuers):
    call = Caller(audit_env, pki)
    r1 = call("/mtls/exact", listener="optional")
    r2 = call("/mtls/exact", "backend")
    assert_allowed(r1, "/mtls/exact")
    assert_allowed(r2, "/mtls/exact")
    assert r1.header("x-oam-authz-reason") is None
    for r in (r1, r2):
        ev = audit_env.wait_audit(r.upstream_headers("x-request-id")[0])
        assert ev["decision"] == "audit_deny" and ev["reason"] == "role_required" and ev["mode"] == "audit", ev
    s = audit_env.wait_stats("oam_authz", {"wasmcustom.oam_authz.audit_would_deny.role_required": 2})
    assert s.get("wasmcustom.oam_authz.audit_would_deny.role_required") == 2, s
    assert s.get("wasmcustom.oam_authz.denied.role_required", 0) == 0, s


def test_audit_mode_bad_token_passes_and_is_counted(audit_env, pki, issuers):
    call = Caller(audit_env, pki)
    okta = issuers["okta"]
    before = audit_env.counter("wasmcustom.oam_authz.audit_would_deny.token_alg_not_allowed")
    r = call("/claim/eq", token=okta.alg_confusion("pem", dept="eng"))
    assert_allowed(r)
    ev = audit_env.wait_audit(r.upstream_headers("x-request-id")[0])
    assert ev["decision"] == "audit_deny" and ev["reason"] == "token_alg_not_allowed", ev
    name = "wasmcustom.oam_authz.audit_would_deny.token_alg_not_allowed"
    assert audit_env.wait_counter(name, before + 1) == before + 1


def test_audit_mode_allowed_is_plain_allow(audit_env, pki):
    r = Caller(audit_env, pki)("/mtls/exact", "frontend")
    assert_allowed(r)
    ev = audit_env.wait_audit(r.upstream_headers("x-request-id")[0])
    assert ev["decision"] == "allow" and ev["reason"] == "role_granted", ev


# ---------------------------------------------------------------------- several workers

def test_two_workers_count_and_decide_alike(workdir, pki, echo, wasm, policy, issuers):
    """--concurrency 2: Envoy clones the VM per worker; decisions and the shared
    counters must not depend on which worker took the connection."""
    env = start_envoy(workdir, "workers2", pki, echo, POL.to_json(policy), concurrency=2)
    try:
        call = Caller(env, pki)
        tok = issuers["okta"].token(dept="eng")
        SENT_TOKENS.append(tok)
        for _ in range(10):
            assert_allowed(call("/claim/eq", token=tok))
            assert_denied(call("/claim/eq", token=issuers["okta"].alg_confusion()), 401, "token_alg_not_allowed")
        s = env.wait_stats("oam_authz", {"wasmcustom.oam_authz.allowed": 10,
                                         "wasmcustom.oam_authz.denied.token_alg_not_allowed": 10})
        assert s.get("wasmcustom.oam_authz.allowed") == 10, s
        assert s.get("wasmcustom.oam_authz.denied.token_alg_not_allowed") == 10, s
    finally:
        env.stop()
