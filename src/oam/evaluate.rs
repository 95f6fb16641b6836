//! Evaluate one request against a compiled component with the engine the
//! filter runs (`engine::authorize`, `Provider::verify`), collecting the
//! trace for `explain` and the outcome for `test`.

use super::compile::{is_component_ref, CompiledComponent};
use super::load::Application;
use crate::config::ProviderConfig;
use crate::decision::{Decision, Identity, Reason, TokenIdentity, TokenLocation};
use crate::engine::{authorize, Operation, Trace};
use crate::pattern::hostname::normalize_host;
use crate::jwt::{parse_jwks, peek_issuer, TokenError, VerifiedToken};
use crate::policy::provider::Provider;
use crate::pattern::path::canonical_path;
use crate::pattern::spiffe::SpiffeId;
use serde_json::{Map, Value};

/// One request as a person describes it.
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// `spiffe://…`, or a component name of the application.
    pub principal: Option<String>,
    /// A compact JWS, verified with the provider's keys.
    pub token: Option<String>,
    /// Claims taken as verified (signature, `aud` and times not checked).
    pub claims: Option<Map<String, Value>>,
    /// Provider for `claims` (or to force one for `token`).
    pub provider: Option<String>,
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    pub now: u64,
    /// A JWK set to verify `token` with when its provider fetches its keys
    /// at run time (`remoteJwks`): offline there are no fetched keys.
    pub jwks: Option<Value>,
}

#[derive(Debug)]
pub struct Outcome {
    pub decision: Decision,
    pub trace: Trace,
    /// What the caller was taken to be, for the explanation.
    pub notes: Vec<String>,
    /// Normalized host used for matching.
    pub host: String,
}

/// Resolve `--principal`: a component name becomes its SPIFFE ID.
pub fn resolve_principal(
    app: &Application,
    trust_domain: &str,
    p: &str,
) -> Result<SpiffeId, String> {
    if is_component_ref(p) {
        let c = app.component(p).ok_or_else(|| {
            format!(
                "principal '{p}' is neither a SPIFFE ID (spiffe://<td>/ns/<ns>/sa/<sa>) nor a component of application '{}'",
                app.name
            )
        })?;
        return SpiffeId::new(trust_domain, &app.namespace, &c.service_account)
            .map_err(|e| format!("principal '{p}': {e}"));
    }
    SpiffeId::parse(p).map_err(|e| format!("principal '{p}': {e}"))
}

fn fail(reason: Reason, peer: Option<SpiffeId>, notes: Vec<String>, host: String) -> Outcome {
    Outcome {
        decision: Decision {
            reason,
            rule: None,
            roles: Vec::new(),
            identity: Identity { peer, token: None },
            token_location: None,
        },
        trace: Trace::default(),
        notes,
        host,
    }
}

pub fn evaluate(
    app: &Application,
    c: &CompiledComponent,
    input: &Input,
) -> Result<Outcome, String> {
    let policy = &c.policy;
    let mut notes = Vec::new();
    let peer = match &input.principal {
        None => {
            notes.push("peer:      none (no mTLS client certificate)".to_string());
            None
        }
        Some(p) => {
            let id = resolve_principal(app, &c.config.trust_domain, p)?;
            if is_component_ref(p) {
                notes.push(format!("peer:      {id} (component {p})"));
            } else {
                notes.push(format!("peer:      {id}"));
            }
            Some(id)
        }
    };
    let host = normalize_host(input.host.as_deref().unwrap_or(&c.component));
    let path = match canonical_path(&input.path) {
        Ok(p) => p,
        Err(e) => {
            notes.push(format!("path:      '{}' is not canonical: {e}", input.path));
            return Ok(fail(Reason::PathNotCanonical(e), peer, notes, host));
        }
    };

    let token = if policy.providers.is_empty() && (input.token.is_some() || input.claims.is_some())
    {
        notes.push(
            "token:     ignored: this component's policy names no JWT provider, so the filter does not read tokens"
                .to_string(),
        );
        None
    } else if let Some(raw) = &input.token {
        let index = match &input.provider {
            Some(name) => Some(provider_index(c, name)?),
            None => match peek_issuer(raw.trim()) {
                Ok(iss) => {
                    let found = policy.providers.iter().position(|p| p.issuer() == iss);
                    if found.is_none() {
                        notes.push(format!(
                            "token:     issuer '{iss}' matches no provider of this component"
                        ));
                        return Ok(fail(
                            Reason::InvalidToken(TokenError::IssuerMismatch { found: iss }),
                            peer,
                            notes,
                            host,
                        ));
                    }
                    found
                }
                Err(e) => {
                    notes.push(format!("token:     refused: {e}"));
                    return Ok(fail(Reason::InvalidToken(e), peer, notes, host));
                }
            },
        };
        let Some((i, p)) = index.and_then(|i| policy.providers.get(i).map(|p| (i, p))) else {
            return Err("internal: provider index out of range".into());
        };
        let offline;
        let (verifier, keys_from) = match (p.remote(), &input.jwks) {
            (None, _) => (p, ""),
            (Some(r), None) => {
                return Err(format!(
                    "provider '{}' fetches its keys at run time ({}); pass --jwks FILE to verify offline",
                    p.name(),
                    r.settings.url()
                ))
            }
            (Some(_), Some(jwks)) => {
                offline = offline_provider(c, p, jwks)?;
                (&offline, " with the keys given by --jwks")
            }
        };
        match verifier.verify(raw.trim(), input.now) {
            Ok(v) => {
                notes.push(format!(
                    "token:     verified by provider '{}'{keys_from} (signature, issuer, audience, lifetime checked at now={})",
                    p.name(),
                    input.now
                ));
                Some(TokenIdentity {
                    provider: i,
                    token: std::sync::Arc::new(v),
                    location: TokenLocation::Header("authorization".into()),
                })
            }
            Err(e) => {
                notes.push(format!(
                    "token:     refused by provider '{}': {e}",
                    p.name()
                ));
                return Ok(fail(Reason::InvalidToken(e), peer, notes, host));
            }
        }
    } else if let Some(claims) = &input.claims {
        let iss = claims.get("iss").and_then(Value::as_str);
        let i = match (&input.provider, iss) {
            (Some(name), _) => provider_index(c, name)?,
            (None, Some(iss)) => policy
                .providers
                .iter()
                .position(|p| p.issuer() == iss)
                .ok_or_else(|| {
                    format!(
                        "claims: 'iss' '{iss}' matches no provider of component '{}' (providers: {}); give the provider by name",
                        c.component,
                        provider_names(c)
                    )
                })?,
            (None, None) => match policy.providers.as_slice() {
                [_] => 0,
                _ => {
                    return Err(format!(
                        "claims: no 'iss' claim and component '{}' has several providers ({}); give the provider by name",
                        c.component,
                        provider_names(c)
                    ))
                }
            },
        };
        let Some(p) = policy.providers.get(i) else {
            return Err("internal: provider index out of range".into());
        };
        notes.push(format!(
            "token:     claims given directly, taken as provider '{}' (signature, audience and lifetime NOT checked)",
            p.name()
        ));
        Some(TokenIdentity {
            provider: i,
            token: std::sync::Arc::new(VerifiedToken {
                issuer: iss.unwrap_or(p.issuer()).to_string(),
                subject: claims
                    .get("sub")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                expires_at: claims.get("exp").and_then(Value::as_u64).unwrap_or(0),
                claims: claims.clone(),
            }),
            location: TokenLocation::Header("authorization".into()),
        })
    } else {
        notes.push("token:     none".to_string());
        None
    };

    let op = Operation {
        method: &input.method,
        host: &host,
        path,
    };
    let mut trace = Trace::default();
    let decision = authorize(policy, Identity { peer, token }, &op, Some(&mut trace));
    Ok(Outcome {
        decision,
        trace,
        notes,
        host,
    })
}

/// The provider `p` (of remote keys) with the inline key set `jwks` instead.
fn offline_provider(c: &CompiledComponent, p: &Provider, jwks: &Value) -> Result<Provider, String> {
    let Some(cfg) = c.config.providers.iter().find(|q| q.name == p.name()) else {
        return Err(format!(
            "internal: no configuration for provider '{}'",
            p.name()
        ));
    };
    // The engine's own parser, so a key set it would refuse is refused here.
    parse_jwks(jwks, p.algorithms(), "--jwks").map_err(|e| e.to_string())?;
    let cfg = ProviderConfig {
        jwks: Some(jwks.clone()),
        remote_jwks: None,
        ..cfg.clone()
    };
    Provider::compile(&cfg, "--jwks").map_err(|e| e.to_string())
}

fn provider_names(c: &CompiledComponent) -> String {
    let names: Vec<&str> = c.policy.providers.iter().map(|p| p.name()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn provider_index(c: &CompiledComponent, name: &str) -> Result<usize, String> {
    c.policy
        .providers
        .iter()
        .position(|p| p.name() == name)
        .ok_or_else(|| {
            format!(
                "provider '{name}' is not used by component '{}' (its providers: {})",
                c.component,
                provider_names(c)
            )
        })
}

/// The `explain` report.
pub fn explain_text(
    c: &CompiledComponent,
    app: &Application,
    input: &Input,
    o: &Outcome,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "component: {} (application {}, namespace {})",
        c.component, app.name, app.namespace
    );
    let _ = writeln!(
        s,
        "policy:    {} (mode {})",
        c.policy.version,
        match c.policy.mode {
            crate::config::Mode::Enforce => "enforce",
            crate::config::Mode::Audit => "audit",
        }
    );
    let _ = writeln!(
        s,
        "request:   {} {} (host {})",
        input.method, input.path, o.host
    );
    for n in &o.notes {
        let _ = writeln!(s, "{n}");
    }
    if !o.trace.roles.is_empty() {
        let _ = writeln!(s, "\nroles:");
        for r in &o.trace.roles {
            let _ = writeln!(
                s,
                "  {} {}",
                if r.held { "HELD    " } else { "not held" },
                r.role
            );
            for line in &r.conditions {
                let _ = writeln!(s, "      {line}");
            }
        }
    }
    if !o.trace.rules.is_empty() {
        let _ = writeln!(s, "\nrules (deny rules first, then the first allow rule):");
        let width = o
            .trace
            .rules
            .iter()
            .map(|r| r.rule.len())
            .max()
            .unwrap_or(0);
        for (i, r) in o.trace.rules.iter().enumerate() {
            let effect = match r.effect {
                crate::config::Effect::Allow => "allow",
                crate::config::Effect::Deny => "deny ",
            };
            let mark = if o.decision.rule.as_deref() == Some(r.rule.as_str()) {
                "  <- decides"
            } else {
                ""
            };
            let line = format!(
                "  [{i}] {effect} {:<width$}  matches request: {:<3}  applies to caller: {:<3}{mark}",
                r.rule,
                if r.covers_operation { "yes" } else { "no" },
                if r.applies_to_caller { "yes" } else { "no" },
            );
            let _ = writeln!(s, "{}", line.trim_end());
        }
    }
    let d = &o.decision;
    let verdict = if d.allowed() { "ALLOW" } else { "DENY" };
    let rule = d
        .rule
        .as_ref()
        .map(|r| format!(", rule '{r}'"))
        .unwrap_or_default();
    let roles = if d.roles.is_empty() {
        "none".to_string()
    } else {
        d.roles.join(", ")
    };
    let _ = writeln!(
        s,
        "\ndecision:  {verdict} {} {}{rule} (roles held: {roles})",
        d.status(),
        d.reason.code()
    );
    if c.policy.mode == crate::config::Mode::Audit && !d.allowed() {
        let _ = writeln!(
            s,
            "           audit mode: the filter lets this request through and logs decision \"audit_deny\""
        );
    }
    s
}
