//! Caller classes: every distinct way a caller can look to two policies.
//! See docs/diff.md "Callers".
//!
//! A decision depends on the caller only through the roles it holds,
//! whether it presented a token, and whether that token was accepted. The
//! roles depend on the peer's SPIFFE ID (compared part by part with the
//! principal patterns) and on the token's issuer and claims. So the
//! candidates are: no peer, and one SPIFFE ID per combination of trust
//! domain, namespace and service account the patterns name (plus names no
//! pattern names); no token, a token of an issuer neither side trusts, and
//! per trusted issuer the claim sets of `claims` crossed with audiences and
//! lifetimes each side accepts or refuses. Each candidate is judged by the
//! engine itself (`held_roles`, the providers' claim checks); candidates
//! that look the same to both sides are one class.

use super::claims::{claim_sets, Test};
use super::error::DiffError;
use super::side::{describe_role, role_key, Side};
use crate::config::TokenSource;
use crate::decision::{Identity, TokenIdentity};
use crate::engine::held_roles;
use crate::jwt::TokenError;
use crate::pattern::spiffe::SpiffeId;
use crate::policy::Policy;
use crate::request::token::TokenLocation;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// The clock of every example (2026-01-01T00:00:00Z); examples' tokens are
/// issued at this time (`explain --now`).
pub const NOW: u64 = 1_767_225_600;
/// The issuer of the example token neither side trusts.
pub const UNTRUSTED_ISSUER: &str = "https://untrusted-issuer.invalid";
const UNTRUSTED_AUDIENCE: &str = "https://untrusted.invalid";
const MAX_IDENTITIES: usize = 250_000;
const MAX_CLASSES: usize = 20_000;

/// A token as the diff presents it: where it is sent and its claims,
/// taken as signed by a key its issuer's provider holds.
#[derive(Debug, Clone)]
pub struct TokenExample {
    pub issuer: String,
    pub location: TokenSource,
    pub claims: Map<String, Value>,
}

/// One concrete caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub peer: Option<SpiffeId>,
    pub token: Option<TokenExample>,
}

/// What a side made of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthKind {
    NoToken,
    /// No provider of that side reads the token's location.
    Ignored,
    Verified,
    /// Refused, with this reason code.
    Refused(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokenKind {
    None,
    Untrusted,
    /// Index into `CallerSpace::issuers`.
    Issuer(usize),
}

/// How a caller looks to both sides; equal features, equal decisions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Features {
    pub peer: bool,
    pub token: TokenKind,
    pub auth: [AuthKind; 2],
    /// Per role feature: whether the caller meets the role's conditions.
    pub roles: Vec<bool>,
}

/// The identity a side's engine authorizes, or the token refusal that
/// decides before authorization.
#[derive(Debug, Clone)]
pub enum View {
    Identity(Identity),
    Refused(TokenError),
}

/// A role definition. Roles with the same name and definition on both
/// sides are one feature; a changed role is two (one per side).
#[derive(Debug, Clone)]
pub struct RoleFeature {
    pub name: String,
    pub description: String,
    /// The role needs a token (so a caller holding it presented one).
    pub needs_token: bool,
    /// The role's index in the old and the new policy.
    pub index: [Option<usize>; 2],
}

#[derive(Debug, Clone)]
pub struct CallerClass {
    pub example: Caller,
    pub features: Features,
    pub views: [View; 2],
}

#[derive(Debug)]
pub struct CallerSpace {
    pub issuers: Vec<String>,
    pub roles: Vec<RoleFeature>,
    pub classes: Vec<CallerClass>,
    /// What the enumeration leaves out (docs/diff.md "Limits").
    pub caveats: Vec<String>,
}

/// What a side's authentication makes of a token, as `engine::authn`
/// routes it (by location, then issuer), with the provider's own claim
/// checks standing in for the signature check the example cannot have.
pub enum Auth {
    NoToken,
    Ignored,
    Verified(TokenIdentity),
    Refused(TokenError),
}

impl Auth {
    pub fn kind(&self) -> AuthKind {
        match self {
            Auth::NoToken => AuthKind::NoToken,
            Auth::Ignored => AuthKind::Ignored,
            Auth::Verified(_) => AuthKind::Verified,
            Auth::Refused(e) => AuthKind::Refused(e.code()),
        }
    }
}

fn location(source: &TokenSource) -> TokenLocation {
    match source {
        TokenSource::Header { name, .. } => TokenLocation::Header(name.clone()),
        TokenSource::Query(q) => TokenLocation::Query(q.clone()),
        TokenSource::Cookie(c) => TokenLocation::Cookie(c.clone()),
    }
}

pub fn authenticate(policy: &Policy, token: Option<&TokenExample>, now: u64) -> Auth {
    let Some(t) = token else {
        return Auth::NoToken;
    };
    let Some((_, candidates)) = policy.token_sources.iter().find(|(s, _)| *s == t.location) else {
        return Auth::Ignored;
    };
    let chosen = match candidates.as_slice() {
        [only] => Some(*only),
        many => many.iter().copied().find(|i| {
            policy
                .providers
                .get(*i)
                .is_some_and(|p| p.issuer() == t.issuer)
        }),
    };
    let Some((i, p)) = chosen.and_then(|i| policy.providers.get(i).map(|p| (i, p))) else {
        return Auth::Refused(TokenError::IssuerMismatch {
            found: t.issuer.clone(),
        });
    };
    match p.check_claims(&t.claims, now) {
        Ok(v) => Auth::Verified(TokenIdentity {
            provider: i,
            token: Arc::new(v),
            location: location(&t.location),
        }),
        Err(e) => Auth::Refused(e),
    }
}

fn role_features(sides: &[Side<'_>; 2]) -> Vec<RoleFeature> {
    let mut out: Vec<(RoleFeature, String)> = Vec::new();
    for (k, side) in sides.iter().enumerate() {
        for (i, role) in side.policy.roles.iter().enumerate() {
            let key = role_key(side.policy, i);
            match out
                .iter_mut()
                .find(|(f, fk)| f.name == role.name && *fk == key && f.index.get(k) == Some(&None))
            {
                Some((f, _)) => {
                    if let Some(x) = f.index.get_mut(k) {
                        *x = Some(i);
                    }
                }
                None => {
                    let mut index = [None, None];
                    if let Some(x) = index.get_mut(k) {
                        *x = Some(i);
                    }
                    let description = describe_role(side.policy, i);
                    out.push((
                        RoleFeature {
                            name: role.name.clone(),
                            description,
                            needs_token: role.jwt.is_some(),
                            index,
                        },
                        key,
                    ));
                }
            }
        }
    }
    out.into_iter().map(|(f, _)| f).collect()
}

/// `spiffe://<td>/...` parts the principal patterns name: (trust domain or
/// `None` for the local ones, namespace, service account).
fn pattern_parts(text: &str) -> (Option<String>, Option<String>, Option<String>) {
    let rest = text.strip_prefix("spiffe://").unwrap_or(text);
    let (td, path) = rest.split_once('/').unwrap_or((rest, ""));
    let td = (td != "<local>").then(|| td.to_string());
    let segs: Vec<&str> = path.split('/').collect();
    match segs.as_slice() {
        ["ns", ns, "sa", sa] => (td, Some((*ns).to_string()), Some((*sa).to_string())),
        ["ns", ns, ..] => (td, Some((*ns).to_string()), None),
        _ => (td, None, None),
    }
}

fn fresh(taken: &BTreeSet<String>, base: &str) -> String {
    (0..)
        .map(|i| {
            if i == 0 {
                base.to_string()
            } else {
                format!("{base}-{i}")
            }
        })
        .find(|c| !taken.contains(c))
        .unwrap_or_default()
}

/// One peer per combination of principal conditions a SPIFFE ID can meet.
fn peers(sides: &[Side<'_>; 2]) -> Vec<Option<SpiffeId>> {
    let mut tds: Vec<String> = Vec::new();
    let mut by_ns: Vec<(String, BTreeSet<String>)> = Vec::new();
    for side in sides {
        tds.extend(side.policy.local_domains.iter().cloned());
    }
    for side in sides {
        for role in &side.policy.roles {
            for p in role.principals.iter().flatten() {
                let (td, ns, sa) = pattern_parts(&p.to_string());
                tds.extend(td);
                if let Some(ns) = ns {
                    let at = match by_ns.iter().position(|(n, _)| *n == ns) {
                        Some(i) => i,
                        None => {
                            by_ns.push((ns, BTreeSet::new()));
                            by_ns.len() - 1
                        }
                    };
                    if let (Some(sa), Some((_, set))) = (sa, by_ns.get_mut(at)) {
                        set.insert(sa);
                    }
                }
            }
        }
    }
    let mut seen = BTreeSet::new();
    tds.retain(|t| seen.insert(t.clone()));
    tds.push(fresh(&seen, "unlisted.example"));
    let names: BTreeSet<String> = by_ns.iter().map(|(n, _)| n.clone()).collect();
    by_ns.push((fresh(&names, "unlisted"), BTreeSet::new()));
    let vector = |id: &SpiffeId| -> Vec<Option<bool>> {
        sides
            .iter()
            .flat_map(|s| {
                s.policy.roles.iter().map(|r| {
                    r.principals
                        .as_ref()
                        .map(|ps| ps.iter().any(|p| p.matches(id, &s.policy.local_domains)))
                })
            })
            .collect()
    };
    let mut out = vec![None];
    let mut found = BTreeSet::new();
    for td in &tds {
        for (ns, sas) in &by_ns {
            let mut list: Vec<String> = sas.iter().cloned().collect();
            list.push(fresh(sas, "unlisted"));
            for sa in list {
                if let Ok(id) = SpiffeId::new(td, ns, &sa) {
                    if found.insert(vector(&id)) {
                        out.push(Some(id));
                    }
                }
            }
        }
    }
    out
}

/// Audiences to try for an issuer: one each side accepts, one only one side
/// accepts, both sides' in one array, and one neither accepts.
fn audiences(sides: &[Side<'_>; 2], issuer: &str) -> Vec<Value> {
    let lists: Vec<Vec<String>> = sides
        .iter()
        .map(|s| {
            s.provider_of(issuer)
                .and_then(|i| s.policy.providers.get(i))
                .map(|p| p.audiences().to_vec())
                .unwrap_or_default()
        })
        .collect();
    let (a, b) = (
        lists.first().cloned().unwrap_or_default(),
        lists.get(1).cloned().unwrap_or_default(),
    );
    let mut out: Vec<Value> = Vec::new();
    let mut push = |v: Value| {
        if !out.contains(&v) {
            out.push(v);
        }
    };
    if let Some(x) = a.iter().find(|x| b.contains(x)) {
        push(json!(x));
    }
    if let Some(x) = a.iter().find(|x| !b.contains(x)) {
        push(json!(x));
    }
    if let Some(x) = b.iter().find(|x| !a.contains(x)) {
        push(json!(x));
    }
    if let (Some(x), Some(y), None) = (a.first(), b.first(), a.iter().find(|x| b.contains(x))) {
        push(json!([x, y]));
    }
    let all: BTreeSet<String> = a.iter().chain(&b).cloned().collect();
    push(json!(fresh(&all, "https://unlisted-audience.invalid")));
    out
}

/// Token lifetimes to try: the shorter limit (both sides accept it when
/// the audience fits), the longer one (only its side does), and one over
/// both (neither does).
fn lifetimes(sides: &[Side<'_>; 2], issuer: &str) -> Vec<u64> {
    let mut out: Vec<u64> = sides
        .iter()
        .filter_map(|s| {
            s.provider_of(issuer)
                .and_then(|i| s.policy.providers.get(i))
                .map(|p| p.max_lifetime_seconds())
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    if let Some(max) = out.last().copied() {
        out.push(max + 1);
    }
    out
}

/// Tokens every side refuses for a reason of their own (whatever their
/// audience and lifetime settings): expired, not yet valid, without `exp`,
/// with a non-string `sub`. Their claims cannot matter (no side accepts
/// them), but which side refuses, and why, can.
fn refused_variants(issuer: &str, aud: &Value) -> Vec<Map<String, Value>> {
    let base = |extra: Value| {
        let mut c = json!({"iss": issuer, "aud": aud, "iat": NOW - 7200, "exp": NOW - 3600});
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                if v.is_null() {
                    c.remove(k);
                } else {
                    c.insert(k.clone(), v.clone());
                }
            }
        }
        c.as_object().cloned().unwrap_or_default()
    };
    vec![
        base(json!({})),
        base(json!({"iat": NOW, "nbf": NOW + 3600, "exp": NOW + 3660})),
        base(json!({"iat": NOW, "exp": null})),
        base(json!({"iat": NOW, "exp": NOW + 60, "sub": 1})),
    ]
}

fn source_of(sides: &[Side<'_>; 2], issuer: &str) -> TokenSource {
    sides
        .iter()
        .find_map(|s| {
            s.provider_of(issuer)
                .and_then(|i| s.policy.providers.get(i))
                .and_then(|p| p.sources().first().cloned())
        })
        .unwrap_or(TokenSource::Header {
            name: "authorization".into(),
            prefix: Some("Bearer ".into()),
        })
}

/// Every token to try: none, one of an untrusted issuer, and per trusted
/// issuer its claim sets crossed with audiences and lifetimes.
fn tokens(
    sides: &[Side<'_>; 2],
    issuers: &[String],
    caveats: &mut Vec<String>,
) -> Result<Vec<Option<TokenExample>>, DiffError> {
    let mut out = vec![None];
    let untrusted = TokenExample {
        issuer: UNTRUSTED_ISSUER.into(),
        location: source_of(sides, UNTRUSTED_ISSUER),
        claims:
            json!({"iss": UNTRUSTED_ISSUER, "aud": UNTRUSTED_AUDIENCE, "iat": NOW, "exp": NOW + 60})
                .as_object()
                .cloned()
                .unwrap_or_default(),
    };
    out.push(Some(untrusted));
    for issuer in issuers {
        let mut tests = Vec::new();
        let mut nroles = 0;
        for side in sides {
            for (i, role) in side.policy.roles.iter().enumerate() {
                if side.role_issuer(i) != Some(issuer.as_str()) {
                    continue;
                }
                let (Some(jwt), Some(cfg)) = (
                    &role.jwt,
                    side.config.roles.get(i).and_then(|r| r.jwt.as_ref()),
                ) else {
                    continue;
                };
                for (test, config) in jwt.claims.iter().zip(&cfg.claims) {
                    tests.push(Test {
                        role: nroles,
                        test,
                        config,
                    });
                }
                nroles += 1;
            }
        }
        let (sets, skipped) = claim_sets(&tests, nroles)?;
        for s in skipped {
            caveats.push(format!(
                "a claim condition on the registered claim '{s}' (tokens of {issuer}) is evaluated only on the examples' own '{s}' values: callers who need other values are not enumerated"
            ));
        }
        let location = source_of(sides, issuer);
        for aud in audiences(sides, issuer) {
            for claims in refused_variants(issuer, &aud) {
                out.push(Some(TokenExample {
                    issuer: issuer.clone(),
                    location: location.clone(),
                    claims,
                }));
            }
        }
        for (claims, _) in &sets {
            for aud in audiences(sides, issuer) {
                for life in lifetimes(sides, issuer) {
                    let mut c = claims.clone();
                    c.insert("iss".into(), json!(issuer));
                    c.insert("aud".into(), aud.clone());
                    c.insert("iat".into(), json!(NOW));
                    c.insert("exp".into(), json!(NOW + life));
                    out.push(Some(TokenExample {
                        issuer: issuer.clone(),
                        location: location.clone(),
                        claims: c,
                    }));
                }
            }
        }
    }
    Ok(out)
}

/// A token candidate and what each side's authentication makes of it.
struct Judged {
    token: Option<TokenExample>,
    kind: TokenKind,
    auth: [Auth; 2],
}

impl CallerSpace {
    pub fn build(sides: &[Side<'_>; 2]) -> Result<CallerSpace, DiffError> {
        let mut issuers: Vec<String> = Vec::new();
        for s in sides {
            for p in &s.policy.providers {
                if !issuers.iter().any(|i| i == p.issuer()) {
                    issuers.push(p.issuer().to_string());
                }
            }
        }
        let roles = role_features(sides);
        let mut caveats = Vec::new();
        let judged: Vec<Judged> = tokens(sides, &issuers, &mut caveats)?
            .into_iter()
            .map(|token| Judged {
                kind: match &token {
                    None => TokenKind::None,
                    Some(t) => issuers
                        .iter()
                        .position(|i| *i == t.issuer)
                        .map_or(TokenKind::Untrusted, TokenKind::Issuer),
                },
                auth: sides
                    .each_ref()
                    .map(|s| authenticate(s.policy, token.as_ref(), NOW)),
                token,
            })
            .collect();
        let peers = peers(sides);
        if peers.len().saturating_mul(judged.len()) > MAX_IDENTITIES {
            return Err(DiffError::TooComplex(format!(
                "{} peers and {} tokens make more than {MAX_IDENTITIES} callers to tell apart",
                peers.len(),
                judged.len()
            )));
        }
        let mut space = CallerSpace {
            issuers,
            roles,
            classes: Vec::new(),
            caveats,
        };
        let mut index: HashMap<Features, usize> = HashMap::new();
        for peer in &peers {
            for j in &judged {
                let (features, views) = space.judge(sides, peer, j);
                if index.contains_key(&features) {
                    continue;
                }
                index.insert(features.clone(), space.classes.len());
                space.classes.push(CallerClass {
                    example: Caller {
                        peer: peer.clone(),
                        token: j.token.clone(),
                    },
                    features,
                    views,
                });
                if space.classes.len() > MAX_CLASSES {
                    return Err(DiffError::TooComplex(format!(
                        "the roles combine into more than {MAX_CLASSES} caller classes"
                    )));
                }
            }
        }
        Ok(space)
    }

    fn judge(
        &self,
        sides: &[Side<'_>; 2],
        peer: &Option<SpiffeId>,
        j: &Judged,
    ) -> (Features, [View; 2]) {
        let views = j.auth.each_ref().map(|a| match a {
            Auth::Refused(e) => View::Refused(e.clone()),
            Auth::Verified(t) => View::Identity(Identity {
                peer: peer.clone(),
                token: Some(t.clone()),
            }),
            Auth::NoToken | Auth::Ignored => View::Identity(Identity {
                peer: peer.clone(),
                token: None,
            }),
        });
        // Roles as each side authorizes them: a side that refuses the
        // token authorizes nobody, so its roles cannot matter.
        let held: Vec<Option<Vec<usize>>> = sides
            .iter()
            .zip(&views)
            .map(|(s, v)| match v {
                View::Identity(id) => Some(held_roles(s.policy, id)),
                View::Refused(_) => None,
            })
            .collect();
        let roles = self
            .roles
            .iter()
            .map(|f| {
                f.index
                    .iter()
                    .zip(&held)
                    .any(|(i, h)| matches!((i, h), (Some(i), Some(h)) if h.contains(i)))
            })
            .collect();
        let features = Features {
            peer: peer.is_some(),
            token: j.kind.clone(),
            auth: j.auth.each_ref().map(Auth::kind),
            roles,
        };
        (features, views)
    }

    /// The class of a concrete caller (`None` would mean a class is
    /// missing, which the property test checks never happens).
    pub fn locate(&self, sides: &[Side<'_>; 2], caller: &Caller) -> Option<usize> {
        let token = caller.token.as_ref();
        let j = Judged {
            kind: match token {
                None => TokenKind::None,
                Some(t) => self
                    .issuers
                    .iter()
                    .position(|i| *i == t.issuer)
                    .map_or(TokenKind::Untrusted, TokenKind::Issuer),
            },
            auth: sides.each_ref().map(|s| authenticate(s.policy, token, NOW)),
            token: caller.token.clone(),
        };
        let (features, _) = self.judge(sides, &caller.peer, &j);
        self.classes.iter().position(|c| c.features == features)
    }
}
