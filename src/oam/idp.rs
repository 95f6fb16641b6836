//! `compile --idp-manifests`: the Istio resources each `remoteJwks` IdP
//! needs, so the sidecars can fetch its keys (docs/operations.md "The
//! cluster"). The filter sends plain HTTP through the Envoy cluster named in
//! `remoteJwks.cluster`, so that cluster must originate TLS:
//!
//! - `outbound|<port>||<host>` (Istio's own cluster): a `ServiceEntry` with
//!   that port as HTTP to `targetPort` 443 (and 443 as TLS passthrough for
//!   the apps' own HTTPS), and a `DestinationRule` originating TLS on it;
//! - any other name: an `EnvoyFilter` adding the cluster (STRICT_DNS, TLS
//!   with SNI and a certificate check) to the protected workloads, and a
//!   `ServiceEntry` for the apps' own calls, as in
//!   `istio/rollout/idp-serviceentry.yaml`.

use super::compile::CompiledComponent;
use super::load::Application;
use super::manifest::{Rendered, LABEL_APP};
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Host and port of an absolute http(s) URL (port: the scheme's default).
fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let default = if scheme.eq_ignore_ascii_case("http") {
        80
    } else {
        443
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            (h, p.parse().ok()?)
        }
        _ => (authority, default),
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

/// `outbound|80||idp.example.com` -> (80, `idp.example.com`).
fn istio_cluster(name: &str) -> Option<(u16, &str)> {
    let mut it = name.split('|');
    match (it.next(), it.next(), it.next(), it.next(), it.next()) {
        (Some("outbound"), Some(port), Some(""), Some(host), None) if !host.is_empty() => {
            port.parse().ok().map(|p| (p, host))
        }
        _ => None,
    }
}

fn metadata(app: &Application, name: &str) -> Value {
    json!({
        "name": name,
        "namespace": app.namespace,
        "labels": {"app.kubernetes.io/managed-by": "oam-authz"},
    })
}

/// The apps' own HTTPS to the IdP (TLS passthrough), plus, for Istio's
/// cluster, the plain-HTTP port the filter's fetches use.
fn service_entry(app: &Application, name: &str, host: &str, http_port: Option<u16>) -> Value {
    let mut ports = Vec::new();
    if let Some(p) = http_port {
        ports
            .push(json!({"number": p, "name": "http-jwks", "protocol": "HTTP", "targetPort": 443}));
    }
    ports.push(json!({"number": 443, "name": "tls", "protocol": "TLS"}));
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "ServiceEntry",
        "metadata": metadata(app, name),
        "spec": {
            "hosts": [host],
            "location": "MESH_EXTERNAL",
            "resolution": "DNS",
            "ports": ports,
            "exportTo": ["."],
        },
    })
}

fn destination_rule(app: &Application, name: &str, host: &str, port: u16) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": metadata(app, name),
        "spec": {
            "host": host,
            "exportTo": ["."],
            "trafficPolicy": {"portLevelSettings": [{
                "port": {"number": port},
                // The certificate must name the IdP, or anyone with a public
                // certificate on the path could serve keys.
                "tls": {"mode": "SIMPLE", "sni": host, "subjectAltNames": [host]},
            }]},
        },
    })
}

fn envoy_filter(app: &Application, name: &str, cluster: &str, host: &str, port: u16) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "EnvoyFilter",
        "metadata": metadata(app, name),
        "spec": {
            "workloadSelector": {"labels": {LABEL_APP: app.name}},
            "configPatches": [{
                "applyTo": "CLUSTER",
                "match": {"context": "SIDECAR_OUTBOUND"},
                "patch": {"operation": "ADD", "value": {
                    "name": cluster,
                    "type": "STRICT_DNS",
                    "dns_lookup_family": "V4_PREFERRED",
                    "connect_timeout": "2s",
                    "load_assignment": {
                        "cluster_name": cluster,
                        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                            "socket_address": {"address": host, "port_value": port},
                        }}}]}],
                    },
                    "transport_socket": {
                        "name": "envoy.transport_sockets.tls",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                            "sni": host,
                            "common_tls_context": {"validation_context": {
                                "trusted_ca": {"filename": "/etc/ssl/certs/ca-certificates.crt"},
                                "match_typed_subject_alt_names": [{"san_type": "DNS", "matcher": {"exact": host}}],
                            }},
                        },
                    },
                }},
            }],
        },
    })
}

/// The manifests for every remote-key IdP of `compiled` (one set per
/// cluster), each a YAML document for `render`, and warnings to print.
pub fn idp_manifests(
    app: &Application,
    compiled: &[CompiledComponent],
    header: &str,
) -> Result<(Vec<Rendered>, Vec<String>), String> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut seen = BTreeSet::new();
    for p in compiled.iter().flat_map(|c| c.config.providers.iter()) {
        let Some(remote) = &p.remote_jwks else {
            continue;
        };
        if !seen.insert(remote.cluster.clone()) {
            continue;
        }
        let url = remote.uri.clone().unwrap_or_else(|| p.issuer.clone());
        let Some((host, port)) = host_port(&url) else {
            warnings.push(format!(
                "provider '{}': no host in '{url}': no IdP manifests generated",
                p.name
            ));
            continue;
        };
        if remote.discovery {
            warnings.push(format!(
                "provider '{}': with discovery, the jwks_uri the IdP announces is fetched through the same cluster '{}': it must be on {host}",
                p.name, remote.cluster
            ));
        }
        let name = format!("oam-authz-{}-idp-{}", app.name, p.name);
        let docs = match istio_cluster(&remote.cluster) {
            Some((443, _)) => {
                warnings.push(format!(
                    "provider '{}': cluster '{}' is the IdP's TLS port, but the filter sends plain HTTP to its cluster: use outbound|80||{host} (no IdP manifests generated)",
                    p.name, remote.cluster
                ));
                continue;
            }
            Some((cport, chost)) => {
                if chost != host {
                    warnings.push(format!(
                        "provider '{}': cluster '{}' names host {chost}, but the keys are at {host}",
                        p.name, remote.cluster
                    ));
                }
                vec![
                    service_entry(app, &name, chost, Some(cport)),
                    destination_rule(app, &name, chost, cport),
                ]
            }
            None => vec![
                service_entry(app, &name, &host, None),
                envoy_filter(app, &name, &remote.cluster, &host, port),
            ],
        };
        let mut texts = Vec::new();
        for d in &docs {
            texts.push(
                serde_norway::to_string(&super::lower::canonical_json(d))
                    .map_err(|e| format!("cannot render YAML: {e}"))?,
            );
        }
        out.push(Rendered {
            file_name: format!("{name}.yaml"),
            text: format!("{header}{}", texts.join("---\n")),
        });
    }
    Ok((out, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_cluster_names() {
        assert_eq!(
            host_port("https://Example.okta.com/oauth2/v1/keys"),
            Some(("example.okta.com".into(), 443))
        );
        assert_eq!(
            host_port("https://idp.example.com:8443/keys"),
            Some(("idp.example.com".into(), 8443))
        );
        assert_eq!(
            host_port("http://idp.example.com"),
            Some(("idp.example.com".into(), 80))
        );
        assert_eq!(host_port("nope"), None);
        assert_eq!(
            istio_cluster("outbound|80||idp.example.com"),
            Some((80, "idp.example.com"))
        );
        assert_eq!(istio_cluster("idp-okta"), None);
        assert_eq!(istio_cluster("outbound|80|v1|idp.example.com"), None);
    }
}
