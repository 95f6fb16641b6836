"""JWT claim conditions, accepted algorithms and every crafted/malicious token
class from the contract (README reason codes)."""
import time

import pytest

from harness.checks import assert_allowed, assert_denied

CLAIM_CASES = [
    # path, claims that hold, claims that do not
    ("/claim/eq", {"dept": "eng"}, {"dept": "sales"}),
    ("/claim/oneof", {"tier": "platinum"}, {"tier": "silver"}),
    ("/claim/contains", {"groups": ["users", "admins"]}, {"groups": ["users"]}),
    ("/claim/scope", {"scope": "items:read items:write"}, {"scope": "items:read items:writer"}),
    ("/claim/nested", {"org": {"team": "payments"}}, {"org": {"team": "billing"}}),
    ("/claim/number", {"level": 3}, {"level": 4}),
    ("/claim/bool", {"email_verified": True}, {"email_verified": False}),
    ("/claim/prefix", {"namespace_path": "platform/tools"}, {"namespace_path": "platform-evil/tools"}),
]


@pytest.mark.parametrize("path,good,bad", CLAIM_CASES, ids=[c[0] for c in CLAIM_CASES])
def test_claim_conditions(call, issuers, path, good, bad):
    okta = issuers["okta"]
    up = assert_allowed(call(path, token=okta.token(**good)), path)
    assert not [v for k, v in up["headers"] if k == "authorization"]
    assert_denied(call(path, token=okta.token(**bad)), 403, "role_required")
    assert_denied(call(path, token=okta.token()), 403, "role_required")  # claim missing


@pytest.mark.parametrize("claims", [
    {"groups": "admins"},            # a string is not an array
    {"level": "3"},                  # the string "3" is not the number 3
    {"email_verified": "true"},      # the string is not the boolean
    {"org.team": "payments"},        # a literal dotted key is not the nested path
    {"scope": "items:write-all"},    # word match, not substring
])
def test_claim_types_are_exact(call, issuers, claims):
    path = {"groups": "/claim/contains", "level": "/claim/number", "email_verified": "/claim/bool",
            "org.team": "/claim/nested", "scope": "/claim/scope"}[next(iter(claims))]
    assert_denied(call(path, token=issuers["okta"].token(**claims)), 403, "role_required")


@pytest.mark.parametrize("alg", ["RS256", "ES256", "EdDSA"])
def test_algorithms_accepted(call, issuers, alg):
    r = call("/claim/eq", token=issuers["okta"].token(alg, dept="eng", sub=f"sub-{alg}"))
    assert_allowed(r)
    assert r.upstream_headers("x-oam-subject") == [f"sub-{alg}"]


def test_audience_array_with_one_match(call, issuers):
    okta = issuers["okta"]
    assert_allowed(call("/claim/eq", token=okta.token(dept="eng", aud=["api://nope", "api://other-shop"])))


def now():
    return int(time.time())


def bad_tokens(iss):
    okta, gl = iss["okta"], iss["gitlab"]
    t = now()
    return {
        "expired": (okta.token(claims=okta.claims(dept="eng", iat=t - 7200, nbf=t - 7200, exp=t - 3600)),
                    "token_expired"),
        "expired-beyond-skew": (okta.token(claims=okta.claims(dept="eng", iat=t - 600, nbf=t - 600, exp=t - 120)),
                                "token_expired"),
        "nbf-future": (okta.token(claims=okta.claims(dept="eng", iat=t, nbf=t + 3600, exp=t + 7200)),
                       "token_not_yet_valid"),
        "iat-future": (okta.token(claims=okta.claims(dept="eng", iat=t + 3600, nbf=None, exp=t + 7200)),
                       "token_not_yet_valid"),
        "lifetime-too-long": (gl.token(claims=gl.claims(lifetime=7200)), "token_lifetime_too_long"),
        "no-exp": (okta.token(claims=okta.claims(dept="eng", exp=None)), "token_missing_claim"),
        "exp-string": (okta.token(claims=okta.claims(dept="eng", exp=str(t + 300))), "token_missing_claim"),
        "wrong-issuer": (okta.token(dept="eng", iss="https://evil.example.com"), "token_issuer_unknown"),
        "no-issuer": (okta.token(claims=okta.claims(dept="eng", iss=None)), "token_issuer_unknown"),
        "wrong-audience": (okta.token(dept="eng", aud="api://elsewhere"), "token_audience_mismatch"),
        "no-audience": (okta.token(claims=okta.claims(dept="eng", aud=None)), "token_audience_mismatch"),
        "tampered": (okta.tampered("RS256", dept="eng"), "token_bad_signature"),
        "tampered-es256": (okta.tampered("ES256", dept="eng"), "token_bad_signature"),
        "tampered-eddsa": (okta.tampered("EdDSA", dept="eng"), "token_bad_signature"),
        "alg-none": (okta.alg_none(dept="eng"), "token_alg_not_allowed"),
        "alg-none-with-sig": (okta.alg_none_signed(dept="eng"), "token_alg_not_allowed"),
        "hs256-with-rsa-pem": (okta.alg_confusion("pem", dept="eng"), "token_alg_not_allowed"),
        "hs256-with-rsa-der": (okta.alg_confusion("der", dept="eng"), "token_alg_not_allowed"),
        "es256-header-on-rsa-kid": (okta.token("ES256", kid=okta.keys["RS256"].kid, dept="eng"),
                                    "token_alg_not_allowed"),
        "unknown-kid": (okta.unknown_kid("RS256", dept="eng"), "token_unknown_kid"),
        "duplicate-claims": (okta.duplicate_claims("RS256", dept="eng"), "token_duplicate_claim"),
        "too-large-64k": (okta.huge(64 * 1024, dept="eng"), "token_too_large"),
        "not-a-jws": ("abc.def", "token_malformed"),
        # otherwise well-formed and from a known issuer: only the encoding is wrong
        "bad-base64-signature": (okta.token(dept="eng").rsplit(".", 1)[0] + ".!!!*", "token_malformed"),
        "bad-base64-payload": (okta.token(dept="eng").split(".")[0] + ".@@@." + okta.token(dept="eng").split(".")[2],
                               "token_malformed"),
        "not-json": ("bm90LWpzb24.bm90LWpzb24.c2ln", "token_malformed"),
    }


BAD_CASES = ["expired", "expired-beyond-skew", "nbf-future", "iat-future", "lifetime-too-long", "no-exp",
             "exp-string", "wrong-issuer", "no-issuer", "wrong-audience", "no-audience", "tampered",
             "tampered-es256", "tampered-eddsa", "alg-none", "alg-none-with-sig", "hs256-with-rsa-pem", "hs256-with-rsa-der",
             "es256-header-on-rsa-kid", "unknown-kid", "duplicate-claims", "too-large-64k", "not-a-jws",
             "bad-base64-signature", "bad-base64-payload", "not-json"]


@pytest.fixture(scope="module")
def bad(issuers):
    toks = bad_tokens(issuers)
    assert sorted(toks) == sorted(BAD_CASES)
    return toks


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_token_is_401_with_reason(call, bad, echo, case):
    token, reason = bad[case]
    before = len(echo.requests)
    r = call("/claim/eq", token=token)
    assert_denied(r, 401, reason)
    assert len(echo.requests) == before  # nothing reached the upstream


@pytest.mark.parametrize("case", ["expired", "alg-none", "tampered", "wrong-issuer"])
def test_bad_token_fails_even_on_public_path(call, bad, case):
    token, reason = bad[case]
    assert_denied(call("/healthz", token=token), 401, reason)


def test_bad_token_fails_even_with_good_mtls_identity(call, bad):
    token, reason = bad["hs256-with-rsa-pem"]
    assert_denied(call("/mtls/exact", "frontend", token), 401, reason)


def test_within_clock_skew_is_accepted(call, issuers):
    okta = issuers["okta"]
    t = now()
    # expired 10 s ago, nbf 10 s ahead: inside the default 30 s skew
    assert_allowed(call("/claim/eq", token=okta.token(claims=okta.claims(dept="eng", iat=t - 100, exp=t - 10))))
    assert_allowed(call("/claim/eq", token=okta.token(claims=okta.claims(dept="eng", iat=t, nbf=t + 10))))


def test_valid_token_repeated_uses_cache_consistently(call, issuers):
    tok = issuers["okta"].token(dept="eng")
    for _ in range(5):
        assert_allowed(call("/claim/eq", token=tok))
    # the same token on a path it does not grant
    assert_denied(call("/claim/oneof", token=tok), 403, "role_required")


# docs/differences.md: where the filter deliberately differs from jwt_authn.
def test_empty_bearer_is_a_malformed_token_not_a_missing_one(call):
    # Envoy trims the trailing space of "Bearer ": the filter sees "Bearer".
    r = call("/claim/eq", headers=[("Authorization", "Bearer ")])
    assert_denied(r, 401, "token_malformed")


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(call, issuers, scheme):
    tok = issuers["okta"].token(dept="eng")
    assert_allowed(call("/claim/eq", headers=[("Authorization", f"{scheme} {tok}")]))


def test_query_token_is_not_percent_decoded(call, issuers):
    tok = issuers["okta"].token(dept="eng")
    assert_allowed(call(f"/claim/eq?access_token={tok}"))
    assert_denied(call("/claim/eq?access_token=" + tok.replace(".", "%2E")), 401, "token_malformed")
