"""The policy the end-to-end suite runs with: one rule per condition kind, so
each test targets exactly one path. JWKS are filled in from the session's
freshly generated keys."""
from __future__ import annotations

import copy
import json

from .tokens import Issuer

POLICY_VERSION = "e2e@test"


def make_issuers() -> dict[str, Issuer]:
    return {
        # GitLab CI-like: RS256 only, short max lifetime.
        "gitlab": Issuer("https://gitlab.example.com", "https://deploy.example.com", ("RS256",), "gl"),
        # Okta-like: every asymmetric family the default module verifies
        # (RSA-PSS needs the full build: test_signature_backends.py).
        "okta": Issuer("https://okta.example.com/oauth2/default", "api://shop",
                       ("RS256", "ES256", "EdDSA"), "okta"),
        # A provider whose token is forwarded upstream.
        "fwd": Issuer("https://fwd.example.com", "fwd-api", ("ES256",), "fwd"),
    }


def _rule(name, roles=None, paths=None, methods=None, **kw):
    r = {"name": name}
    if roles is not None:
        r["roles"] = roles
    if methods is not None:
        r["methods"] = methods
    if paths is not None:
        r["paths"] = paths
    r.update(kw)
    return r


def okta_role(name, cond):
    return {"name": name, "jwt": {"provider": "okta", "claims": [cond]}}


def build_policy(iss: dict[str, Issuer], mode: str = "enforce") -> dict:
    gl, okta, fwd = iss["gitlab"], iss["okta"], iss["fwd"]
    return {
        "schema_version": 1,
        "policy_version": POLICY_VERSION,
        "mode": mode,
        "trust_domain": "cluster.local",
        "trust_domain_aliases": ["old.example.com"],
        "providers": [
            {"name": "gitlab", "issuer": gl.issuer, "audiences": [gl.audience], "algorithms": ["RS256"],
             "jwks": gl.jwks(), "clock_skew_seconds": 30, "max_lifetime_seconds": 3600},
            {"name": "okta", "issuer": okta.issuer, "audiences": [okta.audience, "api://other-shop"],
             "algorithms": ["RS256", "ES256", "EdDSA"], "jwks": okta.jwks(),
             "from": [{"header": {"name": "authorization", "prefix": "Bearer "}}, {"query": "access_token"}]},
            {"name": "fwd", "issuer": fwd.issuer, "audiences": [fwd.audience], "algorithms": ["ES256"],
             "jwks": fwd.jwks(), "forward_token": True},
        ],
        "roles": [
            {"name": "r-exact", "principals": ["spiffe://cluster.local/ns/shop/sa/frontend"]},
            {"name": "r-sa-wild", "principals": ["ns/ci/sa/*"]},
            {"name": "r-ns-wild", "principals": ["ns/batch/*"]},
            {"name": "r-td-wild", "principals": ["spiffe://partner.example/*"]},
            # written in the alias domain; the backend cert is in cluster.local
            {"name": "r-alias", "principals": ["spiffe://old.example.com/ns/shop/sa/backend"]},
            okta_role("r-eq", {"claim": "dept", "equals": "eng"}),
            okta_role("r-oneof", {"claim": "tier", "one_of": ["gold", "platinum"]}),
            okta_role("r-contains", {"claim": "groups", "contains": "admins"}),
            okta_role("r-scope", {"claim": "scope", "scope_contains": "items:write"}),
            okta_role("r-nested", {"claim": "org.team", "equals": "payments"}),
            okta_role("r-number", {"claim": "level", "equals": 3}),
            okta_role("r-bool", {"claim": "email_verified", "equals": True}),
            okta_role("r-prefix", {"claim": "namespace_path", "prefix": "platform/"}),
            {"name": "release-pipeline", "principals": ["ns/ci/sa/deployer"],
             "jwt": {"provider": "gitlab", "claims": [{"claim": "namespace_path", "equals": "platform"},
                                                       {"claim": "ref_protected", "equals": "true"}]}},
            {"name": "r-fwd", "jwt": {"provider": "fwd"}},
        ],
        "rules": [
            _rule("no-debug", effect="deny", paths=["/debug/{**}"]),
            _rule("health", public=True, methods=["GET"], paths=["/healthz"]),
            _rule("public", public=True, methods=["GET"], paths=["/public/*"]),
            _rule("hosted", public=True, hosts=["api.example.com"], paths=["/hosted"]),
            _rule("wildhost", public=True, hosts=["*.example.org"], paths=["/wildhost"]),
            _rule("mtls-exact", ["r-exact"], ["/mtls/exact"], ["GET"]),
            _rule("mtls-sa-wild", ["r-sa-wild"], ["/mtls/sa-wild"]),
            _rule("mtls-ns-wild", ["r-ns-wild"], ["/mtls/ns-wild"]),
            _rule("mtls-td-wild", ["r-td-wild"], ["/mtls/td-wild"]),
            _rule("mtls-alias", ["r-alias"], ["/mtls/alias"]),
            _rule("items", ["r-exact"], ["/api/{*}/items"], ["GET", "HEAD"]),
            _rule("claim-eq", ["r-eq"], ["/claim/eq"]),
            _rule("claim-oneof", ["r-oneof"], ["/claim/oneof"]),
            _rule("claim-contains", ["r-contains"], ["/claim/contains"]),
            _rule("claim-scope", ["r-scope"], ["/claim/scope"]),
            _rule("claim-nested", ["r-nested"], ["/claim/nested"]),
            _rule("claim-number", ["r-number"], ["/claim/number"]),
            _rule("claim-bool", ["r-bool"], ["/claim/bool"]),
            _rule("claim-prefix", ["r-prefix"], ["/claim/prefix"]),
            _rule("deploy", ["release-pipeline"], ["/deploy"], ["POST"]),
            _rule("admin", ["r-contains"], ["/admin/{**}"]),
            _rule("fwd", ["r-fwd"], ["/fwd"]),
        ],
        "forward": {
            "principal_header": "x-oam-principal",
            "subject_header": "x-oam-subject",
            "issuer_header": "x-oam-issuer",
            "roles_header": "x-oam-roles",
            "claim_headers": {"x-oam-project": "project_path"},
            "strip_headers": ["x-user"],
        },
    }


def to_json(policy: dict) -> str:
    return json.dumps(policy, separators=(",", ":"))


def with_typo(policy: dict) -> dict:
    """rules[0].paths misspelled as `pathz` (the classic silently-widening typo)."""
    p = copy.deepcopy(policy)
    p["rules"][0]["pathz"] = p["rules"][0].pop("paths")
    return p
