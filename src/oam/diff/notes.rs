//! Changes that are not regions of requests: the mode, token settings the
//! regions do not analyse request by request (algorithms, keys, clock
//! skew, token locations), forwarded headers. See docs/diff.md "Notes".

use super::regions::Change;
use super::side::Side;
use crate::config::{Mode, ProviderConfig};
use serde_json::Value;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    /// How the note counts for the exit code (`None`: access is unchanged).
    pub effect: Option<Change>,
}

fn note(text: String, effect: Option<Change>) -> Note {
    Note { text, effect }
}

fn mode_word(m: Mode) -> &'static str {
    match m {
        Mode::Enforce => "enforce",
        Mode::Audit => "audit",
    }
}

/// Key ids (or the whole key when it has none) of an inline set.
fn keys(p: &ProviderConfig) -> BTreeSet<String> {
    let list = p
        .jwks
        .as_ref()
        .and_then(|j| j.get("keys"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    list.iter().map(Value::to_string).collect()
}

fn widen_or_narrow(added: bool, removed: bool) -> Option<Change> {
    match (added, removed) {
        (true, _) => Some(Change::Widened),
        (false, true) => Some(Change::Narrowed),
        (false, false) => None,
    }
}

fn set_change<T: Ord + Clone>(old: &[T], new: &[T]) -> (bool, bool) {
    let (a, b): (BTreeSet<T>, BTreeSet<T>) =
        (old.iter().cloned().collect(), new.iter().cloned().collect());
    (
        b.difference(&a).next().is_some(),
        a.difference(&b).next().is_some(),
    )
}

/// What changed in one issuer's token settings beyond audiences and the
/// lifetime limit (those are analysed as regions).
fn provider_notes(issuer: &str, a: &ProviderConfig, b: &ProviderConfig, out: &mut Vec<Note>) {
    let (add, rem) = set_change(&a.algorithms, &b.algorithms);
    if add || rem {
        out.push(note(
            format!(
                "tokens of {issuer}: accepted algorithms {:?} -> {:?} (not analysed per request: tokens signed with an added algorithm are now accepted, with a removed one refused)",
                a.algorithms, b.algorithms
            ),
            widen_or_narrow(add, rem),
        ));
    }
    let (ka, kb) = (keys(a), keys(b));
    let (add, rem) = (
        kb.difference(&ka).next().is_some(),
        ka.difference(&kb).next().is_some(),
    );
    if add || rem || a.remote_jwks != b.remote_jwks {
        out.push(note(
            format!(
                "tokens of {issuer}: the verification keys changed ({}; not analysed per request: tokens signed by an added key are now accepted, by a removed one refused)",
                match (&a.remote_jwks, &b.remote_jwks) {
                    (None, None) => format!("{} key(s) added, {} removed", kb.difference(&ka).count(), ka.difference(&kb).count()),
                    _ => "inline keys or the remote key source".to_string(),
                }
            ),
            widen_or_narrow(add || a.remote_jwks != b.remote_jwks, rem),
        ));
    }
    let skew = |p: &ProviderConfig| {
        p.clock_skew_seconds
            .unwrap_or(crate::policy::provider::DEFAULT_CLOCK_SKEW)
    };
    if skew(a) != skew(b) {
        out.push(note(
            format!(
                "tokens of {issuer}: clock skew {} s -> {} s (not analysed per request: tokens within the difference of their exp, nbf or iat)",
                skew(a),
                skew(b)
            ),
            widen_or_narrow(skew(b) > skew(a), skew(b) < skew(a)),
        ));
    }
    if a.from != b.from {
        out.push(note(
            format!(
                "tokens of {issuer}: the token locations changed ({} -> {}; the regions send tokens where the old revision reads them)",
                serde_json::to_string(&a.from).unwrap_or_default(),
                serde_json::to_string(&b.from).unwrap_or_default()
            ),
            Some(Change::Widened),
        ));
    }
}

/// The token settings the regions do analyse, summed up per issuer: the
/// cause of many regions at once (no effect of their own).
fn analysed(a: &[ProviderConfig], b: &[ProviderConfig], out: &mut Vec<Note>) {
    for pa in a {
        let Some(pb) = b.iter().find(|p| p.issuer == pa.issuer) else {
            out.push(note(
                format!(
                    "tokens of {}: the new revision has no provider for this issuer (no role its rules use needs one), so it refuses them (401) or, with no provider at all, ignores them",
                    pa.issuer
                ),
                None,
            ));
            continue;
        };
        if pa.audiences != pb.audiences {
            out.push(note(
                format!(
                    "tokens of {}: audiences {:?} -> {:?}: a token only for a removed audience is now refused (401 token_audience_mismatch) on every request, one for an added audience is now accepted",
                    pa.issuer, pa.audiences, pb.audiences
                ),
                None,
            ));
        }
        let life = |p: &ProviderConfig| {
            p.max_lifetime_seconds
                .unwrap_or(crate::policy::provider::DEFAULT_MAX_LIFETIME)
        };
        if life(pa) != life(pb) {
            out.push(note(
                format!(
                    "tokens of {}: maximum lifetime {} s -> {} s",
                    pa.issuer,
                    life(pa),
                    life(pb)
                ),
                None,
            ));
        }
    }
    for pb in b.iter().filter(|p| !a.iter().any(|q| q.issuer == p.issuer)) {
        out.push(note(
            format!(
                "tokens of {}: the new revision has a provider for this issuer and accepts them",
                pb.issuer
            ),
            None,
        ));
    }
}

/// Every note of a component present on both sides.
pub fn notes(old: &Side<'_>, new: &Side<'_>) -> Vec<Note> {
    let mut out = Vec::new();
    let (a, b) = (old.config, new.config);
    analysed(&a.providers, &b.providers, &mut out);
    if a.mode != b.mode {
        let effect = match b.mode {
            Mode::Audit => Change::Widened,
            Mode::Enforce => Change::Narrowed,
        };
        out.push(note(
            format!(
                "mode {} -> {}: {}",
                mode_word(a.mode),
                mode_word(b.mode),
                match b.mode {
                    Mode::Audit => "denials are now only logged: every request the regions show as denied reaches the workload",
                    Mode::Enforce => "denials are now enforced: requests denied by the new policy no longer reach the workload",
                }
            ),
            Some(effect),
        ));
    }
    for pa in &a.providers {
        if let Some(pb) = b.providers.iter().find(|p| p.issuer == pa.issuer) {
            provider_notes(&pa.issuer, pa, pb, &mut out);
        }
    }
    if a.forward != b.forward {
        out.push(note(
            "the headers forwarded to the workload (forward) changed; decisions do not depend on them".into(),
            None,
        ));
    }
    out
}
