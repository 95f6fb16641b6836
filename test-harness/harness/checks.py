"""Helpers shared by the e2e tests: a caller bound to one Envoy, and
assertions on the filter's allow/deny responses."""
from __future__ import annotations

import os

from . import client as C
from . import envoy as E

# Every token a test sends is recorded so the log-hygiene test can prove none
# of them was ever logged.
SENT_TOKENS: list[str] = []


def standard_listeners(filters):
    return [
        E.Listener("mtls", tls="require", http_filters=filters),
        E.Listener("optional", tls="optional", http_filters=filters),
        E.Listener("raw", tls="optional", normalize=False, http_filters=filters),
        E.Listener("plain", tls=None, http_filters=filters),
    ]


def start_envoy(workdir, name, pki, echo, policy_json, listeners=None, concurrency=1, wasm=None):
    filters = [E.wasm_filter(policy_json, wasm or E.WASM)]
    boot = E.render_bootstrap(listeners or standard_listeners(filters), pki, echo.port)
    return E.Envoy(os.path.join(workdir, name), boot, concurrency=concurrency, name=name).start()


class Caller:
    """``call(path, who=..., token=..., listener=...)`` against one Envoy."""

    def __init__(self, env, pki):
        self.env, self.pki = env, pki

    def __call__(self, path="/", who: str | None = None, token: str | None = None, *, listener: str | None = None,
                 method="GET", headers=None, host="localhost", cert=None, body=b""):
        if listener is None:
            listener = "mtls" if (who or cert) else "optional"
        if token is not None:
            SENT_TOKENS.append(token)
        c = cert or (self.pki.clients[who] if who else None)
        return C.request(self.env.ports[listener], path, method, headers, cert=c, ca=self.pki.ca_cert,
                         tls=(listener != "plain"), host=host, bearer=token, body=body)



def assert_denied(r, status: int, reason: str):
    assert r.status == status, r
    assert r.header("x-oam-authz-reason") == reason, r
    body = r.json()
    assert body["reason"] == reason, r
    assert body["error"] == {400: "bad_request", 401: "unauthorized", 403: "forbidden"}[status], r
    assert body.get("request_id"), r
    # nothing internal in the body
    assert set(body) == {"error", "reason", "request_id"}, r
    if status == 401:
        www = r.header("www-authenticate") or ""
        assert www.startswith('Bearer realm="oam-authz"'), r
        if reason == "token_missing":
            assert "error=" not in www, r
        else:
            assert 'error="invalid_token"' in www, r


def assert_allowed(r, path: str | None = None):
    assert r.status == 200, r
    up = r.upstream  # the echo server answered: the request reached the upstream
    if path is not None:
        assert up["path"] == path, r
    return up
