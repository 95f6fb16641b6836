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
mod operation;
pub mod trace;

use crate::decision::{Decision, Identity, Reason};
use crate::pattern::spiffe::SpiffeId;
use crate::policy::Policy;
use crate::request::token::TokenLocation;
use cache::TokenCache;
use trace::Trace;

pub use authz::held_roles;
pub use operation::{Operation, Request};

/// The whole pipeline, as the filter runs it, with its per-VM token cache.
/// With a trace, also records why (CLI and tests; never on the hot path).
pub fn decide(
    policy: &Policy,
    req: &Request<'_>,
    cache: &mut TokenCache,
    trace: Option<&mut Trace>,
) -> Decision {
    let peer = req.peer.and_then(|p| SpiffeId::parse(p).ok());
    let op = match Operation::parse(req.method, req.path, req.host, policy.path_options) {
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
