//! `export-envoy`: the native Envoy equivalent of a policy, the HTTP filters
//! istiod would generate for it (`jwt_authn`, then `rbac` DENY, then `rbac`
//! ALLOW, pilot/pkg/security/authn and authz/builder), with a note for
//! everything they cannot express. Where Istio's matchers are looser than
//! ours (a principal prefix that also takes `/ns/a/sa/b/extra`, an exact host
//! that misses `host:port`), the export uses a regex that matches exactly
//! what the filter matches, so the two agree wherever both can decide.

use crate::config::{
    ClaimCondition, Effect, Mode, PluginConfig, ProviderConfig, RoleConfig, RuleConfig, TokenSource,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

const JWT_FILTER: &str = "envoy.filters.http.jwt_authn";
/// The dynamic-metadata key of the verified payload (Istio's `payload`).
const PAYLOAD: &str = "payload";
/// Kubernetes names as the filter accepts them in a SPIFFE ID (the filter
/// also caps them at 253 bytes; a bounded repeat would exceed Envoy's
/// default RE2 program size).
const K8S_NAME: &str = "[a-z0-9.-]+";
/// Default clock skew of a provider (docs/policy.md "Policy format").
const DEFAULT_SKEW: u64 = 30;
const DEFAULT_LIFETIME: u64 = 86_400;

/// The filters of one policy and what they cannot express.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvoyFilters {
    /// HTTP filters for an HTTP connection manager, before the router.
    pub filters: Vec<Value>,
    /// Differences specific to this policy.
    pub notes: BTreeSet<String>,
}

/// Differences that hold for every policy (the header of the output; each
/// is in docs/differences.md "Differences the test tolerates").
pub const ALWAYS: [&str; 9] = [
    "a request that needs a token and has none is answered 403 (RBAC: access denied), not 401 token_missing; there are no reason codes, audit events or oam_authz metrics",
    "a path that is not canonical is refused with 400 path_not_canonical by the filter; natively set the HTTP connection manager's normalize_path, merge_slashes and path_with_escaped_slashes_action (the --bootstrap output does) and what survives them (';', '\\', a bare '//') is matched as it is",
    "several tokens in one request are not refused with 400 multiple_tokens: jwt_authn verifies the first it finds",
    "'Authorization: Bearer ' with no token is a 401 for the filter, a missing token for jwt_authn; the filter also takes 'bearer' in any case, jwt_authn's value_prefix only as written",
    "a token with 'crit' in its header is refused by the filter, accepted by jwt_authn",
    "without 'iat', the filter bounds a token's lifetime by exp - nbf (or exp - now); jwt_authn's max_lifetime only by exp - iat",
    "a peer certificate with several URI SANs: rbac matches any of them, the filter only the first",
    "the filter's algorithm allow-lists have no equivalent: jwt_authn accepts any algorithm the JWKS keys support",
    "principal patterns are exported as regexes with the filter's SPIFFE grammar (lowercase DNS-style namespace and service account), so IDs the filter refuses match no native principal either",
];

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn string_regex(re: String) -> Value {
    json!({ "safe_regex": { "regex": re } })
}

/// One principal pattern as the URI SANs it matches (docs/policy.md
/// "Principal patterns"): local patterns in the trust domain and every
/// alias, one matcher per domain (an alternation would soon exceed Envoy's
/// RE2 program size limit).
fn principal(pattern: &str, cfg: &PluginConfig) -> Value {
    let mut local = vec![cfg.trust_domain.clone()];
    local.extend(cfg.trust_domain_aliases.iter().cloned());
    let (domains, path) = match pattern.strip_prefix("spiffe://") {
        Some(rest) => {
            let (td, path) = rest.split_once('/').unwrap_or((rest, ""));
            if local.iter().any(|l| l == td) {
                (local, path)
            } else {
                (vec![td.to_string()], path)
            }
        }
        None => (local, pattern),
    };
    let segs: Vec<&str> = path.split('/').collect();
    let one = |td: &str| {
        let matcher = match segs.as_slice() {
            ["ns", ns, "sa", sa] if *sa != "*" => {
                json!({ "exact": format!("spiffe://{td}/ns/{ns}/sa/{sa}") })
            }
            ["ns", ns, ..] => string_regex(format!(
                "spiffe://{}/ns/{}/sa/{K8S_NAME}",
                regex_escape(td),
                regex_escape(ns)
            )),
            _ => string_regex(format!(
                "spiffe://{}/ns/{K8S_NAME}/sa/{K8S_NAME}",
                regex_escape(td)
            )),
        };
        json!({ "authenticated": { "principal_name": matcher } })
    };
    or_ids(domains.iter().map(|d| one(d)).collect())
}

fn or_ids(ids: Vec<Value>) -> Value {
    match <[Value; 1]>::try_from(ids) {
        Ok([one]) => one,
        Err(many) => json!({ "or_ids": { "ids": many } }),
    }
}

fn metadata(path: &[&str], value: Value) -> Value {
    let mut segs = vec![json!({ "key": PAYLOAD })];
    segs.extend(path.iter().map(|k| json!({ "key": k })));
    // `sourced_metadata` (dynamic metadata by default): Envoy 1.40 deprecates
    // the principal's plain `metadata`, which Istio still generates.
    json!({ "sourced_metadata": { "metadata_matcher": {
        "filter": JWT_FILTER, "path": segs, "value": value } } })
}

/// A JSON scalar as a metadata value matcher (claims arrive as protobuf
/// Struct values: numbers as doubles).
fn scalar(v: &Value) -> Value {
    match v {
        Value::Bool(b) => json!({ "bool_match": b }),
        Value::Number(n) => json!({ "double_match": { "exact": n.as_f64().unwrap_or(0.0) } }),
        Value::String(s) => json!({ "string_match": { "exact": s } }),
        other => json!({ "string_match": { "exact": other.to_string() } }),
    }
}

fn or_values(values: Vec<Value>) -> Value {
    match <[Value; 1]>::try_from(values) {
        Ok([one]) => one,
        Err(many) => json!({ "or_match": { "value_matchers": many } }),
    }
}

fn claim(c: &ClaimCondition, notes: &mut BTreeSet<String>) -> Value {
    let path: Vec<&str> = c.claim.split('.').collect();
    let list = |v: Value| json!({ "list_match": { "one_of": v } });
    if let Some(pre) = &c.prefix {
        return metadata(&path, json!({ "string_match": { "prefix": pre } }));
    }
    let value = match (&c.equals, &c.one_of, &c.contains, &c.scope_contains) {
        (Some(v), ..) => scalar(v),
        (_, Some(vs), ..) => or_values(vs.iter().map(scalar).collect()),
        (_, _, Some(v), _) => list(scalar(v)),
        (_, _, _, Some(word)) => {
            if path.len() > 1 {
                notes.insert(format!(
                    "claim '{}' scope_contains: jwt_authn splits space-delimited claims at the top level only; the nested claim never matches",
                    c.claim
                ));
            }
            list(scalar(&Value::String(word.clone())))
        }
        _ => json!({ "present_match": true }),
    };
    metadata(&path, value)
}

fn and_ids(mut ids: Vec<Value>) -> Value {
    match ids.len() {
        0 => json!({ "any": true }),
        1 => ids.remove(0),
        _ => json!({ "and_ids": { "ids": ids } }),
    }
}

fn role_principal(cfg: &PluginConfig, role: &RoleConfig, notes: &mut BTreeSet<String>) -> Value {
    let mut ids = Vec::new();
    if let Some(ps) = &role.principals {
        ids.push(or_ids(ps.iter().map(|p| principal(p, cfg)).collect()));
    }
    if let Some(j) = &role.jwt {
        if let Some(p) = cfg.providers.iter().find(|p| p.name == j.provider) {
            ids.push(metadata(&["iss"], scalar(&Value::String(p.issuer.clone()))));
            if let Some(claim) = p.audience_claim.as_deref().filter(|c| *c != "aud") {
                let auds = p
                    .audiences
                    .iter()
                    .map(|a| scalar(&Value::String(a.clone())));
                ids.push(metadata(&[claim], or_values(auds.collect())));
            }
        }
        ids.extend(j.claims.iter().map(|c| claim(c, notes)));
    }
    and_ids(ids)
}

/// A host pattern as the `:authority` values it matches: case-insensitive,
/// with or without a port and a trailing dot (docs/policy.md "Path, host and
/// method patterns").
fn host(h: &str) -> Value {
    let name = match h.strip_prefix("*.") {
        Some(rest) => format!(".+\\.{}", regex_escape(rest)),
        None => regex_escape(h),
    };
    json!({ "header": { "name": ":authority", "string_match": {
        "safe_regex": { "regex": format!("(?i){name}\\.?(:[0-9]*)?") } } } })
}

/// Has `{*}` or `{**}` segments.
fn is_template(p: &str) -> bool {
    p.contains(['{', '}'])
}

fn path(p: &str) -> Option<Value> {
    let url = |m: Value| Some(json!({ "url_path": { "path": m } }));
    if p == "*" {
        None
    } else if is_template(p) {
        let template = p.replace("{**}", "**").replace("{*}", "*");
        let matcher = json!({ "uri_template": {
            "name": "uri-template",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
                "path_template": template,
            }
        } });
        // Envoy's `**` also matches zero segments (`/r/**` takes `/r/`);
        // our `{**}` needs at least one.
        let Some(base) = p.strip_suffix("/{**}") else {
            return Some(matcher);
        };
        let not_exact =
            |e: String| json!({ "not_rule": { "url_path": { "path": { "exact": e } } } });
        if is_template(base) {
            // `/a/{*}/{**}`: the zero-segment form is `/a/<one>/`.
            let bare = base.replace("{*}", "*");
            let empty = json!({ "not_rule": { "uri_template": {
                "name": "uri-template",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig",
                    "path_template": bare,
                } } } });
            return Some(json!({ "and_rules": { "rules": [matcher, empty] } }));
        }
        Some(
            json!({ "and_rules": { "rules": [matcher, not_exact(format!("{base}/")), not_exact(base.to_string())] } }),
        )
    } else if let Some(pre) = p.strip_suffix('*') {
        url(json!({ "prefix": pre }))
    } else if let Some(suf) = p.strip_prefix('*') {
        url(json!({ "suffix": suf }))
    } else {
        url(json!({ "exact": p }))
    }
}

fn or_rules(rules: Vec<Value>) -> Value {
    match <[Value; 1]>::try_from(rules) {
        Ok([one]) => one,
        Err(many) => json!({ "or_rules": { "rules": many } }),
    }
}

fn permission(r: &RuleConfig) -> Value {
    let mut and = Vec::new();
    if let Some(hs) = &r.hosts {
        and.push(or_rules(hs.iter().map(|h| host(h)).collect()));
    }
    if let Some(ms) = &r.methods {
        and.push(or_rules(
            ms.iter()
                .map(|m| json!({ "header": { "name": ":method", "string_match": { "exact": m } } }))
                .collect(),
        ));
    }
    if let Some(ps) = &r.paths {
        let matchers: Vec<Value> = ps.iter().filter_map(|p| path(p)).collect();
        if matchers.len() == ps.len() {
            and.push(or_rules(matchers));
        }
    }
    match and.len() {
        0 => json!({ "any": true }),
        1 => and.remove(0),
        _ => json!({ "and_rules": { "rules": and } }),
    }
}

/// The RBAC policies for rules of one effect: one per (rule, role), as
/// istiod makes one per AuthorizationPolicy rule and source.
fn policies(
    cfg: &PluginConfig,
    effect: Effect,
    notes: &mut BTreeSet<String>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for r in cfg.rules.iter().filter(|r| r.effect == effect) {
        let perm = permission(r);
        match &r.roles {
            Some(names) if !r.public => {
                for n in names {
                    if let Some(role) = cfg.roles.iter().find(|x| &x.name == n) {
                        out.insert(
                            format!("{}/{}", r.name, n),
                            json!({ "permissions": [perm], "principals": [role_principal(cfg, role, notes)] }),
                        );
                    }
                }
            }
            _ => {
                out.insert(
                    r.name.clone(),
                    json!({ "permissions": [perm], "principals": [{ "any": true }] }),
                );
            }
        }
    }
    out
}

fn rbac_filter(action: &str, policies: Map<String, Value>, mode: Mode) -> Value {
    let rules = json!({ "action": action, "policies": policies });
    let mut cfg = Map::new();
    cfg.insert(
        "@type".into(),
        json!("type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"),
    );
    match mode {
        Mode::Enforce => cfg.insert("rules".into(), rules),
        // Istio's dry-run: evaluated and counted, never enforced.
        Mode::Audit => {
            cfg.insert(
                "shadow_rules_stat_prefix".into(),
                json!(format!("oam_authz_dry_run_{}_", action.to_lowercase())),
            );
            cfg.insert("shadow_rules".into(), rules)
        }
    };
    json!({ "name": "envoy.filters.http.rbac", "typed_config": Value::Object(cfg) })
}

fn sources(p: &ProviderConfig, out: &mut Map<String, Value>) {
    let (mut headers, mut params, mut cookies) = (Vec::new(), Vec::new(), Vec::new());
    let default = [TokenSource::Header {
        name: "authorization".into(),
        prefix: Some("Bearer ".into()),
    }];
    // Envoy's own default also reads `?access_token=`; the filter's does not.
    for s in p.from.as_deref().unwrap_or(&default) {
        match s {
            TokenSource::Header { name, prefix } => {
                let mut h = Map::new();
                h.insert("name".into(), json!(name));
                if let Some(pre) = prefix {
                    h.insert("value_prefix".into(), json!(pre));
                }
                headers.push(Value::Object(h));
            }
            TokenSource::Query(q) => params.push(json!(q)),
            TokenSource::Cookie(c) => cookies.push(json!(c)),
        }
    }
    for (key, list) in [
        ("from_headers", headers),
        ("from_params", params),
        ("from_cookies", cookies),
    ] {
        if !list.is_empty() {
            out.insert(key.into(), Value::Array(list));
        }
    }
}

fn jwks_source(p: &ProviderConfig, out: &mut Map<String, Value>, notes: &mut BTreeSet<String>) {
    if let Some(jwks) = &p.jwks {
        let text = serde_json::to_string(&super::lower::canonical_json(jwks)).unwrap_or_default();
        out.insert("local_jwks".into(), json!({ "inline_string": text }));
    }
    let Some(remote) = &p.remote_jwks else { return };
    let uri = match (&remote.uri, remote.discovery) {
        (Some(u), false) => u.clone(),
        _ => {
            notes.insert(format!(
                "provider '{}': jwt_authn has no OpenID discovery; set remote_jwks.http_uri.uri to the IdP's jwks_uri by hand",
                p.name
            ));
            String::new()
        }
    };
    let ms = remote.timeout_ms.unwrap_or(5_000);
    out.insert("remote_jwks".into(), json!({
        "http_uri": { "uri": uri, "cluster": remote.cluster, "timeout": format!("{}.{:03}s", ms / 1000, ms % 1000) },
        "cache_duration": format!("{}s", remote.refresh_seconds.unwrap_or(300)),
        "async_fetch": {},
    }));
    notes.insert(format!(
        "provider '{}': remote JWKS: jwt_authn refetches every cache_duration and on nothing else; max_stale_seconds and min_refetch_interval_seconds (the unknown-kid refetch) have no equivalent",
        p.name
    ));
}

fn provider(p: &ProviderConfig, scope_claims: &[String], notes: &mut BTreeSet<String>) -> Value {
    let mut out = Map::new();
    out.insert("issuer".into(), json!(p.issuer));
    match p.audience_claim.as_deref().filter(|c| *c != "aud") {
        None => {
            out.insert("audiences".into(), json!(p.audiences));
        }
        Some(claim) => {
            notes.insert(format!(
                "provider '{}': jwt_authn checks audiences in 'aud' only; the audience in '{claim}' is checked by each role's rbac principal instead, so a token for another audience is not refused where no role needs it (a public rule)",
                p.name
            ));
        }
    }
    jwks_source(p, &mut out, notes);
    sources(p, &mut out);
    out.insert("forward".into(), json!(p.forward_token));
    out.insert("payload_in_metadata".into(), json!(PAYLOAD));
    out.insert(
        "clock_skew_seconds".into(),
        json!(p.clock_skew_seconds.unwrap_or(DEFAULT_SKEW)),
    );
    out.insert("require_expiration".into(), json!(true));
    out.insert(
        "max_lifetime".into(),
        json!(format!(
            "{}s",
            p.max_lifetime_seconds.unwrap_or(DEFAULT_LIFETIME)
        )),
    );
    if !scope_claims.is_empty() {
        out.insert(
            "normalize_payload_in_metadata".into(),
            json!({ "space_delimited_claims": scope_claims }),
        );
    }
    Value::Object(out)
}

/// Istio's requirement: a token, if present, must verify with some
/// provider; a missing one passes (the RBAC rules decide).
fn requirement(names: &[&str]) -> Value {
    let any_or_missing = |n: &str| json!({ "requires_any": { "requirements": [{ "provider_name": n }, { "allow_missing": {} }] } });
    if let [one] = names {
        return any_or_missing(one);
    }
    let mut or: Vec<Value> = names
        .iter()
        .map(|n| json!({ "provider_name": n }))
        .collect();
    or.push(json!({ "requires_all": { "requirements": names.iter().map(|n| any_or_missing(n)).collect::<Vec<_>>() } }));
    json!({ "requires_any": { "requirements": or } })
}

fn jwt_filter(cfg: &PluginConfig, notes: &mut BTreeSet<String>) -> Value {
    let scope_claims: Vec<String> = cfg
        .roles
        .iter()
        .filter_map(|r| r.jwt.as_ref())
        .flat_map(|j| j.claims.iter())
        .filter(|c| c.scope_contains.is_some() && !c.claim.contains('.'))
        .map(|c| c.claim.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut providers = Map::new();
    for p in &cfg.providers {
        providers.insert(p.name.clone(), provider(p, &scope_claims, notes));
    }
    let names: Vec<&str> = cfg.providers.iter().map(|p| p.name.as_str()).collect();
    json!({ "name": JWT_FILTER, "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": providers,
        "rules": [{ "match": { "prefix": "/" }, "requires": requirement(&names) }],
    } })
}

fn general_notes(cfg: &PluginConfig, notes: &mut BTreeSet<String>) {
    if !cfg.allow_encoded_percent {
        notes.insert("a path with %25 and two hex digits (double encoding) is refused by the filter (400 path_not_canonical); Envoy's normalization leaves it, and rbac matches it as it is".into());
    }
    if cfg.mode == Mode::Audit {
        notes.insert("audit mode is exported as RBAC shadow_rules (Istio's dry-run): decisions are counted, not enforced; jwt_authn still refuses an invalid token".into());
    }
    if cfg.shadow.is_some() {
        notes.insert("the shadow policy is not exported: only the enforced policy is (export the shadow's own revision to compare it)".into());
    }
    if let Some(f) = &cfg.forward {
        if f.principal_header.is_some()
            || f.roles_header.is_some()
            || f.subject_header.is_some()
            || f.issuer_header.is_some()
            || !f.claim_headers.is_empty()
        {
            notes.insert("forward headers (principal, roles, subject, issuer, claims) are not generated: jwt_authn's claim_to_headers can set top-level claims, nothing sets the principal or the roles".into());
        }
        if !f.strip_headers.is_empty() {
            notes.insert("forward.strip_headers: remove them with the route's request_headers_to_remove; not generated".into());
        }
    }
    let scoped: BTreeSet<&str> = cfg
        .roles
        .iter()
        .filter_map(|r| r.jwt.as_ref())
        .flat_map(|j| j.claims.iter())
        .filter(|c| c.scope_contains.is_some())
        .map(|c| c.claim.as_str())
        .collect();
    for c in cfg
        .roles
        .iter()
        .filter_map(|r| r.jwt.as_ref())
        .flat_map(|j| j.claims.iter())
    {
        if c.scope_contains.is_none() && scoped.contains(c.claim.as_str()) {
            notes.insert(format!("claim '{}' is split into words for scope_contains, so its other conditions see a list, not the string", c.claim));
        }
    }
}

/// The native filters for one plugin configuration.
pub fn filters(cfg: &PluginConfig) -> EnvoyFilters {
    let mut notes = BTreeSet::new();
    let mut out = Vec::new();
    if !cfg.providers.is_empty() {
        out.push(jwt_filter(cfg, &mut notes));
    }
    let deny = policies(cfg, Effect::Deny, &mut notes);
    if !deny.is_empty() {
        out.push(rbac_filter("DENY", deny, cfg.mode));
    }
    // An ALLOW filter with no policy denies everything, as the filter does
    // when no allow rule exists.
    out.push(rbac_filter(
        "ALLOW",
        policies(cfg, Effect::Allow, &mut notes),
        cfg.mode,
    ));
    general_notes(cfg, &mut notes);
    EnvoyFilters {
        filters: out,
        notes,
    }
}

/// A bootstrap to try the filters: plain HTTP on 127.0.0.1:10000 to an app
/// on 127.0.0.1:8080, with the path normalization the filter expects, and a
/// TLS cluster for each remote JWKS. Plaintext has no peer certificate:
/// for `principals`, add a DownstreamTlsContext that requires one.
fn bootstrap(filters: &[Value], cfg: &PluginConfig) -> Value {
    let mut http_filters = filters.to_vec();
    http_filters.push(
        json!({ "name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } }),
    );
    let hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "oam_authz_native",
        "normalize_path": true,
        "merge_slashes": true,
        "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
        "forward_client_cert_details": "SANITIZE",
        "route_config": { "virtual_hosts": [{ "name": "app", "domains": ["*"],
            "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": "app" } }] }] },
        "http_filters": http_filters,
    });
    let endpoint = |name: &str, host: &str, port: u16| {
        json!({ "cluster_name": name, "endpoints": [{ "lb_endpoints": [{ "endpoint": {
            "address": { "socket_address": { "address": host, "port_value": port } } } }] }] })
    };
    let mut clusters = vec![
        json!({ "name": "app", "type": "STATIC", "connect_timeout": "2s",
        "load_assignment": endpoint("app", "127.0.0.1", 8080) }),
    ];
    for p in &cfg.providers {
        let Some(r) = &p.remote_jwks else { continue };
        let uri = r.uri.clone().unwrap_or_else(|| p.issuer.clone());
        let host = uri
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', ':']).next())
            .unwrap_or("")
            .to_string();
        clusters.push(json!({ "name": r.cluster, "type": "STRICT_DNS", "connect_timeout": "2s",
            "load_assignment": endpoint(&r.cluster, &host, 443),
            "transport_socket": { "name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                "sni": host,
                "common_tls_context": { "validation_context": { "trusted_ca": {
                    "filename": "/etc/ssl/certs/ca-certificates.crt" } } } } } }));
    }
    json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 9901 } } },
        "static_resources": {
            "listeners": [{ "name": "inbound",
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": 10000 } },
                "filter_chains": [{ "filters": [{ "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": hcm }] }] }],
            "clusters": clusters,
        },
    })
}

/// One policy as commented YAML: `http_filters:` (or a whole bootstrap).
pub fn render(cfg: &PluginConfig, label: &str, with_bootstrap: bool) -> Result<String, String> {
    let f = filters(cfg);
    let doc = if with_bootstrap {
        bootstrap(&f.filters, cfg)
    } else {
        json!({ "http_filters": f.filters })
    };
    let mut out = format!(
        "# Native Envoy equivalent of the oam-authz policy of {label} (oam-authz export-envoy).\n"
    );
    out.push_str("# Differences that always apply:\n");
    for n in ALWAYS {
        out.push_str(&format!("#  - {n}\n"));
    }
    if !f.notes.is_empty() {
        out.push_str("# Not expressible for this policy:\n");
        for n in &f.notes {
            out.push_str(&format!("#  - {n}\n"));
        }
    }
    out.push_str(
        &serde_norway::to_string(&super::lower::canonical_json(&doc))
            .map_err(|e| format!("cannot render YAML: {e}"))?,
    );
    Ok(out)
}

/// Every compiled component of an application, one YAML document each.
pub fn export(
    app: &super::load::Application,
    compiled: &[super::compile::CompiledComponent],
    with_bootstrap: bool,
) -> Result<String, String> {
    let docs: Result<Vec<String>, String> = compiled
        .iter()
        .map(|c| {
            render(
                &c.config,
                &format!("component {} of application {}", c.component, app.name),
                with_bootstrap,
            )
        })
        .collect();
    Ok(docs?.join("---\n"))
}
