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
pub mod shadow;
pub mod trace;

use crate::decision::{Decision, Identity, Reason, ShadowDecision};
use crate::pattern::spiffe::SpiffeId;
use crate::policy::{Policy, Shadow};
use crate::request::token::TokenLocation;
use authn::{Authn, Refusal};
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
    let authn = authn::authenticate(policy, req, cache);
    settle(policy, peer, &op, authn, trace)
}

/// As [`decide`], and the decision of the policy's shadow on the same
/// facts (the same peer, the tokens the enforced policy verified).
pub fn decide_with_shadow(
    policy: &Policy,
    shadow: &Shadow,
    req: &Request<'_>,
    cache: &mut TokenCache,
) -> (Decision, ShadowDecision) {
    let peer = req.peer.and_then(|p| SpiffeId::parse(p).ok());
    let parse = |p: &Policy| Operation::parse(req.method, req.path, req.host, p.path_options);
    let op = parse(policy);
    // Only a shadow with other path options (`allow_encoded_percent`)
    // can judge the path differently.
    let own_op = (shadow.policy.path_options != policy.path_options).then(|| parse(&shadow.policy));
    let shadow_op = match (&own_op, &op) {
        (Some(o), _) | (None, o) => o.as_ref(),
    };
    let (authn, s) = match shadow_op {
        Err(reason) => (None, ShadowDecision::of(reason, None)),
        Ok(sop) => {
            // Where the enforced policy refuses the path it reads no token;
            // the shadow's token is then verified for the shadow alone.
            let authn = authn::authenticate(policy, req, cache);
            let s = shadow::decide(shadow, policy, req, sop, peer.as_ref(), &authn, cache);
            (Some(authn), s)
        }
    };
    let d = match (op, authn) {
        (Err(reason), _) => refused(reason, Identity { peer, token: None }, None),
        (Ok(op), Some(authn)) => settle(policy, peer, &op, authn, None),
        (Ok(op), None) => {
            let authn = authn::authenticate(policy, req, cache);
            settle(policy, peer, &op, authn, None)
        }
    };
    (d, s)
}

/// The decision once authentication has spoken.
fn settle(
    policy: &Policy,
    peer: Option<SpiffeId>,
    op: &Operation<'_>,
    authn: Result<Authn, Refusal>,
    trace: Option<&mut Trace>,
) -> Decision {
    let (mut d, seen) = match authn {
        Ok(a) => (
            decide_as(
                policy,
                Identity {
                    peer,
                    token: a.token,
                },
                op,
                trace,
            ),
            a.seen,
        ),
        Err(r) => (
            refused(r.reason, Identity { peer, token: None }, r.location),
            r.seen,
        ),
    };
    d.token_seen = seen;
    d
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
        token_seen: None,
    }
}

#[cfg(test)]
pub(crate) mod tests;
