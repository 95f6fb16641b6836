//! Identity headers set upstream (`forward`), and every header stripped from
//! requests because a client could spoof it.

use crate::config::ForwardConfig;
use crate::error::{Diagnostics, FieldPath, Problem};

/// Headers set upstream on allowed requests, all lowercase.
#[derive(Debug, Default)]
pub struct Forward {
    pub principal_header: Option<String>,
    pub subject_header: Option<String>,
    pub issuer_header: Option<String>,
    pub roles_header: Option<String>,
    /// (header, dotted claim path)
    pub claim_headers: Vec<(String, String)>,
}

/// Header names we may set or strip: lowercase RFC 9110 tokens, and never one
/// that Envoy or HTTP semantics depend on.
fn check_header_name(d: &mut Diagnostics, name: &str, path: FieldPath) -> Option<String> {
    const RESERVED: &[&str] = &[
        "host",
        "authorization",
        "cookie",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "te",
        "upgrade",
        "x-request-id",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-envoy-original-path",
        "proxy-authorization",
    ];
    let lower = name.to_ascii_lowercase();
    let token = !lower.is_empty()
        && lower.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    if !token {
        d.invalid(
            path,
            format!("'{name}': a header name of letters, digits, '-', '_', '.'"),
        );
        return None;
    }
    if RESERVED.contains(&lower.as_str()) {
        d.invalid(
            path,
            format!("'{name}' is a reserved header and cannot carry identity"),
        );
        return None;
    }
    Some(lower)
}

/// Compile `forward`: the headers to set and every header to strip (those
/// set, plus the operator's `strip_headers`).
pub fn compile(d: &mut Diagnostics, cfg: Option<&ForwardConfig>) -> (Forward, Vec<String>) {
    let Some(cfg) = cfg else {
        return (Forward::default(), Vec::new());
    };
    let base = FieldPath::root().field("forward");
    let mut strip: Vec<String> = Vec::new();
    let mut one = |d: &mut Diagnostics, name: Option<&String>, path: FieldPath| {
        let h = check_header_name(d, name?, path.clone())?;
        if strip.contains(&h) {
            d.error(path, Problem::duplicate(&h));
            return None;
        }
        strip.push(h.clone());
        Some(h)
    };
    let principal_header = one(
        d,
        cfg.principal_header.as_ref(),
        base.field("principal_header"),
    );
    let subject_header = one(d, cfg.subject_header.as_ref(), base.field("subject_header"));
    let issuer_header = one(d, cfg.issuer_header.as_ref(), base.field("issuer_header"));
    let roles_header = one(d, cfg.roles_header.as_ref(), base.field("roles_header"));
    let mut claim_headers = Vec::new();
    for (h, claim) in &cfg.claim_headers {
        let path = base.field("claim_headers").key(h);
        let name = one(d, Some(h), path.clone());
        if claim.is_empty() || claim.split('.').any(str::is_empty) {
            d.invalid(
                path,
                format!("'{claim}': a dotted claim path such as 'email' or 'realm_access.roles'"),
            );
            continue;
        }
        if let Some(name) = name {
            claim_headers.push((name, claim.clone()));
        }
    }
    for (i, h) in cfg.strip_headers.iter().enumerate() {
        if let Some(h) = check_header_name(d, h, base.field("strip_headers").index(i)) {
            if !strip.contains(&h) {
                strip.push(h);
            }
        }
    }
    let forward = Forward {
        principal_header,
        subject_header,
        issuer_header,
        roles_header,
        claim_headers,
    };
    (forward, strip)
}
