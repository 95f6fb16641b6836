//! What goes upstream with a request the filter lets through: the token
//! removed (unless its provider forwards it) and the identity headers set.
//! Pure: the handler applies the edits.

use crate::decision::Decision;
use crate::json::write::scalar_text;
use crate::policy::claims::lookup;
use crate::policy::Policy;
use crate::request::headers::Headers;
use crate::request::token::{self, Edit};

/// Headers the filter emits (and the operator's extra list) that the
/// client sent: removed first, on every request, whatever the decision.
pub fn spoofed<'p>(policy: &'p Policy, headers: &'p Headers) -> impl Iterator<Item = &'p str> + 'p {
    policy
        .strip_headers
        .iter()
        .filter(|name| headers.contains(name))
        .map(String::as_str)
}

/// The edits for a request that goes upstream (allowed, or audit mode).
pub fn upstream(policy: &Policy, d: &Decision, headers: &Headers, path: &str) -> Vec<Edit> {
    let mut edits = Vec::new();
    let keep_token = d
        .identity
        .token
        .as_ref()
        .and_then(|t| policy.providers.get(t.provider))
        .is_some_and(|p| p.forward_token());
    if let (Some(loc), false) = (&d.token_location, keep_token) {
        edits.push(token::strip(loc, headers, path));
    }
    let f = &policy.forward;
    if let (Some(h), Some(peer)) = (&f.principal_header, &d.identity.peer) {
        edits.push(Edit::Set(h.clone(), peer.to_string()));
    }
    if let Some(t) = &d.identity.token {
        if let (Some(h), Some(sub)) = (&f.subject_header, &t.token.subject) {
            edits.push(Edit::Set(h.clone(), sub.clone()));
        }
        if let Some(h) = &f.issuer_header {
            edits.push(Edit::Set(h.clone(), t.token.issuer.clone()));
        }
        for (h, claim) in &f.claim_headers {
            let value = lookup(&t.token.claims, claim).and_then(scalar_text);
            // A claim value must never inject a header (CVE-2023-27493 class).
            if let Some(v) = value.filter(|v| !v.chars().any(char::is_control)) {
                edits.push(Edit::Set(h.clone(), v));
            }
        }
    }
    if let Some(h) = &f.roles_header {
        if !d.roles.is_empty() {
            edits.push(Edit::Set(h.clone(), policy.role_names(&d.roles).join(",")));
        }
    }
    edits
}
