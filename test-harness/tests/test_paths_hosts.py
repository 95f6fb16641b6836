"""Path tricks against the normalizing listeners (Envoy canonicalizes, the
filter decides on the canonical path) and against the listener with
normalization OFF (the filter itself must refuse: 400 path_not_canonical).
Hosts: case-insensitive, port removed."""
import pytest

from harness import policy as POL
from harness.checks import Caller, assert_allowed, assert_denied, start_envoy

# Each of these, read naively as a string, starts with the public prefix
# "/public/" but really addresses /admin/x (admin needs a token with groups=admins).
TRICKS = [
    "/public/../admin/x",
    "/public/%2e%2e/admin/x",
    "/public/%2E%2E/admin/x",
    "/public/./../admin/x",
]
# Non-canonical forms the filter must refuse when Envoy leaves them alone.
NON_CANONICAL = TRICKS + [
    "//admin/x",
    "/public//x",
    "/public/%2Fadmin",
    "/public/%2fadmin",
    "/public/a%5Cb",
    "/public/a\\b",
    "/public/./x",
    "/public/%2E/x",
    "/public/%61dmin",   # percent-encoded unreserved character
    "/public/x;jsessionid=1",
    "/public/%2569nternal",  # double-encoded: an upstream decoding twice sees /public/internal
]


@pytest.mark.parametrize("path", TRICKS)
def test_tricks_on_normalizing_listener_reach_the_real_path(call, path):
    """Envoy resolves the dot segments; the filter judges /admin/x, not /public/."""
    assert_denied(call(path, listener="optional"), 401, "token_missing")


@pytest.mark.parametrize("path", ["//admin/x", "///admin//x"])
def test_merged_slashes_on_normalizing_listener(call, issuers, path):
    assert_denied(call(path, listener="optional"), 401, "token_missing")
    r = call(path, token=issuers["okta"].token(groups=["admins"]), listener="optional")
    assert_allowed(r, "/admin/x")


@pytest.mark.parametrize("path,location", [("/public%2F..%2Fadmin/x", None), ("/public/x%2Fy", "/public/x/y")])
def test_escaped_slash_is_redirected_by_envoy(call, echo, path, location):
    before = len(echo.requests)
    r = call(path, listener="optional")
    assert r.status == 307, r
    if location:
        assert r.header("location").endswith(location), r
    assert len(echo.requests) == before


@pytest.mark.parametrize("path", NON_CANONICAL)
def test_non_canonical_refused_by_filter_on_raw_listener(call, echo, path):
    before = len(echo.requests)
    assert_denied(call(path, listener="raw"), 400, "path_not_canonical")
    assert len(echo.requests) == before


@pytest.mark.parametrize("path", ["//admin/x", "/public/../admin/x", "/public/%2Fadmin"])
def test_non_canonical_refused_even_with_strong_identity(call, issuers, pki, path):
    tok = issuers["okta"].token(groups=["admins"])
    assert_denied(call(path, token=tok, cert=pki.clients["frontend"], listener="raw"), 400, "path_not_canonical")


@pytest.mark.parametrize("path", ["/public/%2569nternal/x", "/public/%252e%252e/admin/x", "/public/100%2541"])
def test_double_encoding_is_refused_after_envoy_normalization(call, echo, path):
    """Envoy's RFC 3986 normalization leaves %25 alone (it decodes unreserved
    characters only), so the double-encoded escape reaches the filter, which
    refuses it instead of allowing it by the /public/* rule."""
    before = len(echo.requests)
    assert_denied(call(path, listener="optional"), 400, "path_not_canonical")
    assert len(echo.requests) == before


@pytest.fixture(scope="module")
def percent_envoy(workdir, pki, echo, wasm, policy):
    import copy
    p = copy.deepcopy(policy)
    p["allow_encoded_percent"] = True
    env = start_envoy(workdir, "encoded-percent", pki, echo, POL.to_json(p))
    yield Caller(env, pki)
    env.stop()


@pytest.mark.parametrize("listener", ["optional", "raw"])
def test_allow_encoded_percent_lets_literal_percent_through(percent_envoy, listener):
    """The documented opt-out: a path that really carries '%' before hex digits."""
    assert_allowed(percent_envoy("/public/100%2541", listener=listener), "/public/100%2541")
    # everything else stays refused
    assert_denied(percent_envoy("/public/%2Fadmin", listener="raw"), 400, "path_not_canonical")


def test_canonical_paths_pass_on_raw_listener(call, issuers):
    assert_allowed(call("/public/x", listener="raw"), "/public/x")
    # the query string is not part of the path: encoded slashes and dots there are fine
    assert_allowed(call("/public/x?next=%2F..%2Fadmin&a=b", listener="raw"), "/public/x?next=%2F..%2Fadmin&a=b")
    assert_allowed(call("/admin/x", token=issuers["okta"].token(groups=["admins"]), listener="raw"), "/admin/x")


def test_paths_are_case_sensitive(call):
    assert_denied(call("/HEALTHZ"), 403, "no_matching_rule")
    assert_denied(call("/Admin/x"), 403, "no_matching_rule")


@pytest.mark.parametrize("host", ["api.example.com", "API.Example.COM:8443", "api.example.com:80", "Api.Example.Com"])
def test_host_case_and_port(call, host):
    assert_allowed(call("/hosted", host=host))


@pytest.mark.parametrize("host", ["other.example.com", "api.example.com.evil.net", "evil-api.example.com", "example.com"])
def test_host_mismatch(call, host):
    assert_denied(call("/hosted", host=host), 403, "no_matching_rule")


@pytest.mark.parametrize("host,ok", [("shop.example.org", True), ("A.B.EXAMPLE.ORG:443", True),
                                     ("example.org", False), ("example.org.evil", False), ("xexample.org", False)])
def test_wildcard_host(call, host, ok):
    r = call("/wildhost", host=host)
    if ok:
        assert_allowed(r)
    else:
        assert_denied(r, 403, "no_matching_rule")
