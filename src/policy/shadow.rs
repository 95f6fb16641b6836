//! A shadow policy next to the enforced one (docs/policy.md "Shadow
//! policy"): what it may differ in, and how its tokens are verified.
//!
//! The shadow decides on the enforced policy's facts: the same peer and,
//! for a token both policies verify, the token as the enforced policy
//! verified it (no second signature check). So a provider both policies
//! name must be the same provider: identical verification settings
//! (`policy/settings.rs`). The shadow may drop providers, and may add
//! providers of issuers the enforced policy does not verify at all: it
//! verifies those tokens itself (the only signature check such a token
//! gets). A changed provider (new audiences, keys, lifetime...) cannot be
//! shadowed, since judging it would mean checking the token again: that is
//! refused here, with the field that differs.

use super::settings;
use crate::config::{Mode, PluginConfig, TokenSource};
use crate::error::{field, msg, Diagnostics, FieldPath, Problem};

/// Who verifies the tokens of a shadow provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verifier {
    /// Identical to the enforced policy's provider `.0`: that provider's
    /// verification (and its cached tokens) is shared.
    Enforced(usize),
    /// A provider of the shadow only: the shadow verifies its tokens.
    Own,
}

/// Check the shadow `s` against the enforced `cfg` (errors at `shadow.…`)
/// and say, per shadow provider, who verifies its tokens. The shadow's own
/// content is checked by `Policy::check` like any policy.
pub fn pair(d: &mut Diagnostics, cfg: &PluginConfig, s: &PluginConfig) -> Vec<Verifier> {
    let root = FieldPath::root().field("shadow");
    if s.shadow.is_some() {
        d.invalid(
            root.field("shadow"),
            "a shadow policy has no shadow of its own",
        );
    }
    if s.mode == Mode::Audit {
        d.invalid(
            root.field("mode"),
            msg!(
                "a shadow never changes a response, so it has no audit mode: leave ",
                field("mode"),
                " out (the enforced policy's mode says what is enforced)"
            ),
        );
    }
    if s.peer_identity != cfg.peer_identity {
        d.invalid(
            root.field("peer_identity"),
            msg!(
                "differs from the enforced policy's ",
                field("peer_identity"),
                ": the shadow judges the caller the enforced policy reads; set the same"
            ),
        );
    }
    if s.signature_backend != cfg.signature_backend {
        d.invalid(
            root.field("signature_backend"),
            msg!(
                "differs from the enforced policy's ",
                field("signature_backend"),
                ": both verify signatures on the same backend; set the same"
            ),
        );
    }
    if s.audit.is_some() {
        d.invalid(
            root.field("audit"),
            msg!(
                "the enforced policy writes the audit events: set ",
                field("audit"),
                " there (its events record the claims the shadow's roles consult by default)"
            ),
        );
    }
    let mut out = Vec::with_capacity(s.providers.len());
    for (j, p) in s.providers.iter().enumerate() {
        out.push(verifier(d, cfg, p, &root.field("providers").index(j)));
    }
    out
}

fn verifier(
    d: &mut Diagnostics,
    cfg: &PluginConfig,
    p: &crate::config::ProviderConfig,
    path: &FieldPath,
) -> Verifier {
    let same_name = cfg.providers.iter().position(|e| e.name == p.name);
    let same_issuer = cfg.providers.iter().position(|e| e.issuer == p.issuer);
    let Some(i) = same_name.or(same_issuer) else {
        return Verifier::Own;
    };
    let Some(e) = cfg.providers.get(i) else {
        return Verifier::Own;
    };
    if e.name != p.name {
        d.invalid(
            path.field("name"),
            format!(
                "'{}' verifies issuer '{}', as the enforced policy's provider '{}' (providers[{i}]) does: a shadow shares the tokens the enforced policy verified, so give it the same name and settings",
                p.name, p.issuer, e.name
            ),
        );
        return Verifier::Enforced(i);
    }
    for f in settings::differences(e, p) {
        d.error(
            path.field(f),
            Problem::invalid(format!(
                "differs from the enforced policy's provider '{}' (providers[{i}]): a shadow decides on the token the enforced policy verified, without checking it again, so a provider both policies name must be the same; try a provider change in audit mode instead",
                e.name
            )),
        );
    }
    Verifier::Enforced(i)
}

/// Whether the shadow finds and routes tokens exactly as the enforced
/// policy does: the same locations, each read by the same providers. Then
/// the enforced authentication is the shadow's, as it is.
pub fn shares_authentication(
    enforced: &[(TokenSource, Vec<usize>)],
    shadow: &[(TokenSource, Vec<usize>)],
    verifiers: &[Verifier],
) -> bool {
    // Candidate lists hold each provider once: equal length and inclusion
    // make equal sets.
    let same = |ours: &[usize], theirs: &[usize]| {
        ours.len() == theirs.len()
            && ours.iter().all(|j| match verifiers.get(*j) {
                Some(Verifier::Enforced(i)) => theirs.contains(i),
                _ => false,
            })
    };
    enforced.len() == shadow.len()
        && shadow.iter().all(|(src, cands)| {
            enforced
                .iter()
                .find(|(s, _)| s == src)
                .is_some_and(|(_, theirs)| same(cands, theirs))
        })
}

#[cfg(test)]
mod tests;
