//! The decision procedure: request facts in, decision out. Pure: no host
//! calls, no clock; "now" is part of the request.
//!
//! Split like cedar-policy into authentication (who is this? `authn`) and
//! authorization (may they? `authz`). The filter runs [`decide`]; the CLI
//! runs the same steps with a hand-given identity ([`decide_as`]), so a
//! decision and its [`Trace`] are the same wherever they are shown.

pub mod authn;
mod authz;
pub mod cache;
pub mod forward;
pub mod trace;

use crate::decision::{Decision, Identity, Reason};
use crate::host::SignatureBackend;
use crate::pattern::hostname::normalize_host;
use crate::pattern::path::canonical_path;
use crate::pattern::spiffe::SpiffeId;
use crate::policy::Policy;
use crate::request::token::TokenLocation;
use cache::TokenCache;
use trace::Trace;

pub use authz::held_roles;

/// The facts the engine needs about one request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Raw `:path`, query included.
    pub path: &'a str,
    /// Raw `:authority`.
    pub host: &'a str,
    /// All request headers, names lowercase (as Envoy hands them to filters).
    pub headers: &'a [(String, String)],
    /// URI SAN of the verified peer certificate; `None` without mTLS.
    pub peer: Option<&'a str>,
    /// Unix time in seconds, from the host clock.
    pub now: u64,
    /// The host's native signature verifier, when it has one.
    pub crypto: Option<&'a dyn SignatureBackend>,
}

/// A normalized operation: what the caller wants to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<'a> {
    pub method: &'a str,
    /// Normalized host (see `pattern::hostname::normalize_host`).
    pub host: String,
    /// Canonical path without query.
    pub path: &'a str,
}

impl<'a> Operation<'a> {
    /// The operation of a raw request, or why it cannot be matched at all.
    pub fn parse(method: &'a str, path: &'a str, host: &str) -> Result<Operation<'a>, Reason> {
        let path = canonical_path(path).map_err(Reason::PathNotCanonical)?;
        Ok(Operation {
            method,
            host: normalize_host(host),
            path,
        })
    }
}

/// The whole pipeline, as the filter runs it, with its per-VM token cache.
/// With a trace, also records why (CLI and tests; never on the hot path).
pub fn decide(
    policy: &Policy,
    req: &Request<'_>,
    cache: &mut TokenCache,
    trace: Option<&mut Trace>,
) -> Decision {
    let peer = req.peer.and_then(|p| SpiffeId::parse(p).ok());
    let op = match Operation::parse(req.method, req.path, req.host) {
        Ok(op) => op,
        Err(reason) => return refused(reason, Identity { peer, token: None }, None),
    };
    let token = match authn::authenticate(policy, req, cache) {
        Ok(t) => t,
        Err((reason, location)) => {
            return refused(reason, Identity { peer, token: None }, location)
        }
    };
    decide_as(policy, Identity { peer, token }, &op, trace)
}

/// Authorize an identity established elsewhere (the filter's
/// authentication, or `oam-authz explain --claims`) and settle the roles
/// the decision reports.
pub fn decide_as(
    policy: &Policy,
    identity: Identity,
    op: &Operation<'_>,
    trace: Option<&mut Trace>,
) -> Decision {
    let location = identity.token.as_ref().map(|t| t.location.clone());
    let mut d = authz::authorize(policy, identity, op, trace);
    d.token_location = location;
    // The decision consulted only the roles it needed. When roles are
    // forwarded, the upstream and the audit event get every held role
    // (denials too, so the audit line reads the same either way).
    if policy.forward.roles_header.is_some() {
        d.roles = held_roles(policy, &d.identity);
    }
    d
}

/// A decision made before authorization: no rule, no roles.
pub fn refused(
    reason: Reason,
    identity: Identity,
    token_location: Option<TokenLocation>,
) -> Decision {
    Decision {
        reason,
        rule: None,
        roles: Vec::new(),
        identity,
        token_location,
    }
}

#[cfg(test)]
pub(crate) mod tests;
