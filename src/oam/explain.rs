//! The `explain` report: the evaluation's outcome and the engine's trace,
//! formatted for people. Nothing here decides; it only reads.

use super::compile::CompiledComponent;
use super::evaluate::{Input, Outcome, Peer, TokenOutcome};
use super::load::Application;
use crate::config::{Effect, Mode};
use crate::decision::{Decision, Reason};
use crate::engine::trace::{Condition, RoleTrace, TokenCheck};
use crate::policy::Policy;
use std::fmt::Write as _;

fn peer_line(o: &Outcome) -> String {
    match &o.peer {
        Peer::None => "peer:      none (no mTLS client certificate)".to_string(),
        Peer::Spiffe(id) => format!("peer:      {id}"),
        Peer::Component { name, id } => format!("peer:      {id} (component {name})"),
    }
}

fn token_line(policy: &Policy, input: &Input, o: &Outcome) -> String {
    format!("token:     {}", token_text(policy, input, o))
}

/// What became of the token, in words.
fn token_text(policy: &Policy, input: &Input, o: &Outcome) -> String {
    let name = |i: usize| policy.providers.get(i).map_or("?", |p| p.name());
    match &o.token {
        TokenOutcome::None => "none".to_string(),
        TokenOutcome::Ignored => "ignored: this component's policy names no JWT provider, so the filter does not read tokens".to_string(),
        TokenOutcome::Verified { provider, offline } => format!(
            "verified by provider '{}'{} (signature, issuer, audience, lifetime checked at now={})",
            name(*provider),
            if *offline { " with the keys given by --jwks" } else { "" },
            input.now
        ),
        TokenOutcome::Refused(r) => match (r.provider, &r.error) {
            (None, crate::jwt::TokenError::IssuerMismatch { found }) => {
                format!("issuer '{found}' matches no provider of this component")
            }
            (None, e) => format!("refused: {e}"),
            (Some(i), e) => format!("refused by provider '{}': {e}", name(i)),
        },
        TokenOutcome::Assumed { provider } => format!(
            "claims given directly, taken as provider '{}' (signature, audience and lifetime NOT checked)",
            name(*provider)
        ),
    }
}

/// Each condition of a role: whether it holds, and what it is.
pub fn conditions(policy: &Policy, d: &Decision, r: &RoleTrace) -> Vec<(bool, String)> {
    let Some(role) = policy.roles.get(r.role) else {
        return Vec::new();
    };
    let provider = role
        .jwt
        .as_ref()
        .and_then(|j| policy.providers.get(j.provider))
        .map_or("?", |p| p.name());
    r.conditions
        .iter()
        .map(|c| match c {
            Condition::Principal { matched } => {
                let patterns = role.principals.as_deref().unwrap_or_default();
                match (&d.identity.peer, matched.and_then(|j| patterns.get(j))) {
                    (None, _) => (
                        false,
                        "mTLS principal: no verified SPIFFE peer certificate".into(),
                    ),
                    (Some(p), Some(pat)) => (true, format!("mTLS principal {p} matches {pat}")),
                    (Some(p), None) => (
                        false,
                        format!(
                            "mTLS principal {p} matches none of [{}]",
                            patterns
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ),
                }
            }
            Condition::Token(TokenCheck::Present) => {
                (true, format!("token from provider '{provider}'"))
            }
            Condition::Token(TokenCheck::Missing) => {
                (false, format!("no token (needs provider '{provider}')"))
            }
            Condition::Token(TokenCheck::OtherProvider) => (
                false,
                format!("token is from another provider (needs '{provider}')"),
            ),
            Condition::Claim { index, held } => {
                let claim = role
                    .jwt
                    .as_ref()
                    .and_then(|j| j.claims.get(*index))
                    .map(|c| c.describe())
                    .unwrap_or_default();
                (*held, format!("claim {claim}"))
            }
        })
        .collect()
}

/// One line per condition of a role, prefixed "ok" or "FAIL".
pub fn condition_lines(policy: &Policy, d: &Decision, r: &RoleTrace) -> Vec<String> {
    conditions(policy, d, r)
        .into_iter()
        .map(|(ok, text)| format!("{} {text}", if ok { "ok  " } else { "FAIL" }))
        .collect()
}

fn rule_lines(s: &mut String, policy: &Policy, o: &Outcome) {
    if o.trace.rules.is_empty() {
        return;
    }
    let _ = writeln!(s, "\nrules (deny rules first, then the first allow rule):");
    let name = |i: usize| policy.rules.get(i).map_or("?", |r| r.name.as_str());
    let width = o
        .trace
        .rules
        .iter()
        .map(|r| name(r.rule).len())
        .max()
        .unwrap_or(0);
    for (i, r) in o.trace.rules.iter().enumerate() {
        let effect = match r.effect {
            Effect::Allow => "allow",
            Effect::Deny => "deny ",
        };
        let mark = if o.decision.rule == Some(r.rule) {
            "  <- decides"
        } else {
            ""
        };
        let line = format!(
            "  [{i}] {effect} {:<width$}  matches request: {:<3}  applies to caller: {:<3}{mark}",
            name(r.rule),
            if r.covers_operation { "yes" } else { "no" },
            if r.applies_to_caller { "yes" } else { "no" },
        );
        let _ = writeln!(s, "{}", line.trim_end());
    }
}

/// The `explain` report.
pub fn explain_text(
    c: &CompiledComponent,
    app: &Application,
    input: &Input,
    o: &Outcome,
) -> String {
    let policy = &c.policy;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "component: {} (application {}, namespace {})",
        c.component, app.name, app.namespace
    );
    let mode = match policy.mode {
        Mode::Enforce => "enforce",
        Mode::Audit => "audit",
    };
    let _ = writeln!(s, "policy:    {} (mode {mode})", policy.version);
    let _ = writeln!(
        s,
        "request:   {} {} (host {})",
        input.method, input.path, o.host
    );
    let _ = writeln!(s, "{}", peer_line(o));
    if let Reason::PathNotCanonical(e) = &o.decision.reason {
        let _ = writeln!(s, "path:      '{}' is not canonical: {e}", input.path);
    } else {
        let _ = writeln!(s, "{}", token_line(policy, input, o));
    }
    if !o.trace.roles.is_empty() {
        let _ = writeln!(s, "\nroles:");
        for r in &o.trace.roles {
            let name = policy.roles.get(r.role).map_or("?", |x| x.name.as_str());
            let held = if r.held { "HELD    " } else { "not held" };
            let _ = writeln!(s, "  {held} {name}");
            for line in condition_lines(policy, &o.decision, r) {
                let _ = writeln!(s, "      {line}");
            }
        }
    }
    rule_lines(&mut s, policy, o);
    let d = &o.decision;
    let verdict = if d.allowed() { "ALLOW" } else { "DENY" };
    let rule = policy
        .rule_name(d.rule)
        .map(|r| format!(", rule '{r}'"))
        .unwrap_or_default();
    let roles = policy.role_names(&d.roles);
    let roles = if roles.is_empty() {
        "none".to_string()
    } else {
        roles.join(", ")
    };
    let _ = writeln!(
        s,
        "\ndecision:  {verdict} {} {}{rule} (roles held: {roles})",
        d.status(),
        d.reason.code()
    );
    if policy.mode == Mode::Audit && !d.allowed() {
        let _ = writeln!(
            s,
            "           audit mode: the filter lets this request through and logs decision \"audit_deny\""
        );
    }
    s
}

/// The `explain --output json` report: the same facts as the text, as data.
pub fn explain_json(
    c: &CompiledComponent,
    app: &Application,
    input: &Input,
    o: &Outcome,
) -> serde_json::Value {
    use serde_json::json;
    let policy = &c.policy;
    let d = &o.decision;
    let peer = match &o.peer {
        Peer::None => serde_json::Value::Null,
        Peer::Spiffe(id) => json!({"spiffe_id": id.to_string()}),
        Peer::Component { name, id } => json!({"spiffe_id": id.to_string(), "component": name}),
    };
    let roles: Vec<serde_json::Value> = o
        .trace
        .roles
        .iter()
        .map(|r| {
            let conds: Vec<serde_json::Value> = conditions(policy, d, r)
                .into_iter()
                .map(|(ok, text)| json!({"holds": ok, "condition": text}))
                .collect();
            json!({
                "role": policy.roles.get(r.role).map_or("?", |x| x.name.as_str()),
                "held": r.held,
                "conditions": conds,
            })
        })
        .collect();
    let rules: Vec<serde_json::Value> = o
        .trace
        .rules
        .iter()
        .map(|r| {
            json!({
                "rule": policy.rules.get(r.rule).map_or("?", |x| x.name.as_str()),
                "effect": match r.effect { Effect::Allow => "allow", Effect::Deny => "deny" },
                "matches_request": r.covers_operation,
                "applies_to_caller": r.applies_to_caller,
                "decides": d.rule == Some(r.rule),
            })
        })
        .collect();
    let path_problem = match &d.reason {
        Reason::PathNotCanonical(e) => json!(e.to_string()),
        _ => serde_json::Value::Null,
    };
    json!({
        "component": c.component,
        "application": app.name,
        "namespace": app.namespace,
        "policy_version": policy.version,
        "mode": match policy.mode { Mode::Enforce => "enforce", Mode::Audit => "audit" },
        "request": {"method": input.method, "path": input.path, "host": o.host},
        "path_not_canonical": path_problem,
        "peer": peer,
        "token": token_text(policy, input, o),
        "roles": roles,
        "rules": rules,
        "decision": {
            "decision": if d.allowed() { "allow" } else { "deny" },
            "status": d.status(),
            "reason": d.reason.code(),
            "rule": policy.rule_name(d.rule),
            "roles_held": policy.role_names(&d.roles),
            "enforced": policy.mode == Mode::Enforce || d.allowed(),
        },
    })
}
