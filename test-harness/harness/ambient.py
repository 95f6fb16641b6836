"""The Istio ambient shape: a stand-in ztunnel and a waypoint, two Envoys.

Istio's waypoint never sees the caller's certificate on the connection its
HTTP filters run on. ztunnel carries the caller's TCP stream in an HBONE
tunnel (HTTP/2 CONNECT over mTLS, the source workload's SPIFFE certificate);
the waypoint's ``connect_terminate`` listener verifies that certificate,
copies its URI SAN into the filter state ``io.istio.peer_principal`` and
hands the inner stream to the internal listener ``main_internal``, whose
HTTP connection manager holds the filters (ours among them). Istio's
versions: pilot/pkg/networking/core/listener_waypoint.go and
pilot/pkg/xds/filters/filters.go (``connect_authority``).

The stand-in ztunnel (``ztunnel_bootstrap``): one plaintext listener per
tunnel, each a ``tcp_proxy`` with ``tunneling_config`` into an HTTP/2
cluster that presents one workload's client certificate (TLS 1.3, ALPN h2).

The waypoint (``waypoint_bootstrap``):

* ``connect_terminate``: TLS 1.3, ALPN h2, client certificate required and
  chained to the mesh CA; an HCM with a CONNECT route (``upgrade_configs``
  CONNECT with ``connect_config``) and ``envoy.filters.http.set_filter_state``
  setting ``io.istio.peer_principal`` from ``%DOWNSTREAM_PEER_URI_SAN%``,
  shared with the upstream ONCE. ``envoy.hashable_string`` (Istio's own
  ``istio.hashable_string`` is the same StringAccessorImpl, plus a hash) puts
  the value into the upstream pool key, so two identities never share an
  internal connection.
* one internal listener per chain (``main_internal``, and others named in
  ``chains``), reached through an ``envoy_internal_address`` cluster with the
  ``internal_upstream`` transport socket (which passes the shared filter
  state); its HCM runs the oam-authz filter and routes to the echo upstream.
  Like Istio's waypoint with XFCC synthesis, it forwards a client's
  ``x-forwarded-client-cert`` (ALWAYS_FORWARD_ONLY): the tests prove the
  filter ignores it, so the header must reach the filter.
* a sidecar-shaped ``mtls`` listener with the same module: the caller's
  certificate on the connection itself.

CONNECT authorities route to chains: ``<chain>.waypoint.test`` to that
chain, anything else to ``main_internal``.
"""
from __future__ import annotations

import http.client
import os
import socket
from dataclasses import dataclass

from . import client as C
from . import envoy as E

TLS_DOWNSTREAM = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
TLS_UPSTREAM = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
TLS13 = {"tls_minimum_protocol_version": "TLSv1_3", "tls_maximum_protocol_version": "TLSv1_3"}
H2_OPTIONS = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
    "explicit_http_config": {"http2_protocol_options": {}}}}
PEER_PRINCIPAL = "io.istio.peer_principal"
DEFAULT_AUTHORITY = "orders.shop.svc.cluster.local:80"


@dataclass(frozen=True)
class Tunnel:
    """One ztunnel listener: traffic sent to it reaches the waypoint in an
    HBONE tunnel authenticated with ``cert`` (a workload's CertFiles)."""
    name: str
    cert: object
    authority: str = DEFAULT_AUTHORITY


def _cert(files) -> dict:
    return {"certificate_chain": {"filename": files.cert}, "private_key": {"filename": files.key}}


def _static_cluster(name: str, port: int) -> dict:
    return {"name": name, "type": "STATIC", "connect_timeout": "2s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}


def _admin() -> dict:
    return {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}


def _loopback() -> dict:
    return {"socket_address": {"address": "127.0.0.1", "port_value": 0}}


def ztunnel_bootstrap(tunnels: list[Tunnel], pki, waypoint_port: int) -> dict:
    listeners, clusters = [], {}
    for t in tunnels:
        cluster = f"hbone-{t.name}"
        listeners.append({"name": f"zt-{t.name}", "address": _loopback(), "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.tcp_proxy",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": f"zt-{t.name}", "cluster": cluster,
                "tunneling_config": {"hostname": t.authority},
            }}]}]})
        c = _static_cluster(cluster, waypoint_port)
        c["typed_extension_protocol_options"] = H2_OPTIONS
        c["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": TLS_UPSTREAM, "sni": "localhost",
            "common_tls_context": {
                "tls_params": TLS13, "alpn_protocols": ["h2"],
                "tls_certificates": [_cert(t.cert)],
                "validation_context": {"trusted_ca": {"filename": pki.ca_cert}},
            }}}
        clusters[cluster] = c
    return {"node": {"id": "ztunnel-e2e", "cluster": "ztunnel"}, "admin": _admin(),
            "static_resources": {"listeners": listeners, "clusters": list(clusters.values())}}


def _connect_terminate(pki, chains: list[str], factory_key: str) -> dict:
    vhosts = [{"name": c, "domains": [f"{c}.waypoint.test", f"{c}.waypoint.test:*"],
               "routes": [_connect_route(c)]} for c in chains if c != "main_internal"]
    vhosts.append({"name": "default", "domains": ["*"], "routes": [_connect_route("main_internal")]})
    hcm = {
        "@type": HCM, "stat_prefix": "connect_terminate", "codec_type": "HTTP2",
        "http2_protocol_options": {"allow_connect": True},
        "upgrade_configs": [{"upgrade_type": "CONNECT"}],
        "route_config": {"name": "connect", "virtual_hosts": vhosts},
        "http_filters": [{
            "name": "envoy.filters.http.set_filter_state",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.set_filter_state.v3.Config",
                "on_request_headers": [{
                    "object_key": PEER_PRINCIPAL,
                    "factory_key": factory_key,
                    "format_string": {"text_format_source": {"inline_string": "%DOWNSTREAM_PEER_URI_SAN%"}},
                    "shared_with_upstream": "ONCE",
                }],
            },
        }, ROUTER],
    }
    tls = {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": TLS_DOWNSTREAM, "require_client_certificate": True,
        "common_tls_context": {
            "tls_params": TLS13, "alpn_protocols": ["h2"],
            "tls_certificates": [_cert(pki.server)],
            "validation_context": {"trusted_ca": {"filename": pki.ca_cert}},
        }}}
    return {"name": "connect_terminate", "address": _loopback(), "filter_chains": [{
        "transport_socket": tls,
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}]}


def _connect_route(cluster: str) -> dict:
    return {"match": {"connect_matcher": {}},
            "route": {"cluster": cluster, "upgrade_configs": [{"upgrade_type": "CONNECT", "connect_config": {}}]}}


def _internal_cluster(name: str) -> dict:
    return {"name": name, "connect_timeout": "2s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"envoy_internal_address": {"server_listener_name": name}}}}]}]},
            "transport_socket": {"name": "envoy.transport_sockets.internal_upstream", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.internal_upstream.v3.InternalUpstreamTransport",
                "transport_socket": {"name": "envoy.transport_sockets.raw_buffer", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}},
            }}}


def waypoint_bootstrap(pki, upstream_port: int, chains: dict[str, str], sidecar_policy: str,
                       factory_key: str = "envoy.hashable_string") -> dict:
    """``chains``: internal listener name -> policy JSON (``main_internal`` required).
    ``factory_key``: the filter-state object type of ``io.istio.peer_principal``."""
    assert "main_internal" in chains
    listeners = [_connect_terminate(pki, list(chains), factory_key)]
    clusters = [_static_cluster("echo", upstream_port)]
    for i, (name, policy_json) in enumerate(chains.items()):
        lst = E.Listener(name, tls=None, http_filters=[E.wasm_filter(policy_json, name=f"oam_authz_{i}")])
        hcm = E._hcm(lst)
        hcm["forward_client_cert_details"] = "ALWAYS_FORWARD_ONLY"
        listeners.append({"name": name, "internal_listener": {}, "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}]})
        clusters.append(_internal_cluster(name))
    sidecar = E.Listener("mtls", tls="require", http_filters=[E.wasm_filter(sidecar_policy, name="oam_authz_sidecar")])
    listeners.append({"name": "mtls", "address": _loopback(), "filter_chains": [{
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": E._hcm(sidecar)}],
        "transport_socket": E._tls_socket(pki, require=True)}]})
    return {
        "node": {"id": "waypoint-e2e", "cluster": "waypoint"}, "admin": _admin(),
        "bootstrap_extensions": [{"name": "envoy.bootstrap.internal_listener", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener"}}],
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


class Ambient:
    """Both Envoys, started waypoint first (ztunnel's clusters need its port)."""

    def __init__(self, workdir: str, pki, echo, chains: dict[str, str], sidecar_policy: str,
                 tunnels: list[Tunnel], factory_key: str = "envoy.hashable_string"):
        self.pki = pki
        boot = waypoint_bootstrap(pki, echo.port, chains, sidecar_policy, factory_key)
        self.waypoint = E.Envoy(os.path.join(workdir, "waypoint"), boot, name="waypoint")
        self.tunnels = tunnels
        self.workdir = workdir
        self.ztunnel: E.Envoy | None = None

    def start(self) -> "Ambient":
        self.waypoint.start()
        try:
            boot = ztunnel_bootstrap(self.tunnels, self.pki, self.waypoint.ports["connect_terminate"])
            self.ztunnel = E.Envoy(os.path.join(self.workdir, "ztunnel"), boot, name="ztunnel").start()
        except Exception:
            self.waypoint.stop()
            raise
        return self

    def stop(self) -> None:
        if self.ztunnel:
            self.ztunnel.stop()
        self.waypoint.stop()

    def port(self, tunnel: str) -> int:
        assert self.ztunnel is not None
        return self.ztunnel.ports[f"zt-{tunnel}"]

    def request(self, tunnel: str, path: str = "/", method: str = "GET", headers=None, **kw) -> C.Response:
        """One request on a fresh connection, so in a tunnel of its own."""
        return C.request(self.port(tunnel), path, method, headers, tls=False, **kw)

    def connection(self, tunnel: str) -> "KeepAlive":
        return KeepAlive(self.port(tunnel))


class KeepAlive:
    """Several HTTP/1.1 requests on one connection: one tunnel, many streams
    of the waypoint's internal listener."""

    def __init__(self, port: int, timeout: float = 10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def request(self, path: str, method: str = "GET", headers=None, bearer: str | None = None,
                body: bytes = b"") -> C.Response:
        lines = [f"{method} {path} HTTP/1.1", "Host: localhost"]
        lines += [f"{k}: {v}" for k, v in (headers or [])]
        if bearer is not None:
            lines.append(f"Authorization: Bearer {bearer}")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        resp = http.client.HTTPResponse(self.sock, method=method)
        resp.begin()
        data = resp.read()
        return C.Response(resp.status, [(k.lower(), v) for k, v in resp.getheaders()], data)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
