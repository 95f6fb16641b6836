"""The harness itself, against Envoy WITHOUT the filter: proves the TLS and
normalization plumbing the filter tests rely on (and documents what Envoy 1.40
does on its own). Runs even before the wasm module exists."""
import os
import ssl

import pytest

from harness import client as C
from harness import envoy as E
from harness.checks import standard_listeners


@pytest.fixture(scope="module")
def bare(workdir, pki, echo):
    env = E.Envoy(os.path.join(workdir, "bare"), E.render_bootstrap(standard_listeners([]), pki, echo.port),
                  name="bare").start()
    yield env
    env.stop()


def get(env, pki, listener, path, cert=None, headers=None, host="localhost"):
    return C.request(env.ports[listener], path, headers=headers, cert=cert, ca=pki.ca_cert,
                     tls=listener != "plain", host=host)


def test_mtls_listener_requires_a_trusted_client_cert(bare, pki):
    assert get(bare, pki, "mtls", "/x", cert=pki.clients["frontend"]).status == 200
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        get(bare, pki, "mtls", "/x")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        get(bare, pki, "mtls", "/x", cert=pki.untrusted)


def test_optional_listener_accepts_no_cert_but_not_an_untrusted_one(bare, pki):
    assert get(bare, pki, "optional", "/x").status == 200
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        get(bare, pki, "optional", "/x", cert=pki.untrusted)


def test_xfcc_is_sanitized(bare, pki):
    r = get(bare, pki, "mtls", "/x", cert=pki.clients["frontend"], headers=[("x-forwarded-client-cert", "By=spoof")])
    assert r.upstream_headers("x-forwarded-client-cert") == []


@pytest.mark.parametrize("raw,normalized", [
    ("//admin/x", "/admin/x"),
    ("/public/../admin/x", "/admin/x"),
    ("/public/%2e%2e/admin/x", "/admin/x"),
    ("/public/%2E/x", "/public/x"),
    ("/%61dmin/x", "/admin/x"),       # percent-encoded unreserved characters are decoded
    ("/public/a\\b", "/public/a/b"),  # backslash becomes a slash
    ("/public/a;b", "/public/a;b"),   # ';' is left alone by Envoy
])
def test_envoy_normalization_on_vs_off(bare, pki, raw, normalized):
    """The normalizing listener hands the upstream (and the filter) the canonical
    path; the raw listener passes the request target through unchanged."""
    assert get(bare, pki, "optional", raw).upstream["path"] == normalized
    assert get(bare, pki, "raw", raw).upstream["path"] == raw


@pytest.mark.parametrize("raw,location", [("/admin%2Fx", "/admin/x"), ("/a%5Cb", "/a/b")])
def test_escaped_slashes_are_redirected_not_forwarded(bare, pki, echo, raw, location):
    before = len(echo.requests)
    r = get(bare, pki, "optional", raw)
    assert r.status == 307 and r.header("location").endswith(location), r
    assert len(echo.requests) == before  # never reached the upstream (nor the filter)
    assert get(bare, pki, "raw", raw).upstream["path"] == raw


def test_duplicate_authorization_headers_reach_filters_separately_or_joined(bare, pki):
    """Documents how Envoy 1.40 passes two Authorization headers on (the filter
    must treat either form as two tokens)."""
    r = get(bare, pki, "optional", "/x", headers=[("Authorization", "Bearer aaa"), ("Authorization", "Bearer bbb")])
    vals = r.upstream_headers("authorization")
    assert vals in (["Bearer aaa", "Bearer bbb"], ["Bearer aaa,Bearer bbb"]), vals
    print("upstream authorization values:", vals)


def test_header_above_default_limit_reaches_filters(bare, pki):
    """max_request_headers_kb is raised to 96 so a 64 KB token reaches the filter
    (and gets the filter's 401 token_too_large, not Envoy's 431)."""
    r = get(bare, pki, "optional", "/x", headers=[("Authorization", "Bearer " + "A" * 65536)])
    assert r.status == 200, r
