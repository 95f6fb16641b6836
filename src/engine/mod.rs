//! The decision procedure: request facts in, decision out. Pure: no host
//! calls, no clock; "now" is part of the request.
//!
//! Split like cedar-policy into authentication (who is this?) and
//! authorization (may they?), so the CLI can authorize a hand-written
//! identity (`explain --claims`) with the same code the filter runs.

use crate::engine::cache::TokenCache;
use crate::config::{Effect, TokenSource};
use crate::decision::{Decision, Identity, Reason, TokenIdentity, TokenLocation};
use crate::pattern::hostname::normalize_host;
use crate::jwt::native::SignatureBackend;
use crate::jwt::{peek_issuer, TokenError};
use crate::pattern::path::canonical_path;
use crate::policy::{Policy, Rule, Subjects};
use crate::pattern::spiffe::SpiffeId;

pub mod cache;

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
#[derive(Debug, Clone, Copy)]
pub struct Operation<'a> {
    pub method: &'a str,
    /// Normalized host (see `hostname::normalize_host`).
    pub host: &'a str,
    /// Canonical path without query.
    pub path: &'a str,
}

/// Why each role is or is not held and which rules covered the operation;
/// collected only when asked (CLI `explain`), never on the filter's hot path.
#[derive(Debug, Default, Clone)]
pub struct Trace {
    pub roles: Vec<RoleTrace>,
    pub rules: Vec<RuleTrace>,
}

#[derive(Debug, Clone)]
pub struct RoleTrace {
    pub role: String,
    pub held: bool,
    /// One line per condition, prefixed "ok" or "FAIL".
    pub conditions: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct RuleTrace {
    pub rule: String,
    pub effect: Effect,
    pub covers_operation: bool,
    pub applies_to_caller: bool,
}

/// Full pipeline without a token cache (CLI, tests).
pub fn decide(policy: &Policy, req: &Request<'_>) -> Decision {
    decide_cached(policy, req, &mut TokenCache::disabled())
}

/// Full pipeline used by the filter, with its per-VM cache of verified tokens.
pub fn decide_cached(policy: &Policy, req: &Request<'_>, cache: &mut TokenCache) -> Decision {
    let peer = req.peer.and_then(|p| SpiffeId::parse(p).ok());
    let path = match canonical_path(req.path) {
        Ok(p) => p,
        Err(e) => {
            return denial(
                Reason::PathNotCanonical(e),
                Identity { peer, token: None },
                None,
            )
        }
    };
    let host = normalize_host(req.host);
    let token = match authenticate_token(policy, req, cache) {
        Ok(t) => t,
        Err((reason, location)) => return denial(reason, Identity { peer, token: None }, location),
    };
    let location = token.as_ref().map(|t| t.location.clone());
    let identity = Identity { peer, token };
    let op = Operation {
        method: req.method,
        host: &host,
        path,
    };
    let mut d = authorize(policy, identity, &op, None);
    d.token_location = location;
    d
}

fn denial(reason: Reason, identity: Identity, token_location: Option<TokenLocation>) -> Decision {
    Decision {
        reason,
        rule: None,
        roles: Vec::new(),
        identity,
        token_location,
    }
}

/// Find at most one token and verify it with the provider it belongs to.
pub fn authenticate_token(
    policy: &Policy,
    req: &Request<'_>,
    cache: &mut TokenCache,
) -> Result<Option<TokenIdentity>, (Reason, Option<TokenLocation>)> {
    let Some((providers, token, location)) = find_token(policy, req)? else {
        return Ok(None);
    };
    let fail =
        |e: TokenError, loc: &TokenLocation| Err((Reason::InvalidToken(e), Some(loc.clone())));
    // Cache first: a hit skips base64, JSON and signature work entirely.
    let generation = |i: usize| {
        providers
            .contains(&i)
            .then(|| policy.providers.get(i).map(|p| p.key_generation()))
            .flatten()
    };
    if let Some((provider, token)) = cache.get(token, req.now, generation) {
        return Ok(Some(TokenIdentity {
            provider,
            token,
            location,
        }));
    }
    let provider = match providers {
        [only] => *only,
        many => {
            // Several providers read this location: route by the unverified
            // `iss`. The chosen provider then verifies everything, `iss` included.
            let iss = match peek_issuer(token) {
                Ok(iss) => iss,
                Err(e) => return fail(e, &location),
            };
            match many
                .iter()
                .copied()
                .find(|i| policy.providers.get(*i).is_some_and(|p| p.issuer() == iss))
            {
                Some(i) => i,
                None => return fail(TokenError::IssuerMismatch { found: iss }, &location),
            }
        }
    };
    let Some(p) = policy.providers.get(provider) else {
        return fail(
            TokenError::IssuerMismatch {
                found: String::new(),
            },
            &location,
        );
    };
    match p.verify_with(token, req.now, req.crypto) {
        Ok(verified) => {
            let verified = std::sync::Arc::new(verified);
            cache.put(provider, p.key_generation(), token, verified.clone());
            Ok(Some(TokenIdentity {
                provider,
                token: verified,
                location,
            }))
        }
        Err(e) => fail(e, &location),
    }
}

type Found<'p, 'r> = Option<(&'p [usize], &'r str, TokenLocation)>;

/// Look in every configured location. More than one token in total (two
/// `Authorization` headers, a header plus a query parameter, ...) is refused:
/// parsers disagree on which one wins, and so would we and the upstream.
fn find_token<'p, 'r>(
    policy: &'p Policy,
    req: &Request<'r>,
) -> Result<Found<'p, 'r>, (Reason, Option<TokenLocation>)> {
    let mut found: Found<'p, 'r> = None;
    let mut count = 0usize;
    for (source, providers) in &policy.token_sources {
        let mut take = |token: &'r str, loc: TokenLocation| {
            count += 1;
            if found.is_none() {
                found = Some((providers.as_slice(), token, loc));
            }
        };
        match source {
            TokenSource::Header { name, prefix } => {
                let mut values = req
                    .headers
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v);
                let v = match (values.next(), values.next()) {
                    (None, _) => continue,
                    (Some(v), None) => v,
                    // Two or more values (even if one is another scheme such
                    // as Basic): ambiguous, refused below.
                    (Some(_), Some(_)) => {
                        count += 2 + values.count();
                        continue;
                    }
                };
                let value = v.trim();
                let token = match prefix {
                    None => Some(value),
                    Some(pre) => strip_prefix_ignore_case(value, pre.trim_end()).map(str::trim),
                };
                if let Some(t) = token {
                    take(t, TokenLocation::Header(name.clone()));
                }
            }
            TokenSource::Query(param) => {
                if let Some((_, query)) = req.path.split_once('?') {
                    for pair in query.split('&') {
                        let (k, v) = split_pair(pair);
                        if k == param {
                            take(v, TokenLocation::Query(param.clone()));
                        }
                    }
                }
            }
            TokenSource::Cookie(cookie) => {
                for c in cookie_items(req.headers) {
                    if let Some((ck, cv)) = c.split_once('=') {
                        if ck == cookie {
                            take(cv.trim_matches('"'), TokenLocation::Cookie(cookie.clone()));
                        }
                    }
                }
            }
        }
    }
    if count > 1 {
        return Err((Reason::MultipleTokens, found.map(|(_, _, l)| l)));
    }
    if let Some((_, token, loc)) = &found {
        // Envoy joins repeated headers with ',' (never part of a compact JWS).
        if token.contains(',') {
            return Err((Reason::MultipleTokens, Some(loc.clone())));
        }
        if token.is_empty() {
            return Err((
                Reason::InvalidToken(TokenError::BadStructure { segments: 0 }),
                Some(loc.clone()),
            ));
        }
    }
    Ok(found)
}

/// `key=value` (a bare `key` has an empty value): query parameters and
/// cookies. The filter strips a token with the same split it found it with.
pub(crate) fn split_pair(pair: &str) -> (&str, &str) {
    pair.split_once('=').unwrap_or((pair, ""))
}

/// The trimmed `name=value` items of every `cookie` header.
pub(crate) fn cookie_items(headers: &[(String, String)]) -> impl Iterator<Item = &str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';'))
        .map(str::trim)
}

/// `prefix` is compared without its trailing space, then at least one space
/// must follow (auth schemes are case-insensitive, RFC 9110 §11.1).
fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = value.get(prefix.len()..)?;
    if prefix.is_empty() || rest.starts_with(' ') || rest.is_empty() {
        Some(rest)
    } else {
        None
    }
}

/// Does `identity` hold role `idx`? With a trace, records each condition.
fn holds(
    policy: &Policy,
    idx: usize,
    identity: &Identity,
    trace: Option<&mut Vec<String>>,
) -> bool {
    let Some(role) = policy.roles.get(idx) else {
        return false;
    };
    let mut lines = trace;
    let mut ok = true;
    if let Some(patterns) = &role.principals {
        let hit = identity.peer.as_ref().and_then(|p| {
            patterns
                .iter()
                .find(|pat| pat.matches(p, &policy.local_domains))
        });
        if let Some(l) = lines.as_deref_mut() {
            match (&identity.peer, hit) {
                (None, _) => {
                    l.push("FAIL mTLS principal: no verified SPIFFE peer certificate".into())
                }
                (Some(p), Some(pat)) => l.push(format!("ok   mTLS principal {p} matches {pat}")),
                (Some(p), None) => l.push(format!(
                    "FAIL mTLS principal {p} matches none of [{}]",
                    patterns
                        .iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        ok &= hit.is_some();
        if !ok && lines.is_none() {
            return false;
        }
    }
    if let Some(req) = &role.jwt {
        let provider_name = policy
            .providers
            .get(req.provider)
            .map(|p| p.name())
            .unwrap_or("?");
        match &identity.token {
            Some(t) if t.provider == req.provider => {
                if let Some(l) = lines.as_deref_mut() {
                    l.push(format!("ok   token from provider '{provider_name}'"));
                }
                for c in &req.claims {
                    let pass = c.eval(&t.token.claims);
                    if let Some(l) = lines.as_deref_mut() {
                        l.push(format!(
                            "{} claim {}",
                            if pass { "ok  " } else { "FAIL" },
                            c.describe()
                        ));
                    }
                    ok &= pass;
                    if !ok && lines.is_none() {
                        return false;
                    }
                }
            }
            other => {
                if let Some(l) = lines {
                    l.push(match other {
                        None => format!("FAIL no token (needs provider '{provider_name}')"),
                        Some(_) => {
                            format!("FAIL token is from another provider (needs '{provider_name}')")
                        }
                    });
                }
                ok = false;
            }
        }
    }
    ok
}

/// Roles evaluated on demand: a request pays only for the roles named by the
/// rules that cover it, however many roles the policy has.
struct Held<'p> {
    policy: &'p Policy,
    known: Vec<(usize, bool)>,
}

impl Held<'_> {
    fn get(&mut self, i: usize, identity: &Identity) -> bool {
        if let Some((_, h)) = self.known.iter().find(|(k, _)| *k == i) {
            return *h;
        }
        let h = holds(self.policy, i, identity, None);
        self.known.push((i, h));
        h
    }

    fn applies(&mut self, rule: &Rule, identity: &Identity) -> bool {
        match &rule.subjects {
            Subjects::Public | Subjects::Everyone => true,
            Subjects::Roles(rs) => rs.iter().any(|r| self.get(*r, identity)),
        }
    }
}

/// Every role the identity holds, in policy order. O(roles): used only when
/// the operator forwards roles upstream (`forward.roles_header`).
pub fn held_roles(policy: &Policy, identity: &Identity) -> Vec<String> {
    (0..policy.roles.len())
        .filter(|i| holds(policy, *i, identity, None))
        .filter_map(|i| policy.roles.get(i).map(|r| r.name.clone()))
        .collect()
}

/// Authorize an authenticated identity. Deny rules win; then the first allow
/// rule that covers the operation and applies to the caller; else deny.
pub fn authorize(
    policy: &Policy,
    identity: Identity,
    op: &Operation<'_>,
    trace: Option<&mut Trace>,
) -> Decision {
    let covering: Vec<(usize, &Rule)> =
        policy.covering_rules(op.method, op.host, op.path).collect();
    let mut held = Held {
        policy,
        known: Vec::new(),
    };

    if let Some(t) = trace {
        // Explain mode: evaluate every role and every rule, with reasons.
        for i in 0..policy.roles.len() {
            let mut conditions = Vec::new();
            let h = holds(policy, i, &identity, Some(&mut conditions));
            held.known.push((i, h));
            let role = policy
                .roles
                .get(i)
                .map(|r| r.name.clone())
                .unwrap_or_default();
            t.roles.push(RoleTrace {
                role,
                held: h,
                conditions,
            });
        }
        for (i, r) in policy.rules.iter().enumerate() {
            t.rules.push(RuleTrace {
                rule: r.name.clone(),
                effect: r.effect,
                covers_operation: covering.iter().any(|(c, _)| *c == i),
                applies_to_caller: held.applies(r, &identity),
            });
        }
    }

    let mut verdict: Option<(Reason, Option<&Rule>)> = None;
    if let Some((_, r)) = covering
        .iter()
        .find(|(_, r)| r.effect == Effect::Deny && held.applies(r, &identity))
    {
        verdict = Some((Reason::DeniedByRule, Some(*r)));
    }
    if verdict.is_none() {
        if let Some((_, r)) = covering
            .iter()
            .find(|(_, r)| r.effect == Effect::Allow && held.applies(r, &identity))
        {
            let reason = if r.subjects == Subjects::Public {
                Reason::PublicRule
            } else {
                Reason::RoleGranted
            };
            verdict = Some((reason, Some(*r)));
        }
    }
    let allows = || {
        covering
            .iter()
            .filter(|(_, r)| r.effect == Effect::Allow)
            .map(|(_, r)| *r)
    };
    if verdict.is_none() && identity.token.is_none() {
        let needs_token = |r: &&Rule| match &r.subjects {
            Subjects::Roles(rs) => rs
                .iter()
                .any(|i| policy.roles.get(*i).is_some_and(|role| role.jwt.is_some())),
            _ => false,
        };
        if let Some(r) = allows().find(needs_token) {
            verdict = Some((Reason::TokenMissing, Some(r)));
        }
    }
    let (reason, rule) = verdict.unwrap_or_else(|| match allows().next() {
        Some(r) => (Reason::RoleRequired, Some(r)),
        None => (Reason::NoMatchingRule, None),
    });
    // Report the held roles among those this request depended on.
    let mut known = held.known;
    known.sort_unstable();
    let roles = known
        .iter()
        .filter(|(_, h)| *h)
        .filter_map(|(i, _)| policy.roles.get(*i).map(|r| r.name.clone()))
        .collect();
    Decision {
        reason,
        rule: rule.map(|r| r.name.clone()),
        roles,
        identity,
        token_location: None,
    }
}

#[cfg(test)]
pub(crate) mod tests;
