//! `export-istio`: the nearest native Istio equivalent of a compiled policy,
//! `RequestAuthentication` + `AuthorizationPolicy` (DENY, then ALLOW), with
//! a comment for everything Istio cannot express. It is a migration path in
//! both directions and a differential oracle for the filter.

use super::compile::CompiledComponent;
use super::load::Application;
use super::lower::canonical_json;
use super::lower::Attach;
use super::manifest::{plugin_name, TargetRef, LABEL_APP, LABEL_COMPONENT};
use crate::config::{
    ClaimCondition, Effect, Mode, PluginConfig, ProviderConfig, RemoteJwksConfig, RoleConfig,
    RuleConfig, TokenSource,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// Istio principal (no `spiffe://`, trust domain first) for a pattern.
fn istio_principal(pattern: &str, td: &str) -> String {
    if let Some(rest) = pattern.strip_prefix("spiffe://") {
        return rest.to_string();
    }
    if pattern == "*" {
        return format!("{td}/*");
    }
    format!("{td}/{pattern}")
}

fn claim_key(claim: &str) -> String {
    let mut s = "request.auth.claims".to_string();
    for seg in claim.split('.') {
        s.push('[');
        s.push_str(seg);
        s.push(']');
    }
    s
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn when_clause(c: &ClaimCondition, notes: &mut BTreeSet<String>) -> Value {
    if let Some(prefix) = &c.prefix {
        // Istio's `when` values match a trailing '*' as a prefix.
        if prefix.contains('*') {
            notes.insert(format!(
                "claim '{}' prefix '{prefix}': Istio reads '*' in a value as a wildcard, so the exported prefix match is wider than the filter's",
                c.claim
            ));
        }
        return json!({
            "key": claim_key(&c.claim),
            "values": [format!("{prefix}*")],
        });
    }
    let values: Vec<Value> = match (&c.equals, &c.one_of, &c.contains, &c.scope_contains) {
        (Some(v), _, _, _) | (_, _, Some(v), _) => vec![v.clone()],
        (_, Some(list), _, _) => list.clone(),
        (_, _, _, Some(word)) => {
            notes.insert(format!(
                "claim '{}' scope_contains '{word}': Istio matches a space-delimited string claim only if RequestAuthentication lists it in spaceDelimitedClaims (Istio >= 1.24; 'scope' and 'permission' are split by default)",
                c.claim
            ));
            vec![Value::String(word.clone())]
        }
        _ => Vec::new(),
    };
    if values
        .iter()
        .any(|v| v.as_str().is_some_and(|s| s.contains('*')))
    {
        notes.insert(format!(
            "claim '{}': Istio reads '*' in a value as a wildcard (prefix, suffix or presence match); the filter compares it literally",
            c.claim
        ));
    }
    if values.iter().any(|v| !v.is_string()) {
        notes.insert(format!(
            "claim '{}': Istio compares claims as strings; the number or boolean is written as text and may not match the same way",
            c.claim
        ));
    }
    json!({
        "key": claim_key(&c.claim),
        "values": values.iter().map(|v| Value::String(scalar_text(v))).collect::<Vec<_>>(),
    })
}

fn operation(r: &RuleConfig) -> Value {
    let mut op = Map::new();
    if let Some(h) = &r.hosts {
        op.insert("hosts".into(), json!(h));
    }
    if let Some(m) = &r.methods {
        op.insert("methods".into(), json!(m));
    }
    if let Some(p) = &r.paths {
        op.insert("paths".into(), json!(p));
    }
    if op.is_empty() {
        Value::Null
    } else {
        json!([{ "operation": op }])
    }
}

fn role_rule(
    cfg: &PluginConfig,
    role: &RoleConfig,
    to: &Value,
    notes: &mut BTreeSet<String>,
) -> Value {
    let mut source = Map::new();
    if let Some(ps) = &role.principals {
        let list: Vec<String> = ps
            .iter()
            .map(|p| istio_principal(p, &cfg.trust_domain))
            .collect();
        source.insert("principals".into(), json!(list));
    }
    let mut when = Vec::new();
    if let Some(j) = &role.jwt {
        if let Some(p) = cfg.providers.iter().find(|p| p.name == j.provider) {
            source.insert(
                "requestPrincipals".into(),
                json!([format!("{}/*", p.issuer)]),
            );
        }
        if let Some(p) = cfg.providers.iter().find(|p| p.name == j.provider) {
            // RequestAuthentication checks only `aud`: another audience
            // claim becomes a condition of every rule that needs the token.
            if let Some(claim) = p.audience_claim.as_deref().filter(|c| *c != "aud") {
                when.push(json!({
                    "key": claim_key(claim),
                    "values": p.audiences,
                }));
            }
        }
        when.extend(j.claims.iter().map(|c| when_clause(c, notes)));
    }
    let mut rule = Map::new();
    rule.insert("from".into(), json!([{ "source": source }]));
    if !to.is_null() {
        rule.insert("to".into(), to.clone());
    }
    if !when.is_empty() {
        rule.insert("when".into(), Value::Array(when));
    }
    Value::Object(rule)
}

fn istio_rules(cfg: &PluginConfig, effect: Effect, notes: &mut BTreeSet<String>) -> Vec<Value> {
    let mut out = Vec::new();
    for r in cfg.rules.iter().filter(|r| r.effect == effect) {
        let to = operation(r);
        match &r.roles {
            None => {
                // Public allow, or deny for everyone: only the operation.
                let mut rule = Map::new();
                if !to.is_null() {
                    rule.insert("to".into(), to.clone());
                }
                out.push(Value::Object(rule));
            }
            Some(names) => {
                for n in names {
                    if let Some(role) = cfg.roles.iter().find(|x| &x.name == n) {
                        out.push(role_rule(cfg, role, &to, notes));
                    }
                }
            }
        }
    }
    out
}

/// A provider whose keys the filter fetches: Istio's `jwksUri` (or, with
/// discovery from the issuer, nothing: istiod then discovers it itself).
fn remote_jwks_rule(
    name: &str,
    issuer: &str,
    remote: &RemoteJwksConfig,
    rule: &mut Map<String, Value>,
    notes: &mut BTreeSet<String>,
) {
    let default_discovery = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    match (&remote.uri, remote.discovery) {
        (Some(uri), false) => {
            rule.insert("jwksUri".into(), json!(uri));
        }
        (Some(uri), true) if *uri != default_discovery => {
            notes.insert(format!(
                "provider '{name}': the discovery document {uri} is not the issuer's; Istio only discovers from <issuer>/.well-known/openid-configuration (set jwksUri by hand if that differs)"
            ));
        }
        _ => {}
    }
    if let Some(ms) = remote.timeout_ms {
        let t = if ms % 1000 == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{}.{:03}s", ms / 1000, ms % 1000)
        };
        rule.insert("timeout".into(), json!(t));
    }
    notes.insert(format!(
        "provider '{name}': istiod fetches the JWKS itself and pushes the keys to the sidecars (refreshed every 20 min by default, PILOT_JWT_PUB_KEY_REFRESH_INTERVAL); refreshSeconds, maxStaleSeconds and minRefetchIntervalSeconds have no equivalent. The oam-authz filter instead fetches from each sidecar through the Envoy cluster '{}', which must exist there (istio/rollout/idp-serviceentry.yaml)",
        remote.cluster
    ));
}

fn metadata(app: &Application, name: String, cfg: &PluginConfig) -> Value {
    let mut m = json!({
        "name": name,
        "namespace": app.namespace,
        "labels": { "app.kubernetes.io/managed-by": "oam-authz" },
    });
    if cfg.mode == Mode::Audit {
        if let Some(o) = m.as_object_mut() {
            o.insert("annotations".into(), json!({ "istio.io/dry-run": "true" }));
        }
    }
    m
}

/// One `jwtRules[]` entry of a RequestAuthentication, noting what Istio
/// cannot express.
fn jwt_rule(p: &ProviderConfig, notes: &mut BTreeSet<String>) -> Value {
    let mut r = Map::new();
    r.insert("issuer".into(), json!(p.issuer));
    match p.audience_claim.as_deref().filter(|c| *c != "aud") {
        None => {
            r.insert("audiences".into(), json!(p.audiences));
        }
        Some(claim) => {
            notes.insert(format!(
                "provider '{}': audienceClaim '{claim}' has no RequestAuthentication equivalent (it checks only 'aud'): audiences are left out there and each ALLOW rule needing the token checks request.auth.claims[{claim}] instead; a DENY rule does not",
                p.name
            ));
        }
    }
    if let Some(jwks) = &p.jwks {
        r.insert(
            "jwks".into(),
            json!(serde_json::to_string(&canonical_json(jwks)).unwrap_or_default()),
        );
    }
    if let Some(remote) = &p.remote_jwks {
        remote_jwks_rule(&p.name, &p.issuer, remote, &mut r, notes);
    }
    let (mut headers, mut params, mut cookies) = (Vec::new(), Vec::new(), Vec::new());
    for s in p.from.iter().flatten() {
        match s {
            TokenSource::Header { name, prefix } => {
                let mut h = Map::new();
                h.insert("name".into(), json!(name));
                if let Some(pre) = prefix {
                    h.insert("prefix".into(), json!(pre));
                }
                headers.push(Value::Object(h));
            }
            TokenSource::Query(q) => params.push(json!(q)),
            TokenSource::Cookie(k) => cookies.push(json!(k)),
        }
    }
    if !headers.is_empty() {
        r.insert("fromHeaders".into(), Value::Array(headers));
    }
    if !params.is_empty() {
        r.insert("fromParams".into(), Value::Array(params));
    }
    if !cookies.is_empty() {
        r.insert("fromCookies".into(), Value::Array(cookies));
    }
    r.insert("forwardOriginalToken".into(), json!(p.forward_token));
    if p.max_lifetime_seconds.is_some() || p.clock_skew_seconds.is_some() {
        notes.insert(format!(
            "provider '{}': maxLifetimeSeconds and clockSkewSeconds have no RequestAuthentication equivalent (Istio: no lifetime cap, fixed 60 s skew)",
            p.name
        ));
    }
    notes.insert(format!(
        "provider '{}': the algorithm allow-list {:?} has no equivalent; Istio accepts any algorithm the JWKS keys support",
        p.name, p.algorithms
    ));
    Value::Object(r)
}

fn one(
    app: &Application,
    c: &CompiledComponent,
    docs: &mut Vec<Value>,
    notes: &mut BTreeSet<String>,
) {
    let cfg = &c.config;
    let base = plugin_name(&app.name, &c.component);
    let attach = attachment(app, c, notes);
    let spec = |mut rest: Value| {
        if let (Some(o), (key, v)) = (rest.as_object_mut(), &attach) {
            o.insert((*key).to_string(), v.clone());
        }
        rest
    };
    if !cfg.providers.is_empty() {
        let rules: Vec<Value> = cfg.providers.iter().map(|p| jwt_rule(p, notes)).collect();
        if let Some(f) = &cfg.forward {
            if !f.claim_headers.is_empty() {
                notes.insert("forward.claim_headers: use jwtRules[].outputClaimToHeaders (top-level claims only); not generated".into());
            }
        }
        docs.push(json!({
            "apiVersion": "security.istio.io/v1",
            "kind": "RequestAuthentication",
            "metadata": metadata(app, base.clone(), cfg),
            "spec": spec(json!({ "jwtRules": rules })),
        }));
    }
    let deny = istio_rules(cfg, Effect::Deny, notes);
    if !deny.is_empty() {
        docs.push(json!({
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": metadata(app, format!("{base}-deny"), cfg),
            "spec": spec(json!({ "action": "DENY", "rules": deny })),
        }));
    }
    // An ALLOW policy with no rules denies everything, which is also what the
    // filter does when no allow rule exists.
    let allow = istio_rules(cfg, Effect::Allow, notes);
    docs.push(json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": metadata(app, format!("{base}-allow"), cfg),
        "spec": spec(json!({ "action": "ALLOW", "rules": allow })),
    }));
    if cfg.mode == Mode::Audit {
        notes.insert("audit mode is exported as the istio.io/dry-run annotation (AuthorizationPolicy only: a dry-run RequestAuthentication does not exist, so an invalid token is still refused)".into());
    }
    if cfg.shadow.is_some() {
        notes.insert("the shadow policy is not exported: only the enforced policy is (export the shadow's own revision to compare it)".into());
    }
    if let Some(f) = &cfg.forward {
        if f.principal_header.is_some()
            || f.subject_header.is_some()
            || f.issuer_header.is_some()
            || f.roles_header.is_some()
            || !f.strip_headers.is_empty()
        {
            notes.insert("forward headers (principal, subject, issuer, roles) and strip_headers have no AuthorizationPolicy equivalent".into());
        }
    }
}

/// `selector` for sidecars; on ambient, the WasmPlugin's `targetRefs`, and
/// what differs there.
fn attachment(
    app: &Application,
    c: &CompiledComponent,
    notes: &mut BTreeSet<String>,
) -> (&'static str, Value) {
    let Some(target) = TargetRef::of(&c.attach, &c.component) else {
        let labels = json!({ LABEL_APP: app.name, LABEL_COMPONENT: c.component });
        return ("selector", json!({ "matchLabels": labels }));
    };
    notes.insert("ambient: the policies attach to the waypoint with targetRefs, as the WasmPlugins do; a selector-based AuthorizationPolicy would be enforced by ztunnel, which sees no HTTP (no methods, paths, hosts or request principals)".into());
    notes.insert("ambient: on a waypoint, AuthorizationPolicy principals match the HBONE tunnel's identity (filter state io.istio.peer_principal), as the filter's peerIdentity auto does; RequestAuthentication is enforced there too".into());
    if let Attach::Waypoint(w) = &c.attach {
        notes.insert(format!(
            "ambient: the policies of component '{}' attach to waypoint '{w}' and so judge every request it carries, for every Service it serves",
            c.component
        ));
    }
    (
        "targetRefs",
        json!([{ "group": target.group, "kind": target.kind, "name": target.name }]),
    )
}

/// The Istio resources for every compiled component, as YAML documents.
pub fn export(app: &Application, compiled: &[CompiledComponent]) -> Result<String, String> {
    let mut docs = Vec::new();
    let mut notes = BTreeSet::new();
    for c in compiled {
        one(app, c, &mut docs, &mut notes);
    }
    let mut out = format!(
        "# Nearest native Istio equivalent of the oam-authz policy of application {} (oam-authz export-istio).\n",
        app.name
    );
    out.push_str("# Differences that always apply:\n");
    for n in [
        "a missing token is answered 403 (RBAC: access denied), not 401 token_missing; there are no reason codes or audit events",
        "path templates {*} and {**} need Istio >= 1.20; set meshConfig.pathNormalization so paths are canonical before matching",
        "hosts are compared with the port unless you also list 'host:*'",
        "several tokens in one request are not refused with 400 multiple_tokens",
    ] {
        out.push_str(&format!("#  - {n}\n"));
    }
    if !notes.is_empty() {
        out.push_str("# Not expressible for this application:\n");
        for n in &notes {
            out.push_str(&format!("#  - {n}\n"));
        }
    }
    let mut texts = Vec::new();
    for d in docs {
        texts.push(
            serde_norway::to_string(&canonical_json(&d))
                .map_err(|e| format!("cannot render YAML: {e}"))?,
        );
    }
    out.push_str(&texts.join("---\n"));
    Ok(out)
}
