"""Envoy configurations for the benchmark's mesh shape (mTLS from a client
sidecar) and its memory mode.

The shape is what a mesh request looks like at the receiving sidecar:

    load generator --HTTP/1.1--> client Envoy --mTLS, HTTP/2--> server Envoy (measured)

* the client Envoy plays the caller's sidecar: plaintext HTTP/1.1 in, one
  upstream cluster with TLS (a SPIFFE client certificate from the e2e PKI,
  `test-harness/harness/pki.py`) and HTTP/2, so all requests share pooled,
  multiplexed connections, as between two Istio sidecars;
* the server Envoy has one TLS listener that requires a client certificate
  from the test mesh CA (ALPN h2 and http/1.1) and a `direct_response` route;
  it runs the variant's filters (none, the wasm floor, native `rbac` /
  `jwt_authn` + `rbac`, or oam-authz).

Policies here are the same decision written three ways: oam-authz roles, and
the `rbac` (+ `jwt_authn`) that Istio's AuthorizationPolicy (+
RequestAuthentication) would render.
"""
from __future__ import annotations

import json

SPIFFE_CLIENT = "frontend"      # pki.WORKLOADS name of the calling workload
PRINCIPAL = "ns/shop/sa/frontend"
TRUST_DOMAIN = "cluster.local"

TLS_DOWN = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
TLS_UP = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
RBAC = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"


def server_tls(pki) -> dict:
    """The sidecar-inbound listener's TLS: a client certificate chaining to the
    mesh CA is required."""
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": TLS_DOWN,
            "require_client_certificate": True,
            "common_tls_context": {
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_certificates": [{"certificate_chain": {"filename": pki.server.cert},
                                      "private_key": {"filename": pki.server.key}}],
                "validation_context": {"trusted_ca": {"filename": pki.ca_cert}},
            },
        },
    }


def client_bootstrap(pki, server_port: int) -> dict:
    """The caller's sidecar: plaintext in, mTLS + HTTP/2 to the server Envoy."""
    cert = pki.clients[SPIFFE_CLIENT]
    hcm = {
        "@type": HCM,
        "stat_prefix": "client",
        "codec_type": "HTTP1",
        "generate_request_id": False,
        "route_config": {"name": "out", "virtual_hosts": [{
            "name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "server", "timeout": "10s"}}],
        }]},
        "http_filters": [ROUTER],
    }
    return {
        "node": {"id": "oam-authz-bench-client", "cluster": "bench-client"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "bench",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": hcm}]}],
            }],
            "clusters": [{
                "name": "server", "type": "STATIC", "connect_timeout": "2s",
                "load_assignment": {"cluster_name": "server", "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": server_port}}}}]}]},
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}},
                    },
                },
                "transport_socket": {
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": TLS_UP,
                        "sni": "localhost",
                        "common_tls_context": {
                            "alpn_protocols": ["h2"],
                            "tls_certificates": [{"certificate_chain": {"filename": cert.cert},
                                                  "private_key": {"filename": cert.key}}],
                            "validation_context": {"trusted_ca": {"filename": pki.ca_cert}},
                        },
                    },
                },
            }],
        },
    }


# --------------------------------------------------------------------------------------
# Policies: oam-authz roles and their native equivalents
# --------------------------------------------------------------------------------------

def our_roles(role: str, group: str) -> list[dict]:
    """The `reader` role: "principal" (the calling workload), "token" (a JWT
    whose `groups` holds `group`) or "both" (workload AND token)."""
    r: dict = {"name": "reader"}
    if role in ("principal", "both"):
        r["principals"] = [PRINCIPAL]
    if role in ("token", "both"):
        r["jwt"] = {"provider": "bench", "claims": [{"claim": "groups", "contains": group}]}
    if len(r) == 1:
        raise ValueError(f"unknown role kind {role!r}")
    return [r]


def extra_rules(n: int) -> list[dict]:
    """`n` more allow rules for the `reader` role on paths no benchmark request
    takes (`/svc<i>/items/{*}`, `/svc<i>/static/*`), the shape of
    benches/engine.rs: a large policy for the memory mode."""
    return [{"name": f"svc{i}", "roles": ["reader"], "methods": ["GET", "HEAD"],
             "paths": [f"/svc{i}/items/{{*}}", f"/svc{i}/static/*"]} for i in range(n)]


def principal_id() -> dict:
    return {"authenticated": {"principal_name": {"exact": f"spiffe://{TRUST_DOMAIN}/{PRINCIPAL}"}}}


def claim_id(group: str) -> dict:
    return {"metadata": {
        "filter": "envoy.filters.http.jwt_authn",
        "path": [{"key": "jwt_payload"}, {"key": "groups"}],
        "value": {"list_match": {"one_of": {"string_match": {"exact": group}}}},
    }}


def rbac_filter(role: str, group: str, prefix: str) -> dict:
    """`rbac` allowing GET/HEAD under `prefix` to the role: "principal",
    "token" (the `groups` claim from `jwt_authn`'s metadata) or "both"
    (`and_ids`, as Istio renders `from.source.principals` + `when` claims)."""
    ids = {"principal": [principal_id()], "token": [claim_id(group)],
           "both": [principal_id(), claim_id(group)]}[role]
    principal = ids[0] if len(ids) == 1 else {"and_ids": {"ids": ids}}
    return {
        "name": "envoy.filters.http.rbac",
        "typed_config": {
            "@type": RBAC,
            "rules": {"action": "ALLOW", "policies": {"read": {
                "permissions": [{"and_rules": {"rules": [
                    {"or_rules": {"rules": [{"header": {"name": ":method", "string_match": {"exact": m}}}
                                            for m in ("GET", "HEAD")]}},
                    {"url_path": {"path": {"prefix": prefix}}},
                ]}}],
                "principals": [principal],
            }}},
        },
    }


def jwt_authn_filter(issuer: str, audience: str, jwks: dict, lifetime: int, cache: bool) -> dict:
    provider = {
        "issuer": issuer,
        "audiences": [audience],
        "local_jwks": {"inline_string": json.dumps(jwks)},
        "forward": False,
        "payload_in_metadata": "jwt_payload",
        "max_lifetime": f"{lifetime}s",
    }
    if cache:
        provider["jwt_cache_config"] = {"jwt_cache_size": 100}
    return {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"bench": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
        },
    }
