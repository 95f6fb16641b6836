"""Istio ambient: the filter on a waypoint, where the caller's identity is not
on the connection. A stand-in ztunnel tunnels each caller over HBONE
(HTTP/2 CONNECT, mTLS with the caller's SPIFFE certificate) to a waypoint
shaped like Istio's (connect_terminate -> set_filter_state
io.istio.peer_principal -> internal listener main_internal with our filter).
The shape is built in harness/ambient.py; the policy is harness/policy.py.

Chains of the waypoint (one internal listener each, same module):
  main_internal  the suite's policy, peer_identity absent (auto)
  pinned         the same with peer_identity: connection
  waypoint       the same with peer_identity: istio_waypoint
and the sidecar-shaped `mtls` listener, the same policy (auto).
"""
import http.client
import os

import pytest

from harness import ambient as A
from harness import client as C
from harness import policy as POL
from harness.checks import SENT_TOKENS, assert_allowed, assert_denied

XFCC = "x-forwarded-client-cert"


@pytest.fixture(scope="module")
def mesh(workdir, pki, echo, wasm, policy):
    chains = {
        "main_internal": POL.to_json(policy),
        "pinned": POL.to_json(dict(policy, peer_identity="connection")),
        "waypoint": POL.to_json(dict(policy, peer_identity="istio_waypoint")),
    }
    two_sans = pki.issue_client("two-sans", [pki.spiffe["frontend"], pki.spiffe["deployer"]])
    tunnels = [
        A.Tunnel("frontend", pki.clients["frontend"]),
        A.Tunnel("deployer", pki.clients["deployer"]),
        A.Tunnel("frontend-alias", pki.clients["frontend-alias"]),
        A.Tunnel("frontend-pinned", pki.clients["frontend"], "pinned.waypoint.test:80"),
        A.Tunnel("frontend-waypoint", pki.clients["frontend"], "waypoint.waypoint.test:80"),
        A.Tunnel("two-sans", two_sans),
        A.Tunnel("untrusted", pki.untrusted),
    ]
    m = A.Ambient(os.path.join(workdir, "ambient"), pki, echo, chains, POL.to_json(policy), tunnels).start()
    yield m
    m.stop()


def gitlab_deploy_token(issuers):
    tok = issuers["gitlab"].token(namespace_path="platform", ref_protected="true", project_path="platform/app",
                                  sub="project_path:platform/app:ref_type:branch:ref:main")
    SENT_TOKENS.append(tok)
    return tok


def allowed_as(r, path=None) -> list[str]:
    """Asserts the request reached the upstream; the principal header it got."""
    assert_allowed(r, path)
    return r.upstream_headers("x-oam-principal")


def test_each_tunnel_carries_its_own_identity(mesh, pki):
    """Two callers on two long-lived tunnels at once, requests interleaved on
    the waypoint's one worker: each request gets the roles of its own tunnel."""
    with mesh.connection("frontend") as fe, mesh.connection("deployer") as dep:
        for _ in range(3):
            assert allowed_as(fe.request("/mtls/exact"), "/mtls/exact") == [pki.spiffe["frontend"]]
            assert allowed_as(dep.request("/mtls/sa-wild"), "/mtls/sa-wild") == [pki.spiffe["deployer"]]
            assert_denied(fe.request("/mtls/sa-wild"), 403, "role_required")
            assert_denied(dep.request("/mtls/exact"), 403, "role_required")
    # and on fresh tunnels, one per request
    assert_allowed(mesh.request("frontend", "/mtls/exact"))
    assert_denied(mesh.request("deployer", "/mtls/exact"), 403, "role_required")


def test_trust_domain_alias_through_the_tunnel(mesh, pki):
    r = mesh.request("frontend-alias", "/mtls/exact")
    assert allowed_as(r) == [pki.spiffe["frontend-alias"]]


def test_spoofed_identity_headers_grant_nothing(mesh, pki):
    """XFCC and our own principal header, naming the deployer, on the
    frontend's tunnel: the deployer's role is not granted, and the headers did
    reach the filter (main_internal forwards XFCC, as Istio's waypoint does
    with XFCC synthesis on)."""
    spoof = [(XFCC, f"By=spiffe://cluster.local/ns/shop/sa/waypoint;URI={pki.spiffe['deployer']}"),
             ("x-oam-principal", pki.spiffe["deployer"]),
             ("x-oam-roles", "r-sa-wild")]
    assert_denied(mesh.request("frontend", "/mtls/sa-wild", headers=spoof), 403, "role_required")
    up = assert_allowed(mesh.request("frontend", "/healthz", headers=spoof), "/healthz")
    seen = {k: [v for h, v in up["headers"] if h == k] for k in (XFCC, "x-oam-principal", "x-oam-roles")}
    assert seen[XFCC] == [spoof[0][1]], up  # it reached the filter, which ignored it
    assert seen["x-oam-principal"] == [pki.spiffe["frontend"]], up  # ours, from the tunnel
    assert seen["x-oam-roles"] == ["r-exact"], up  # the frontend's roles, not the spoofed one


def test_principal_and_token_role(mesh, pki, issuers):
    tok = gitlab_deploy_token(issuers)
    r = mesh.request("deployer", "/deploy", "POST", bearer=tok, body=b"{}")
    assert allowed_as(r, "/deploy") == [pki.spiffe["deployer"]]
    assert r.upstream_headers("x-oam-subject") == ["project_path:platform/app:ref_type:branch:ref:main"]
    assert r.upstream_headers("authorization") == []
    assert_denied(mesh.request("frontend", "/deploy", "POST", bearer=tok), 403, "role_required")
    assert_denied(mesh.request("deployer", "/deploy", "POST"), 401, "token_missing")


def test_audit_event_carries_the_tunnel_peer(mesh, pki, issuers):
    tok = gitlab_deploy_token(issuers)
    start = mesh.waypoint.log_offset()
    mesh.request("deployer", "/deploy", "POST", headers=[("x-request-id", "ambient-allow-1")], bearer=tok)
    mesh.request("frontend", "/mtls/sa-wild", headers=[("x-request-id", "ambient-deny-1")])
    ev = mesh.waypoint.wait_audit("ambient-allow-1", start=start)
    assert (ev["decision"], ev["reason"], ev["rule"]) == ("allow", "role_granted", "deploy"), ev
    assert ev["peer"] == pki.spiffe["deployer"] and ev["iss"] == issuers["gitlab"].issuer, ev
    ev = mesh.waypoint.wait_audit("ambient-deny-1", start=start)
    assert (ev["decision"], ev["reason"], ev["peer"]) == ("deny", "role_required", pki.spiffe["frontend"]), ev


def test_peer_identity_source_is_honoured(mesh, pki):
    """`connection` on a waypoint sees no one (the internal connection is not
    mTLS); `istio_waypoint` sees the tunnel, as `auto` does."""
    assert_denied(mesh.request("frontend-pinned", "/mtls/exact"), 403, "role_required")
    up = assert_allowed(mesh.request("frontend-pinned", "/healthz"))
    assert [v for h, v in up["headers"] if h == "x-oam-principal"] == []
    r = mesh.request("frontend-waypoint", "/mtls/exact")
    assert allowed_as(r) == [pki.spiffe["frontend"]]


def test_certificate_with_two_uri_sans_is_no_identity(mesh, pki):
    """%DOWNSTREAM_PEER_URI_SAN% joins several SANs with ','; the strict
    SPIFFE parse refuses that, so neither identity is taken (a sidecar would
    read the first SAN only)."""
    assert_denied(mesh.request("two-sans", "/mtls/exact"), 403, "role_required")
    assert_denied(mesh.request("two-sans", "/mtls/sa-wild"), 403, "role_required")
    up = assert_allowed(mesh.request("two-sans", "/healthz"))
    assert [v for h, v in up["headers"] if h == "x-oam-principal"] == []


def test_untrusted_certificate_gets_no_tunnel(mesh):
    """The waypoint refuses the handshake; the request never reaches a filter."""
    start = mesh.waypoint.log_offset()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        mesh.request("untrusted", "/healthz")
    assert mesh.waypoint.audit_events(start) == []


def test_sidecar_shape_same_module_auto(mesh, pki):
    """The waypoint Envoy's sidecar-shaped listener: the certificate on the
    connection itself, the same module and policy (auto)."""
    port = mesh.waypoint.ports["mtls"]
    r = C.request(port, "/mtls/exact", cert=pki.clients["frontend"], ca=pki.ca_cert)
    assert allowed_as(r) == [pki.spiffe["frontend"]]
    assert_denied(C.request(port, "/mtls/exact", cert=pki.clients["deployer"], ca=pki.ca_cert), 403, "role_required")


def test_no_trap_on_the_waypoint(mesh):
    text = mesh.waypoint.log_text().lower()
    for bad in ("panicked", "wasm trap", "unreachable", "failed to load"):
        assert bad not in text, bad


def test_non_hashable_filter_state_leaks_across_tunnels(workdir, pki, echo, wasm, policy):
    """Pins the Envoy 1.40 behaviour behind the residual risk in docs/policy.md
    "Peer identity": set with the plain `envoy.string` factory, the value is not
    part of the internal connection pool's key, so the deployer's tunnel
    reaches the filter with the frontend's identity (istio/istio#58630; Istio
    uses istio.hashable_string since 1.29.2, the harness envoy.hashable_string)."""
    tunnels = [A.Tunnel("frontend", pki.clients["frontend"]), A.Tunnel("deployer", pki.clients["deployer"])]
    m = A.Ambient(os.path.join(workdir, "ambient-leaky"), pki, echo, {"main_internal": POL.to_json(policy)},
                  POL.to_json(policy), tunnels, factory_key="envoy.string").start()
    try:
        with m.connection("frontend") as fe, m.connection("deployer") as dep:
            assert allowed_as(fe.request("/healthz")) == [pki.spiffe["frontend"]]
            assert allowed_as(dep.request("/healthz")) == [pki.spiffe["frontend"]]  # not the deployer
    finally:
        m.stop()
