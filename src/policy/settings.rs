//! A provider's verification settings in canonical text: everything that
//! decides whether a token verifies (issuer, audiences, algorithms, keys,
//! token locations, clock skew, lifetime), defaults filled in, lists as
//! sets, JSON with sorted keys. Two providers with the same text verify
//! every token alike: a shadow policy shares such a provider's verified
//! token (`policy/shadow.rs`), and `oam-authz replay` trusts a recorded
//! verification under a provider whose digest the event names.
//! `forward_token` is left out: it changes what goes upstream, not what
//! verifies.

use super::sources;
use crate::config::{ProviderConfig, RemoteJwksConfig};
use crate::json::write as json;

/// Default tolerance for `exp`/`nbf`/`iat` (Envoy uses 60 s, jwt-simple 15 min).
pub const DEFAULT_CLOCK_SKEW: u64 = 30;
/// Default maximum token lifetime: one day.
pub const DEFAULT_MAX_LIFETIME: u64 = 86_400;

/// FNV-1a: a stable, dependency-free fingerprint. Not a security boundary,
/// only a label (policy versions, provider digests in audit events).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The settings fields, in the order they are compared and hashed.
pub const FIELDS: [&str; 9] = [
    "issuer",
    "audiences",
    "audience_claim",
    "algorithms",
    "jwks",
    "remote_jwks",
    "from",
    "clock_skew_seconds",
    "max_lifetime_seconds",
];

/// One canonical text per entry of [`FIELDS`].
pub fn canonical(cfg: &ProviderConfig) -> [String; 9] {
    let set = |items: Vec<&str>| {
        let mut out = String::new();
        for s in sorted(items) {
            json::string(&mut out, s);
            out.push(',');
        }
        out
    };
    let from: Vec<String> = match &cfg.from {
        None => vec![sources::label(&sources::bearer())],
        Some(list) => list
            .iter()
            .map(|s| sources::label(&sources::lowercased(s)))
            .collect(),
    };
    let mut jwks = String::new();
    if let Some(v) = &cfg.jwks {
        // serde_json's map is ordered by key (no `preserve_order`), so
        // equal key sets read in any order are written alike.
        json::value(&mut jwks, v);
    }
    [
        cfg.issuer.clone(),
        set(strs(&cfg.audiences)),
        cfg.audience_claim.clone().unwrap_or_else(|| "aud".into()),
        set(strs(&cfg.algorithms)),
        jwks,
        cfg.remote_jwks.as_ref().map(remote).unwrap_or_default(),
        set(strs(&from)),
        cfg.clock_skew_seconds
            .unwrap_or(DEFAULT_CLOCK_SKEW)
            .to_string(),
        cfg.max_lifetime_seconds
            .unwrap_or(DEFAULT_MAX_LIFETIME)
            .to_string(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Sorted, duplicates dropped (by insertion: these lists are short, and the
/// standard sorts would add kilobytes to the module).
fn sorted(items: Vec<&str>) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::with_capacity(items.len());
    for s in items {
        if let Err(at) = out.binary_search(&s) {
            out.insert(at, s);
        }
    }
    out
}

/// FNV-1a of the canonical settings, each field length-prefixed (so no
/// value can run into the next): the `digest` of audit events.
pub fn digest(cfg: &ProviderConfig) -> u64 {
    let mut text = String::new();
    for v in canonical(cfg) {
        json::u64(&mut text, v.len() as u64);
        text.push(':');
        text.push_str(&v);
    }
    fnv1a64(text.as_bytes())
}

/// The fields whose settings differ, in [`FIELDS`] order.
pub fn differences(a: &ProviderConfig, b: &ProviderConfig) -> Vec<&'static str> {
    let (a, b) = (canonical(a), canonical(b));
    FIELDS
        .iter()
        .zip(a.iter().zip(b.iter()))
        .filter(|(_, (x, y))| x != y)
        .map(|(f, _)| *f)
        .collect()
}

fn remote(r: &RemoteJwksConfig) -> String {
    let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    format!(
        "{}|{}|{}|{}|{}|{}|{}",
        r.uri.as_deref().unwrap_or_default(),
        r.cluster,
        n(r.refresh_seconds),
        n(r.timeout_ms),
        n(r.max_stale_seconds),
        n(r.min_refetch_interval_seconds),
        r.discovery
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn provider(v: Value) -> ProviderConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn equal_settings_written_differently_are_equal() {
        let a = provider(
            json!({"name": "a", "issuer": "https://i", "audiences": ["x", "y"],
            "algorithms": ["RS256", "ES256"], "jwks": {"keys": [{"kty": "RSA", "n": "1", "e": "AQAB"}]}}),
        );
        let b = provider(
            json!({"name": "b", "issuer": "https://i", "audiences": ["y", "x"],
            "algorithms": ["ES256", "RS256"], "jwks": {"keys": [{"e": "AQAB", "n": "1", "kty": "RSA"}]},
            "from": [{"header": {"name": "Authorization", "prefix": "Bearer "}}],
            "clock_skew_seconds": 30, "max_lifetime_seconds": 86400, "forward_token": true}),
        );
        assert_eq!(differences(&a, &b), Vec::<&str>::new());
        assert_eq!(digest(&a), digest(&b));
    }

    #[test]
    fn each_field_counts() {
        let base = json!({"name": "a", "issuer": "https://i", "audiences": ["x"], "algorithms": ["RS256"],
            "jwks": {"keys": []}});
        let edits = [
            ("issuer", json!("https://j")),
            ("audiences", json!(["x", "z"])),
            ("algorithms", json!(["ES256"])),
            ("jwks", json!({"keys": [{}]})),
            ("from", json!([{"query": "t"}])),
            ("clock_skew_seconds", json!(31)),
            ("max_lifetime_seconds", json!(60)),
        ];
        for (field, v) in edits {
            let mut b = base.clone();
            b[field] = v;
            let (a, b) = (provider(base.clone()), provider(b));
            assert_eq!(differences(&a, &b), vec![field]);
            assert_ne!(digest(&a), digest(&b), "{field}");
        }
        let mut r = base.clone();
        r.as_object_mut().unwrap().remove("jwks");
        r["remote_jwks"] = json!({"cluster": "idp", "uri": "https://i/keys"});
        assert_eq!(
            differences(&provider(base), &provider(r)),
            vec!["jwks", "remote_jwks"]
        );
    }
}
