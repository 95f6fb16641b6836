//! What each audit event records beyond the decision, so that `oam-authz
//! replay` can decide it again under another policy (docs/operations.md
//! "What an event records"): the verified claims roles consult, and the
//! token locations the policy reads. Computed once, at load.

use super::claims::check_path;
use super::sources;
use crate::config::{PluginConfig, TokenSource};
use crate::error::{Diagnostics, FieldPath, Problem};

/// Always in an event as its own `iss` and `sub` fields.
const ALWAYS: [&str; 2] = ["iss", "sub"];

#[derive(Debug, Clone, Default)]
pub struct AuditPlan {
    /// Claim paths each event with a verified token records, besides `iss`
    /// and `sub` (`audit.claims`, or the default).
    pub claims: Vec<String>,
    /// `sources::label` of each entry of `Policy::token_sources`.
    pub source_labels: Vec<String>,
    /// The same labels as a JSON array, written into every event as is.
    pub sources_json: String,
    /// Per `Policy::token_sources` entry: the digests of the providers that
    /// read it, as a JSON array.
    pub candidates_json: Vec<String>,
}

/// Claim paths the roles of `cfg` consult, its shadow's included, with the
/// role naming each first.
fn consulted(cfg: &PluginConfig) -> Vec<(&str, &str)> {
    let shadow_roles = cfg.shadow.iter().flat_map(|s| s.roles.iter());
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in cfg.roles.iter().chain(shadow_roles) {
        for c in r.jwt.iter().flat_map(|j| j.claims.iter()) {
            if !out.iter().any(|(p, _)| *p == c.claim) {
                out.push((c.claim.as_str(), r.name.as_str()));
            }
        }
    }
    out
}

/// The recorded claims: `audit.claims` as written (checked, `iss` and `sub`
/// dropped since they are always recorded), or by default every claim a
/// role consults plus `aud`.
pub fn claims(d: &mut Diagnostics, cfg: &PluginConfig) -> Vec<String> {
    let consulted = consulted(cfg);
    let explicit = cfg.audit.as_ref().and_then(|a| a.claims.as_ref());
    let Some(list) = explicit else {
        let mut out: Vec<String> = Vec::new();
        for c in consulted.iter().map(|(p, _)| *p).chain(["aud"]) {
            if !ALWAYS.contains(&c) && !out.iter().any(|o| o == c) {
                out.push(c.to_string());
            }
        }
        return out;
    };
    let path = FieldPath::root().field("audit").field("claims");
    let mut out: Vec<String> = Vec::new();
    for (i, c) in list.iter().enumerate() {
        if !check_path(d, c, path.index(i)) {
            continue;
        }
        if out.contains(c) {
            d.error(path.index(i), Problem::duplicate(c));
        } else if !ALWAYS.contains(&c.as_str()) {
            out.push(c.clone());
        }
    }
    let missing: Vec<String> = consulted
        .iter()
        .filter(|(p, _)| !ALWAYS.contains(p) && !covered(&out, p))
        .map(|(p, r)| format!("'{p}' (role '{r}')"))
        .collect();
    if !missing.is_empty() {
        d.warning(
            path,
            Problem::invalid(format!(
                "does not record {}, which roles consult: oam-authz replay reports the events that need them as undecidable",
                missing.join(", ")
            )),
        );
    }
    out
}

/// Whether recording `list` records `claim` (itself, or an object holding it).
pub fn covered(list: &[String], claim: &str) -> bool {
    list.iter().any(|r| {
        claim == r
            || claim
                .strip_prefix(r.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// The token locations' labels, one per `Policy::token_sources` entry, and
/// the JSON array of them.
pub fn sources(token_sources: &[(TokenSource, Vec<usize>)]) -> (Vec<String>, String) {
    let mut labels = Vec::with_capacity(token_sources.len());
    for (s, _) in token_sources {
        labels.push(sources::label(s));
    }
    let json = array(labels.iter().map(String::as_str));
    (labels, json)
}

/// Strings as a JSON array.
pub fn array<'s>(items: impl Iterator<Item = &'s str>) -> String {
    let mut json = String::from("[");
    for (i, l) in items.enumerate() {
        if i > 0 {
            json.push(',');
        }
        crate::json::write::string(&mut json, l);
    }
    json.push(']');
    json
}
