//! Authorization: may this (already authenticated) identity perform this
//! operation? Deny rules win; then the first allow rule that covers the
//! operation and applies to the caller; else deny.

use super::operation::Operation;
use super::trace::{Condition, RoleTrace, RuleTrace, TokenCheck, Trace};
use crate::config::Effect;
use crate::decision::{Decision, Identity, Reason};
use crate::policy::{Policy, Rule, Subjects};

/// Does `identity` hold role `idx`? With a trace, records every condition
/// (and does not stop at the first failing one).
fn holds(
    policy: &Policy,
    idx: usize,
    identity: &Identity,
    mut trace: Option<&mut Vec<Condition>>,
) -> bool {
    let Some(role) = policy.roles.get(idx) else {
        return false;
    };
    let mut ok = true;
    if let Some(patterns) = &role.principals {
        let matched = identity.peer.as_ref().and_then(|p| {
            patterns
                .iter()
                .position(|pat| pat.matches(p, &policy.local_domains))
        });
        if let Some(t) = trace.as_deref_mut() {
            t.push(Condition::Principal { matched });
        }
        ok &= matched.is_some();
        if !ok && trace.is_none() {
            return false;
        }
    }
    if let Some(req) = &role.jwt {
        let token = identity.token.as_ref();
        let check = match token {
            Some(t) if t.provider == req.provider => TokenCheck::Present,
            Some(_) => TokenCheck::OtherProvider,
            None => TokenCheck::Missing,
        };
        if let Some(t) = trace.as_deref_mut() {
            t.push(Condition::Token(check));
        }
        match (check, token) {
            (TokenCheck::Present, Some(t)) => {
                for (index, c) in req.claims.iter().enumerate() {
                    let held = c.eval(&t.token.claims);
                    if let Some(tr) = trace.as_deref_mut() {
                        tr.push(Condition::Claim { index, held });
                    }
                    ok &= held;
                    if !ok && trace.is_none() {
                        return false;
                    }
                }
            }
            _ => ok = false,
        }
    }
    ok
}

/// Roles evaluated on demand: a request pays only for the roles named by the
/// rules that cover it, however many roles the policy has. The first 64
/// roles are remembered in two bit sets (no allocation per request).
struct Held<'p> {
    policy: &'p Policy,
    known: u64,
    held: u64,
    /// Roles past the 64th: (index, held).
    more: Vec<(usize, bool)>,
}

impl<'p> Held<'p> {
    fn new(policy: &'p Policy) -> Self {
        Held {
            policy,
            known: 0,
            held: 0,
            more: Vec::new(),
        }
    }

    fn lookup(&self, i: usize) -> Option<bool> {
        match u32::try_from(i).ok().filter(|i| *i < 64) {
            Some(b) => (self.known >> b & 1 == 1).then_some(self.held >> b & 1 == 1),
            None => self.more.iter().find(|(k, _)| *k == i).map(|(_, h)| *h),
        }
    }

    fn record(&mut self, i: usize, h: bool) {
        match u32::try_from(i).ok().filter(|i| *i < 64) {
            Some(b) => {
                self.known |= 1 << b;
                if h {
                    self.held |= 1 << b;
                }
            }
            None => self.more.push((i, h)),
        }
    }

    fn get(&mut self, i: usize, identity: &Identity) -> bool {
        if let Some(h) = self.lookup(i) {
            return h;
        }
        let h = holds(self.policy, i, identity, None);
        self.record(i, h);
        h
    }

    fn applies(&mut self, rule: &Rule, identity: &Identity) -> bool {
        match &rule.subjects {
            Subjects::Public | Subjects::Everyone => true,
            Subjects::Roles(rs) => rs.iter().any(|r| self.get(*r, identity)),
        }
    }

    /// The held roles among those consulted, ascending.
    fn into_held(mut self) -> Vec<usize> {
        let mut out: Vec<usize> = (0..64usize).filter(|b| self.held >> b & 1 == 1).collect();
        self.more.sort_unstable();
        out.extend(self.more.into_iter().filter_map(|(i, h)| h.then_some(i)));
        out
    }
}

/// Every role the identity holds, ascending. O(roles): used only when the
/// operator forwards roles upstream (`forward.roles_header`).
pub fn held_roles(policy: &Policy, identity: &Identity) -> Vec<usize> {
    (0..policy.roles.len())
        .filter(|i| holds(policy, *i, identity, None))
        .collect()
}

/// Explain mode: evaluate every role and every rule, with their conditions.
fn trace_all(
    policy: &Policy,
    identity: &Identity,
    covering: &[(usize, &Rule)],
    held: &mut Held<'_>,
    t: &mut Trace,
) {
    for i in 0..policy.roles.len() {
        let mut conditions = Vec::new();
        let h = holds(policy, i, identity, Some(&mut conditions));
        held.record(i, h);
        t.roles.push(RoleTrace {
            role: i,
            held: h,
            conditions,
        });
    }
    for (i, r) in policy.rules.iter().enumerate() {
        t.rules.push(RuleTrace {
            rule: i,
            effect: r.effect,
            covers_operation: covering.iter().any(|(c, _)| *c == i),
            applies_to_caller: held.applies(r, identity),
        });
    }
}

/// Authorize an authenticated identity for `op`.
pub fn authorize(
    policy: &Policy,
    identity: Identity,
    op: &Operation<'_>,
    trace: Option<&mut Trace>,
) -> Decision {
    let covering: Vec<(usize, &Rule)> = policy
        .covering_rules(op.method, &op.host, op.path)
        .collect();
    let mut held = Held::new(policy);
    if let Some(t) = trace {
        trace_all(policy, &identity, &covering, &mut held, t);
    }

    let mut verdict: Option<(Reason, Option<usize>)> = covering
        .iter()
        .find(|(_, r)| r.effect == Effect::Deny && held.applies(r, &identity))
        .map(|(i, _)| (Reason::DeniedByRule, Some(*i)));
    if verdict.is_none() {
        verdict = covering
            .iter()
            .find(|(_, r)| r.effect == Effect::Allow && held.applies(r, &identity))
            .map(|(i, r)| {
                let reason = if r.subjects == Subjects::Public {
                    Reason::PublicRule
                } else {
                    Reason::RoleGranted
                };
                (reason, Some(*i))
            });
    }
    let mut allows = covering.iter().filter(|(_, r)| r.effect == Effect::Allow);
    if verdict.is_none() && identity.token.is_none() {
        let needs_token = |r: &Rule| match &r.subjects {
            Subjects::Roles(rs) => rs
                .iter()
                .any(|i| policy.roles.get(*i).is_some_and(|role| role.jwt.is_some())),
            _ => false,
        };
        verdict = allows
            .clone()
            .find(|(_, r)| needs_token(r))
            .map(|(i, _)| (Reason::TokenMissing, Some(*i)));
    }
    let (reason, rule) = verdict.unwrap_or_else(|| match allows.next() {
        Some((i, _)) => (Reason::RoleRequired, Some(*i)),
        None => (Reason::NoMatchingRule, None),
    });
    Decision {
        reason,
        rule,
        roles: held.into_held(),
        identity,
        token_location: None,
    }
}
