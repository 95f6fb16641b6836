"""mTLS principal patterns, the public rule, missing tokens, and the
optional-certificate listener. Policy: harness/policy.py."""
import pytest

from harness.checks import assert_allowed, assert_denied


# (path, allowed workloads, denied workloads)
CASES = [
    ("/mtls/exact", ["frontend", "frontend-alias"], ["backend", "stranger", "partner", "deployer"]),
    ("/mtls/sa-wild", ["deployer", "ci-other"], ["frontend", "batch"]),
    ("/mtls/ns-wild", ["batch"], ["frontend", "deployer"]),
    ("/mtls/td-wild", ["partner"], ["frontend", "stranger", "frontend-alias"]),
    ("/mtls/alias", ["backend"], ["frontend", "frontend-alias"]),
]


@pytest.mark.parametrize("path,ok,ko", CASES, ids=[c[0] for c in CASES])
def test_principal_patterns(call, pki, path, ok, ko):
    for who in ok:
        up = assert_allowed(call(path, who), path)
        assert [v for k, v in up["headers"] if k == "x-oam-principal"] == [pki.spiffe[who]], (who, up)
    for who in ko:
        assert_denied(call(path, who), 403, "role_required")


def test_alias_domain_cert_is_the_same_workload(call, pki):
    """spiffe://old.example.com/ns/shop/sa/frontend holds the role written for
    spiffe://cluster.local/ns/shop/sa/frontend; upstream sees the real SAN."""
    r = call("/mtls/exact", "frontend-alias")
    assert r.upstream_headers("x-oam-principal") == [pki.spiffe["frontend-alias"]]


def test_foreign_trust_domain_is_not_local(call):
    """spiffe://evil.example/ns/shop/sa/frontend must not match ns/shop/sa/* style patterns."""
    assert_denied(call("/mtls/exact", "stranger"), 403, "role_required")


def test_method_restriction(call):
    assert_allowed(call("/mtls/exact", "frontend"))
    assert_denied(call("/mtls/exact", "frontend", method="POST"), 403, "no_matching_rule")


def test_single_segment_wildcard(call):
    assert_allowed(call("/api/books/items", "frontend"), "/api/books/items")
    assert call("/api/books/items", "frontend", method="HEAD").status == 200
    assert_denied(call("/api/a/b/items", "frontend"), 403, "no_matching_rule")
    assert_denied(call("/api/books/items", "backend"), 403, "role_required")


def test_public_rule_without_any_identity(call):
    for listener in ("optional", "plain"):
        r = call("/healthz", listener=listener)
        up = assert_allowed(r, "/healthz")
        assert not [h for h, _ in up["headers"] if h == "x-oam-principal"]
    assert_allowed(call("/healthz", "backend"))  # and with one


def test_no_matching_rule_is_denied(call):
    assert_denied(call("/nothing/here", "frontend"), 403, "no_matching_rule")
    assert_denied(call("/nothing/here"), 403, "no_matching_rule")


def test_deny_rule_wins_even_for_public(call, issuers):
    tok = issuers["okta"].token(groups=["admins"])
    assert_denied(call("/debug/pprof", "frontend", tok), 403, "denied_by_rule")
    assert_denied(call("/debug/a/b"), 403, "denied_by_rule")


def test_missing_token_is_401_with_www_authenticate(call):
    r = call("/claim/eq")
    assert_denied(r, 401, "token_missing")
    assert r.header("www-authenticate").startswith('Bearer realm="oam-authz"')
    # also with a workload cert that holds no role for the path
    assert_denied(call("/claim/eq", "frontend"), 401, "token_missing")


class TestNoClientCertificate:
    """The optional-cert listener: without a certificate only public and
    token-only roles can work."""

    def test_public(self, call):
        assert_allowed(call("/healthz", listener="optional"))

    def test_token_only_role(self, call, issuers):
        assert_allowed(call("/claim/eq", token=issuers["okta"].token(dept="eng"), listener="optional"))

    def test_mtls_roles_fail(self, call):
        for path in ("/mtls/exact", "/mtls/sa-wild", "/mtls/ns-wild", "/mtls/td-wild", "/mtls/alias"):
            assert_denied(call(path, listener="optional"), 403, "role_required")

    def test_principal_plus_token_role_fails_with_token_alone(self, call, issuers):
        tok = issuers["gitlab"].token(namespace_path="platform", ref_protected="true")
        assert_denied(call("/deploy", token=tok, method="POST", listener="optional"), 403, "role_required")

    def test_same_cert_on_optional_listener_counts(self, call, pki):
        r = call("/mtls/exact", cert=pki.clients["frontend"], listener="optional")
        assert_allowed(r)
        assert r.upstream_headers("x-oam-principal") == [pki.spiffe["frontend"]]


class TestDeployPrincipalAndToken:
    """release-pipeline: workload ns/ci/sa/deployer AND a GitLab token with
    namespace_path=platform and ref_protected="true"."""

    def tok(self, issuers, **kw):
        claims = dict(namespace_path="platform", ref_protected="true", project_path="platform/app",
                      sub="project_path:platform/app:ref_type:branch:ref:main")
        claims.update(kw)
        return issuers["gitlab"].token(**claims)

    def test_allowed(self, call, issuers, pki):
        r = call("/deploy", "deployer", self.tok(issuers), method="POST", body=b"{}")
        up = assert_allowed(r, "/deploy")
        assert up["method"] == "POST"
        assert r.upstream_headers("x-oam-principal") == [pki.spiffe["deployer"]]
        assert r.upstream_headers("x-oam-subject") == ["project_path:platform/app:ref_type:branch:ref:main"]
        assert r.upstream_headers("x-oam-issuer") == ["https://gitlab.example.com"]
        assert r.upstream_headers("x-oam-project") == ["platform/app"]
        roles = ",".join(r.upstream_headers("x-oam-roles"))
        assert "release-pipeline" in roles and "r-sa-wild" in roles, roles
        assert r.upstream_headers("authorization") == []  # token removed

    def test_wrong_sa(self, call, issuers):
        assert_denied(call("/deploy", "ci-other", self.tok(issuers), method="POST"), 403, "role_required")
        assert_denied(call("/deploy", "frontend", self.tok(issuers), method="POST"), 403, "role_required")

    def test_wrong_claims(self, call, issuers):
        assert_denied(call("/deploy", "deployer", self.tok(issuers, ref_protected="false"), method="POST"),
                      403, "role_required")
        assert_denied(call("/deploy", "deployer", self.tok(issuers, namespace_path="other"), method="POST"),
                      403, "role_required")
        # boolean true is not the string "true"
        assert_denied(call("/deploy", "deployer", self.tok(issuers, ref_protected=True), method="POST"),
                      403, "role_required")

    def test_missing_token(self, call):
        assert_denied(call("/deploy", "deployer", method="POST"), 401, "token_missing")

    def test_token_from_other_provider(self, call, issuers):
        tok = issuers["okta"].token(namespace_path="platform", ref_protected="true")
        assert_denied(call("/deploy", "deployer", tok, method="POST"), 403, "role_required")
