//! The oracle of the `decision` fuzz target: what docs/policy.md ("How a
//! decision is made") says the decision must be, computed from the plugin
//! configuration as JSON and the identity the engine authenticated, without
//! the engine's compiled matchers. Also compiled as a normal test
//! (tests/decision_oracle.rs), so `make test` checks it on fixed inputs.
//!
//! Kept deliberately simple: a linear walk over the rules, pattern strings
//! interpreted here, claims compared without coercion. What it borrows from
//! the crate is only the two request normalizers (`canonical_path_with`,
//! `normalize_host`), which the `path` target fuzzes on their own; it adds
//! its own check that the tricks a path can hide (`//`, dot segments,
//! encoded separators) are always refused.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use oam_authz::parsers::{canonical_path_with, normalize_host, PathOptions};
use serde_json::{json, Map, Value};

/// The request time of every fuzzed decision.
pub const NOW: u64 = 1_800_000_000;

/// Who the engine says the caller is: the peer's SPIFFE ID and the verified
/// token (provider index, claims).
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller<'a> {
    pub peer: Option<&'a str>,
    pub token: Option<(usize, &'a Map<String, Value>)>,
}

/// A decision as reason code and deciding rule (index into `rules`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub code: &'static str,
    pub rule: Option<usize>,
}

fn arr<'v>(v: &'v Value, key: &str) -> Option<&'v Vec<Value>> {
    v.get(key).and_then(Value::as_array)
}

fn strs<'v>(v: &'v Value, key: &str) -> Option<Vec<&'v str>> {
    arr(v, key).map(|a| a.iter().filter_map(Value::as_str).collect())
}

fn text<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `spiffe://<td>/ns/<ns>/sa/<sa>` with the SPIFFE trust-domain and
/// Kubernetes name character sets, else no identity (docs/policy.md "Peer
/// identity": anything else is no identity).
pub fn spiffe_parts(id: &str) -> Option<(&str, &str, &str)> {
    let rest = id.strip_prefix("spiffe://")?;
    let (td, path) = rest.split_once('/')?;
    let path = path.strip_prefix("ns/")?;
    let (ns, sa) = path.split_once("/sa/")?;
    let td_ok = |s: &str| {
        (1..=255).contains(&s.len())
            && s.chars()
                .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_'))
    };
    let name_ok = |s: &str| {
        (1..=253).contains(&s.len())
            && s.chars()
                .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '-'))
    };
    (td_ok(td) && name_ok(ns) && name_ok(sa)).then_some((td, ns, sa))
}

/// The local trust domain and its aliases.
fn local_domains(cfg: &Value) -> Vec<&str> {
    let mut out = vec![text(cfg, "trust_domain")];
    out.extend(strs(cfg, "trust_domain_aliases").unwrap_or_default());
    out
}

/// A principal pattern (docs/policy.md "Principal patterns") against a peer.
pub fn principal_matches(pattern: &str, local: &[&str], peer: (&str, &str, &str)) -> bool {
    let (td, ns, sa) = peer;
    let (domain_ok, selector) = match pattern.strip_prefix("spiffe://") {
        Some(rest) => {
            let (ptd, sel) = rest.split_once('/').unwrap_or((rest, ""));
            let ours = local.contains(&ptd);
            (if ours { local.contains(&td) } else { ptd == td }, sel)
        }
        None => (local.contains(&td), pattern),
    };
    domain_ok
        && match selector.split('/').collect::<Vec<_>>().as_slice() {
            ["*"] => true,
            ["ns", n, "*"] | ["ns", n, "sa", "*"] => *n == ns,
            ["ns", n, "sa", s] => *n == ns && *s == sa,
            _ => false,
        }
}

/// A path pattern (docs/policy.md "Path, host and method patterns") against
/// a canonical path.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if pattern.contains('{') {
        let want: Vec<&str> = pattern.split('/').collect();
        let got: Vec<&str> = path.split('/').collect();
        for (i, w) in want.iter().enumerate() {
            match *w {
                // One or more segments: the rest of the path after this
                // point is not empty.
                "{**}" => return got.get(i).is_some_and(|s| !s.is_empty()),
                "{*}" if got.get(i).is_some_and(|s| !s.is_empty()) => {}
                lit if got.get(i) == Some(&lit) && lit != "{*}" => {}
                _ => return false,
            }
        }
        return got.len() == want.len();
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return path.starts_with(prefix);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return path.ends_with(suffix);
    }
    path == pattern
}

/// A host pattern against a normalized host.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_prefix('*') {
        Some(dot_domain) => host.ends_with(dot_domain) && host.len() > dot_domain.len(),
        None => host == pattern,
    }
}

/// Scalars compared by type and value, never coerced (`"3"` is not `3`);
/// integers exactly, anything else as f64 (so 3 equals 3.0).
fn same_scalar(a: &Value, b: &Value) -> bool {
    fn int(n: &serde_json::Number) -> Option<i128> {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (int(x), int(y)) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::String(_), Value::String(_)) | (Value::Bool(_), Value::Bool(_)) => a == b,
        _ => false,
    }
}

/// One claim condition (docs/policy.md "Claim conditions (JWT)") on a claim set.
pub fn claim_holds(cond: &Value, claims: &Map<String, Value>) -> bool {
    let mut segments = text(cond, "claim").split('.');
    let mut value = segments.next().and_then(|k| claims.get(k));
    for k in segments {
        value = value.and_then(Value::as_object).and_then(|o| o.get(k));
    }
    let Some(value) = value else {
        return false;
    };
    if let Some(want) = cond.get("equals") {
        same_scalar(value, want)
    } else if let Some(list) = arr(cond, "one_of") {
        list.iter().any(|w| same_scalar(value, w))
    } else if let Some(want) = cond.get("contains") {
        value
            .as_array()
            .is_some_and(|a| a.iter().any(|v| same_scalar(v, want)))
    } else if let Some(word) = cond.get("scope_contains").and_then(Value::as_str) {
        value
            .as_str()
            .is_some_and(|s| s.split(' ').any(|w| w == word))
    } else if let Some(p) = cond.get("prefix").and_then(Value::as_str) {
        value.as_str().is_some_and(|s| s.starts_with(p))
    } else {
        false
    }
}

/// Does the caller hold role `role`? Principals (any) and token (all
/// claims) must both hold where both are given.
pub fn holds(cfg: &Value, role: &Value, caller: Caller<'_>) -> bool {
    let local = local_domains(cfg);
    let principals_ok = strs(role, "principals").is_none_or(|pats| {
        caller
            .peer
            .and_then(spiffe_parts)
            .is_some_and(|peer| pats.iter().any(|p| principal_matches(p, &local, peer)))
    });
    let jwt_ok = role.get("jwt").is_none_or(|jwt| {
        let provider = arr(cfg, "providers").and_then(|ps| {
            ps.iter()
                .position(|p| text(p, "name") == text(jwt, "provider"))
        });
        match caller.token {
            Some((p, claims)) if Some(p) == provider => {
                arr(jwt, "claims").is_none_or(|cs| cs.iter().all(|c| claim_holds(c, claims)))
            }
            _ => false,
        }
    });
    principals_ok && jwt_ok
}

fn role_named<'v>(cfg: &'v Value, name: &str) -> Option<&'v Value> {
    arr(cfg, "roles")?.iter().find(|r| text(r, "name") == name)
}

/// Every role the caller holds, as indices into `roles`.
pub fn held_roles(cfg: &Value, caller: Caller<'_>) -> Vec<usize> {
    let roles = arr(cfg, "roles").map(Vec::as_slice).unwrap_or_default();
    (0..roles.len())
        .filter(|i| roles.get(*i).is_some_and(|r| holds(cfg, r, caller)))
        .collect()
}

/// Does the rule cover the operation (each absent list matches anything)?
pub fn covers(rule: &Value, method: &str, host: &str, path: &str) -> bool {
    strs(rule, "methods").is_none_or(|ms| ms.contains(&method))
        && strs(rule, "hosts").is_none_or(|hs| hs.iter().any(|h| host_matches(h, host)))
        && strs(rule, "paths").is_none_or(|ps| ps.iter().any(|p| path_matches(p, path)))
}

fn is_deny(rule: &Value) -> bool {
    text(rule, "effect") == "deny"
}

/// Does the rule apply to the caller: public, a deny rule without roles
/// (everyone), or a held role among its roles.
pub fn applies(cfg: &Value, rule: &Value, caller: Caller<'_>) -> bool {
    if rule.get("public") == Some(&Value::Bool(true)) {
        return true;
    }
    match strs(rule, "roles") {
        None => is_deny(rule),
        Some(names) => names
            .iter()
            .filter_map(|n| role_named(cfg, n))
            .any(|r| holds(cfg, r, caller)),
    }
}

/// Steps 6 to 8 of docs/policy.md "How a decision is made", for a caller
/// already authenticated: deny rules win, then the first allow rule that
/// applies, else deny (token_missing, role_required or no_matching_rule).
pub fn authorize(cfg: &Value, method: &str, host: &str, path: &str, caller: Caller<'_>) -> Verdict {
    let rules = arr(cfg, "rules").map(Vec::as_slice).unwrap_or_default();
    let covering: Vec<(usize, &Value)> = rules
        .iter()
        .enumerate()
        .filter(|(_, r)| covers(r, method, host, path))
        .collect();
    let first =
        |pred: &dyn Fn(&Value) -> bool| covering.iter().find(|(_, r)| pred(r)).map(|(i, _)| *i);
    let verdict = |code, rule| Verdict { code, rule };
    if let Some(i) = first(&|r| is_deny(r) && applies(cfg, r, caller)) {
        return verdict("denied_by_rule", Some(i));
    }
    if let Some(i) = first(&|r| !is_deny(r) && applies(cfg, r, caller)) {
        let public = rules.get(i).and_then(|r| r.get("public")) == Some(&Value::Bool(true));
        return verdict(
            if public {
                "public_rule"
            } else {
                "role_granted"
            },
            Some(i),
        );
    }
    let needs_token = |r: &Value| {
        strs(r, "roles").is_some_and(|names| {
            names
                .iter()
                .filter_map(|n| role_named(cfg, n))
                .any(|role| role.get("jwt").is_some())
        })
    };
    if caller.token.is_none() {
        if let Some(i) = first(&|r| !is_deny(r) && needs_token(r)) {
            return verdict("token_missing", Some(i));
        }
    }
    match first(&|r| !is_deny(r)) {
        Some(i) => verdict("role_required", Some(i)),
        None => verdict("no_matching_rule", None),
    }
}

/// Step 2: the path rules are matched against, or `None` when the request
/// path must be refused as not canonical.
pub fn operation_path<'r>(cfg: &Value, raw: &'r str) -> Option<&'r str> {
    let opts = PathOptions {
        allow_encoded_percent: cfg.get("allow_encoded_percent") == Some(&Value::Bool(true)),
    };
    canonical_path_with(raw, opts).ok()
}

/// Path tricks that must never be matched, whatever the options: empty,
/// `.` and `..` segments, encoded `/`, `\` or `.`, and `\`, `;`, `#`.
pub fn hides_a_trick(raw: &str) -> bool {
    let path = raw.split('?').next().unwrap_or(raw);
    let lower = path.to_ascii_lowercase();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    segments
        .iter()
        .enumerate()
        .any(|(i, s)| *s == "." || *s == ".." || (s.is_empty() && i != last))
        || ["%2f", "%5c", "%2e", "\\", ";", "#"]
            .iter()
            .any(|t| lower.contains(t))
}

/// The normalized host rules are matched against.
pub fn operation_host(raw: &str) -> String {
    normalize_host(raw)
}

/// A compact JWS signed with Ed25519 over the given header and claims (no
/// JWT library: the bytes are exactly these).
pub fn sign(key: &ed25519_compact::SecretKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = key.sign(input.as_bytes(), None);
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

/// The fixed Ed25519 key pairs: `n` 0 and 1 belong to the generated
/// providers, 2 to nobody (forged tokens).
pub fn test_key(n: u8) -> ed25519_compact::KeyPair {
    ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([n.wrapping_add(1); 32]))
}

/// The inline JWKS of key `n`, with kid `k<n>`.
pub fn jwks(n: u8) -> Value {
    let pk = test_key(n).pk;
    json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "use": "sig", "kid": format!("k{n}"),
                     "x": URL_SAFE_NO_PAD.encode(pk.as_ref())}]})
}
