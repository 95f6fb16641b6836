//! Why a decision came out as it did: which conditions of each role held
//! and which rules covered the request. Plain data (indices into the
//! policy, no English): `oam-authz explain` formats it, tests assert on it.
//! Collected only when asked, never on the filter's request path.

use crate::config::Effect;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Every role of the policy, in policy order.
    pub roles: Vec<RoleTrace>,
    /// Every rule of the policy, in policy order.
    pub rules: Vec<RuleTrace>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleTrace {
    /// Index into `Policy::roles`.
    pub role: usize,
    pub held: bool,
    /// Each condition of the role, in the order they are checked.
    pub conditions: Vec<Condition>,
}

/// One condition of a role and whether the caller met it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `principals`: the index of the first pattern the peer matched
    /// (`None`: no peer, or no pattern matched).
    Principal { matched: Option<usize> },
    /// `jwt.provider`: whether a token of that provider was presented.
    Token(TokenCheck),
    /// `jwt.claims[index]` on the verified claims.
    Claim { index: usize, held: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// A verified token of the role's provider.
    Present,
    /// No token at all.
    Missing,
    /// A verified token, but of another provider.
    OtherProvider,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTrace {
    /// Index into `Policy::rules`.
    pub rule: usize,
    pub effect: Effect,
    pub covers_operation: bool,
    pub applies_to_caller: bool,
}
