"""Identity-header spoofing, multiple tokens, token removal/forwarding."""
from harness.checks import SENT_TOKENS, assert_allowed, assert_denied

SPOOF = [
    ("x-oam-principal", "spiffe://cluster.local/ns/admin/sa/admin"),
    ("X-OAM-Roles", "release-pipeline,r-contains"),
    ("x-oam-subject", "root"),
    ("x-oam-issuer", "https://gitlab.example.com"),
    ("x-oam-project", "platform/app"),
    ("x-user", "root"),
    ("x-forwarded-client-cert", "By=spiffe://cluster.local/ns/admin/sa/admin"),
]


def test_spoofed_identity_headers_replaced_by_real_ones(call, pki):
    r = call("/mtls/exact", "frontend", headers=SPOOF)
    assert_allowed(r)
    assert r.upstream_headers("x-oam-principal") == [pki.spiffe["frontend"]]
    roles = ",".join(r.upstream_headers("x-oam-roles"))
    assert "r-exact" in roles and "release-pipeline" not in roles and "r-contains" not in roles, roles
    for h in ("x-oam-subject", "x-oam-issuer", "x-oam-project", "x-user", "x-forwarded-client-cert"):
        assert r.upstream_headers(h) == [], (h, r.upstream)


def test_spoofed_identity_headers_stripped_on_public_path_without_identity(call):
    r = call("/healthz", headers=SPOOF)
    assert_allowed(r)
    for h, _ in SPOOF:
        assert r.upstream_headers(h) == [], (h, r.upstream)


def test_spoofed_headers_with_token_only(call, issuers):
    r = call("/claim/eq", token=issuers["okta"].token(dept="eng", sub="alice"), headers=SPOOF)
    assert_allowed(r)
    assert r.upstream_headers("x-oam-principal") == []  # no certificate: no principal
    assert r.upstream_headers("x-oam-subject") == ["alice"]
    assert r.upstream_headers("x-oam-issuer") == [issuers["okta"].issuer]
    assert r.upstream_headers("x-oam-project") == []  # claim absent from this token
    assert r.upstream_headers("x-user") == []


def test_two_authorization_headers(call, issuers):
    """Envoy 1.40 joins repeated Authorization headers into one value
    ("Bearer a,Bearer b": see test_00_harness); the filter must still see two tokens."""
    t1 = issuers["okta"].token(dept="eng")
    t2 = issuers["okta"].token(dept="eng", sub="other")
    SENT_TOKENS.extend([t1, t2])
    r = call("/claim/eq", headers=[("Authorization", f"Bearer {t1}"), ("Authorization", f"Bearer {t2}")])
    assert_denied(r, 400, "multiple_tokens")
    assert 'error="invalid_request"' in (r.header("www-authenticate") or ""), r


def test_same_token_twice_is_still_multiple(call, issuers):
    t1 = issuers["okta"].token(dept="eng")
    SENT_TOKENS.append(t1)
    r = call("/healthz", headers=[("Authorization", f"Bearer {t1}"), ("authorization", f"Bearer {t1}")])
    assert_denied(r, 400, "multiple_tokens")


def test_header_and_query_token(call, issuers):
    t1 = issuers["okta"].token(dept="eng")
    SENT_TOKENS.append(t1)
    assert_denied(call(f"/claim/eq?access_token={t1}", token=t1), 400, "multiple_tokens")


def test_query_token_alone_works_and_is_removed(call, issuers):
    t1 = issuers["okta"].token(dept="eng")
    SENT_TOKENS.append(t1)
    r = call(f"/claim/eq?x=1&access_token={t1}")
    up = assert_allowed(r)
    assert t1 not in up["path"], up["path"]
    assert up["path"].startswith("/claim/eq"), up["path"]


def test_token_removed_upstream_by_default(call, issuers):
    t1 = issuers["okta"].token(dept="eng")
    r = call("/claim/eq", token=t1)
    assert_allowed(r)
    assert r.upstream_headers("authorization") == []
    assert t1 not in r.body.decode()


def test_token_forwarded_when_forward_token(call, issuers):
    t1 = issuers["fwd"].token("ES256")
    r = call("/fwd", token=t1)
    assert_allowed(r)
    assert r.upstream_headers("authorization") == [f"Bearer {t1}"]


def test_unrelated_headers_pass_through(call):
    r = call("/healthz", headers=[("x-custom", "1"), ("x-custom", "2")])
    assert_allowed(r)
    assert ",".join(r.upstream_headers("x-custom")) in ("1,2",) or r.upstream_headers("x-custom") == ["1", "2"]


def test_two_query_tokens(call, issuers):
    t1 = issuers["okta"].token(dept="eng")
    t2 = issuers["okta"].token(dept="eng", sub="b")
    SENT_TOKENS.extend([t1, t2])
    assert_denied(call(f"/claim/eq?access_token={t1}&access_token={t2}"), 400, "multiple_tokens")
