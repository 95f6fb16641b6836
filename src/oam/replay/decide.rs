//! One event decided again: the path check, the token search and routing as
//! far as the recorded facts reach, then the engine's `decide_as`.

use super::event::{Event, Facts, Outcome, TokenFacts};
use crate::decision::{Identity, Reason, TokenIdentity};
use crate::engine::{decide_as, Operation};
use crate::jwt::{TokenError, VerifiedToken};
use crate::pattern::spiffe::SpiffeId;
use crate::policy::audit::covered;
use crate::policy::{Policy, Subjects};
use crate::request::token::TokenLocation;
use serde_json::{Map, Value};
use std::sync::Arc;

/// Why an event cannot be decided under the new policy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Undecidable {
    /// The event lacks the replay facts (an older filter wrote it).
    NoFacts,
    /// The recording policy refused the path before looking for a token;
    /// the new policy accepts the path and would need it.
    PathRefusedFirst,
    /// The new policy reads tokens where the recording policy did not
    /// (`new`), or, for a request with several tokens, not everywhere it
    /// found them (`dropped`).
    TokenSources {
        new: Vec<String>,
        dropped: Vec<String>,
    },
    /// The provider that would verify the token under the new policy is
    /// not the one that judged it (other settings, or another provider).
    Provider { name: String },
    /// A refused token the new policy could route to another provider.
    RefusedToken,
    /// A claim a role of the new policy consults is not in the event.
    Claim { claim: String },
}

impl Undecidable {
    pub fn describe(&self) -> String {
        match self {
            Undecidable::NoFacts => "the event has no token facts (written by an older filter)".into(),
            Undecidable::PathRefusedFirst => "the recording policy refused the path before reading any token; this policy accepts it".into(),
            Undecidable::TokenSources { new, dropped } if !new.is_empty() => format!(
                "this policy reads tokens from {}, where the recording policy did not look",
                new.join(", ")
            ),
            Undecidable::TokenSources { dropped, .. } => format!(
                "the request carried several tokens and this policy no longer reads {}: it would find one the event does not describe",
                dropped.join(", ")
            ),
            Undecidable::Provider { name } => format!(
                "the token would be verified by provider '{name}', not as recorded (other settings or another provider): a token is never verified again"
            ),
            Undecidable::RefusedToken => "a refused token this policy could route to another provider".into(),
            Undecidable::Claim { claim } => format!("claim '{claim}' is consulted but not recorded in the event"),
        }
    }
}

/// The event decided again under `policy`.
pub fn decide(policy: &Policy, e: &Event) -> Result<Outcome, Undecidable> {
    let op = match Operation::parse(&e.method, &e.path, &e.host, policy.path_options) {
        Ok(op) => op,
        Err(reason) => return Ok(Outcome::of(policy, &reason, None)),
    };
    if e.recorded.reason == "path_not_canonical" {
        return Err(Undecidable::PathRefusedFirst);
    }
    let facts = e.facts.as_ref().ok_or(Undecidable::NoFacts)?;
    let peer = e.peer.as_deref().and_then(|p| SpiffeId::parse(p).ok());
    let token = match authenticate(policy, e, facts)? {
        Authn::Refused(outcome) => return Ok(outcome),
        Authn::Token(t) => t,
    };
    if let Some(t) = &token {
        check_claims(policy, &op, t, facts)?;
    }
    let d = decide_as(policy, Identity { peer, token }, &op, None);
    Ok(Outcome::of(policy, &d.reason, d.rule))
}

enum Authn {
    Token(Option<TokenIdentity>),
    /// Refused before authorization, as recorded.
    Refused(Outcome),
}

/// The token search and routing of `policy`, from the facts.
fn authenticate(policy: &Policy, e: &Event, facts: &Facts) -> Result<Authn, Undecidable> {
    let ours = &policy.audit.source_labels;
    let theirs = &facts.token_sources;
    let within = ours.iter().all(|l| theirs.contains(l));
    let sources_differ = || Undecidable::TokenSources {
        new: ours
            .iter()
            .filter(|l| !theirs.contains(l))
            .cloned()
            .collect(),
        dropped: theirs
            .iter()
            .filter(|l| !ours.contains(l))
            .cloned()
            .collect(),
    };
    let as_recorded = || {
        Authn::Refused(Outcome {
            rule: None,
            ..e.recorded.clone()
        })
    };
    let Some(t) = &facts.token else {
        let reads_theirs = theirs.iter().all(|l| ours.contains(l));
        return match tokenless(&e.recorded.reason, within, reads_theirs) {
            Some(true) => Ok(as_recorded()),
            Some(false) => Ok(Authn::Token(None)),
            None => Err(sources_differ()),
        };
    };
    if !within {
        return Err(sources_differ());
    }
    let Some(source) = ours.iter().position(|l| *l == t.from) else {
        // We do not read where the token was: no token for us.
        return Ok(Authn::Token(None));
    };
    let candidates: &[usize] = policy
        .token_sources
        .get(source)
        .map_or(&[], |(_, c)| c.as_slice());
    if is_token_error(&e.recorded.reason) {
        return refused_again(policy, e, t, candidates);
    }
    verified(policy, e, facts, t, candidates)
}

/// A token the recording policy verified: routed among `candidates` by its
/// `iss`, and taken as verified when the provider it goes to has the
/// recorded provider's settings (else undecidable: it would be checked
/// differently).
fn verified(
    policy: &Policy,
    e: &Event,
    facts: &Facts,
    t: &TokenFacts,
    candidates: &[usize],
) -> Result<Authn, Undecidable> {
    let judged = t.provider.as_ref();
    let same = |i: usize| {
        let p = policy.providers.get(i);
        matches!((p, judged), (Some(p), Some((_, digest))) if p.digest() == digest)
    };
    let Some(iss) = &e.iss else {
        return Err(Undecidable::NoFacts);
    };
    let chosen = match candidates {
        [only] => *only,
        many => match many
            .iter()
            .copied()
            .find(|i| policy.providers.get(*i).is_some_and(|p| p.issuer() == iss))
        {
            Some(i) => i,
            None => {
                let reason =
                    Reason::InvalidToken(TokenError::IssuerMismatch { found: iss.clone() });
                return Ok(Authn::Refused(Outcome::of(policy, &reason, None)));
            }
        },
    };
    if !same(chosen) {
        let name = policy.providers.get(chosen).map_or("", |p| p.name());
        return Err(Undecidable::Provider {
            name: name.to_string(),
        });
    }
    let claims = claims(e, facts);
    Ok(Authn::Token(Some(TokenIdentity {
        provider: chosen,
        token: Arc::new(VerifiedToken {
            issuer: iss.clone(),
            subject: e.sub.clone(),
            expires_at: 0,
            claims,
        }),
        location: TokenLocation::Header(String::new()),
    })))
}

/// An event without a token fact: `Some(true)` refused as recorded,
/// `Some(false)` no token for this policy either, `None` undecidable (the
/// two policies read different places). `within`: every place this policy
/// reads was read; `reads_theirs`: this policy reads every place they read.
fn tokenless(recorded: &str, within: bool, reads_theirs: bool) -> Option<bool> {
    // Several tokens: found again if we read everywhere they read.
    if recorded == Reason::MultipleTokens.code() {
        return reads_theirs.then_some(true);
    }
    // An empty token, or none: the same if we read where they read.
    match (is_token_error(recorded), within) {
        (_, false) => None,
        (true, true) => reads_theirs.then_some(true),
        (false, true) => Some(false),
    }
}

/// A token the recording policy refused: refused alike when this policy
/// hands it to a provider with the same settings. Which provider that is
/// depends on the token's `iss`: the same when the same providers read that
/// place; else known only when the recording policy chose by it too
/// (several candidates) or there is nothing to choose.
fn refused_again(
    policy: &Policy,
    e: &Event,
    t: &TokenFacts,
    candidates: &[usize],
) -> Result<Authn, Undecidable> {
    let ours: Vec<&str> = candidates
        .iter()
        .filter_map(|i| policy.providers.get(*i).map(|p| p.digest()))
        .collect();
    let theirs = &t.candidates;
    let same_set = ours.len() == theirs.len() && ours.iter().all(|d| theirs.iter().any(|x| x == d));
    let judged = t.provider.as_ref().map(|(_, d)| d.as_str());
    let as_recorded = Authn::Refused(Outcome {
        rule: None,
        ..e.recorded.clone()
    });
    let chose_by_iss = theirs.len() > 1;
    match (judged, ours.as_slice()) {
        _ if same_set => Ok(as_recorded),
        (Some(d), [only]) if *only == d => Ok(as_recorded),
        // The provider with the same settings has the same issuer.
        (Some(d), [_, _, ..]) if chose_by_iss && ours.contains(&d) => Ok(as_recorded),
        // Refused before any provider: its `iss` could not be read, nor
        // can it be now.
        (None, [_, _, ..]) if chose_by_iss && e.recorded.reason != "token_issuer_unknown" => {
            Ok(as_recorded)
        }
        _ => Err(Undecidable::RefusedToken),
    }
}

fn is_token_error(code: &str) -> bool {
    TokenError::CODES.contains(&code) || code == Reason::MultipleTokens.code()
}

/// The recorded claims as a claim set: dotted paths nested again, absent
/// (`null`) ones left out, `iss` and `sub` from the event's own fields.
fn claims(e: &Event, facts: &Facts) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in [("iss", &e.iss), ("sub", &e.sub)] {
        if let Some(v) = v {
            out.insert(k.to_string(), Value::String(v.clone()));
        }
    }
    let mut recorded: Vec<(&String, &Value)> = facts.claims.iter().flatten().collect();
    // Shorter paths first: `a` before `a.b`, which it holds already.
    recorded.sort_by_key(|(k, _)| k.matches('.').count());
    for (path, v) in recorded {
        if !v.is_null() {
            insert(&mut out, path, v);
        }
    }
    out
}

fn insert(map: &mut Map<String, Value>, path: &str, v: &Value) {
    let mut segs = path.split('.').peekable();
    let mut cur = map;
    while let Some(seg) = segs.next() {
        if segs.peek().is_none() {
            cur.insert(seg.to_string(), v.clone());
            return;
        }
        let next = cur
            .entry(seg.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        match next {
            Value::Object(m) => cur = m,
            // Recorded as a scalar: the deeper path is absent in the token.
            _ => return,
        }
    }
}

/// Every claim a role of `policy` may consult for `op` with this token
/// must be in the event.
fn check_claims(
    policy: &Policy,
    op: &Operation<'_>,
    t: &TokenIdentity,
    facts: &Facts,
) -> Result<(), Undecidable> {
    let mut recorded: Vec<String> = vec!["iss".into(), "sub".into()];
    recorded.extend(facts.claims.iter().flatten().map(|(k, _)| k.clone()));
    let roles = policy
        .covering_rules(op.method, &op.host, op.path)
        .flat_map(|(_, r)| match &r.subjects {
            Subjects::Roles(rs) => rs.clone(),
            _ => Vec::new(),
        });
    for i in roles {
        let Some(jwt) = policy.roles.get(i).and_then(|r| r.jwt.as_ref()) else {
            continue;
        };
        if jwt.provider != t.provider {
            continue;
        }
        if let Some(c) = jwt.claims.iter().find(|c| !covered(&recorded, c.claim())) {
            return Err(Undecidable::Claim {
                claim: c.claim().to_string(),
            });
        }
    }
    Ok(())
}
