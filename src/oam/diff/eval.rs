//! Decisions, from the engine: every cell of a diff and every example is
//! decided by `engine::decide_as`, the function the filter and `explain`
//! call, never by a re-implementation of its rules.

use super::callers::{authenticate, Auth, Caller, View, NOW};
use crate::decision::{Decision, Identity, Reason};
use crate::engine::{decide_as, refused, Operation};
use crate::policy::Policy;

/// What a decision is, for a diff: allowed or not, the status and the
/// reason code. The deciding rule is kept for the examples only: a change
/// of rule alone (allow by 'a' instead of 'b') changes no decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Decided {
    pub allowed: bool,
    pub status: u16,
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub decided: Decided,
    /// The deciding rule's name.
    pub rule: Option<String>,
}

fn outcome(policy: &Policy, d: &Decision) -> Outcome {
    Outcome {
        decided: Decided {
            allowed: d.allowed(),
            status: d.status(),
            reason: d.reason.code(),
        },
        rule: policy.rule_name(d.rule).map(str::to_string),
    }
}

/// The decision for an identity already authenticated (or refused).
pub fn decide_view(policy: &Policy, view: &View, method: &str, host: &str, path: &str) -> Outcome {
    let d = match Operation::parse(method, path, host, policy.path_options) {
        Err(reason) => refused(reason, Identity::default(), None),
        Ok(op) => match view {
            View::Refused(e) => refused(Reason::InvalidToken(e.clone()), Identity::default(), None),
            View::Identity(id) => decide_as(policy, id.clone(), &op, None),
        },
    };
    outcome(policy, &d)
}

/// The whole request, as the filter runs it: the path check, then the
/// token (routed by location and issuer, its claims checked by the
/// provider), then authorization.
pub fn decide(policy: &Policy, caller: &Caller, method: &str, host: &str, path: &str) -> Outcome {
    let view = match authenticate(policy, caller.token.as_ref(), NOW) {
        Auth::Refused(e) => View::Refused(e),
        Auth::Verified(t) => View::Identity(Identity {
            peer: caller.peer.clone(),
            token: Some(t),
        }),
        Auth::NoToken | Auth::Ignored => View::Identity(Identity {
            peer: caller.peer.clone(),
            token: None,
        }),
    };
    decide_view(policy, &view, method, host, path)
}
