//! The shadow policy's decision, on the facts the enforced policy
//! established (docs/policy.md "Shadow policy"): the same peer, the same
//! operation, and every token the enforced policy verified taken as
//! verified, never checked twice.
//!
//! Two ways, chosen at load (`Shadow::shares_authentication`):
//! - the shadow reads tokens from the same places, with the same providers
//!   (the usual case: only roles or rules changed): the enforced
//!   authentication is the shadow's, and the shadow only authorizes;
//! - otherwise the shadow looks for the token itself and routes it among
//!   its own providers; a provider identical to an enforced one answers
//!   from the enforced verification (the shared token cache, or the
//!   enforced refusal of the same token), and a provider of the shadow
//!   only verifies its token itself, cached like any other.

use super::authn::{self, Authn, Refusal, Refused};
use super::authz::{verdict, Caller};
use super::cache::TokenCache;
use super::operation::{Operation, Request};
use crate::config::TokenSource;
use crate::decision::{Reason, ShadowDecision, TokenSeen};
use crate::jwt::{TokenError, VerifiedToken};
use crate::pattern::spiffe::SpiffeId;
use crate::policy::provider::Provider;
use crate::policy::shadow::Verifier;
use crate::policy::{Policy, Shadow};
use std::sync::Arc;

/// Token-cache ids of providers of the shadow only: past any index of an
/// enforced provider (those use their index), so the two never mix.
const OWN_CACHE_IDS: usize = 1 << 24;

/// The shadow's decision. `enforced` is the enforced authentication of
/// this request, `peer` its peer.
pub fn decide(
    shadow: &Shadow,
    policy: &Policy,
    req: &Request<'_>,
    op: &Operation<'_>,
    peer: Option<&SpiffeId>,
    enforced: &Result<Authn, Refusal>,
    cache: &mut TokenCache,
) -> ShadowDecision {
    let judge = |token: Option<(usize, &VerifiedToken)>| {
        let (reason, rule) = verdict(&shadow.policy, Caller { peer, token }, op);
        ShadowDecision::of(&reason, rule)
    };
    if shadow.shares_authentication {
        return match enforced {
            Ok(a) => judge(a.token.as_ref().and_then(|t| {
                let j = shadow.twin_of.get(t.provider).copied().flatten()?;
                Some((j, &*t.token))
            })),
            Err(r) => ShadowDecision::of(&r.reason, None),
        };
    }
    // What the enforced policy already refused: the same token from the
    // same place, judged by the same provider, is refused alike.
    let known = match enforced {
        Err(Refusal {
            reason: Reason::InvalidToken(error),
            seen:
                Some(TokenSeen {
                    source,
                    provider: Some(p),
                }),
            ..
        }) => policy.token_sources.get(*source).map(|(s, _)| Known {
            source: s,
            provider: *p,
            error,
        }),
        _ => None,
    };
    let sources = &shadow.policy.token_sources;
    // The enforced refusal, when the shadow's verification repeats it.
    let mut repeated: Option<&TokenError> = None;
    let found = authn::authenticate_with(sources, req, &mut |token, source, candidates| {
        let source = sources.get(source).map(|(s, _)| s);
        let known = known.filter(|k| Some(k.source) == source);
        verify(
            shadow,
            policy,
            token,
            candidates,
            req,
            cache,
            known,
            &mut repeated,
        )
    });
    match (found, repeated) {
        (Ok(a), _) => judge(a.token.as_ref().map(|t| (t.provider, &*t.token))),
        (Err(_), Some(e)) => ShadowDecision::refused_token(e),
        (Err(r), None) => ShadowDecision::of(&r.reason, None),
    }
}

/// An enforced refusal of the token at `source` by enforced `provider`.
#[derive(Debug, Clone, Copy)]
struct Known<'a> {
    source: &'a TokenSource,
    provider: usize,
    error: &'a TokenError,
}

/// Verify `token` for the shadow among its `candidates` (shadow provider
/// indices); the result names the shadow provider. When the token goes to
/// the provider that `known` says refused it, that refusal is the answer:
/// it is put in `repeated` (the `Refused` returned then carries no error
/// of its own).
#[allow(clippy::too_many_arguments)]
fn verify<'k>(
    shadow: &Shadow,
    policy: &Policy,
    token: &str,
    candidates: &[usize],
    req: &Request<'_>,
    cache: &mut TokenCache,
    known: Option<Known<'k>>,
    repeated: &mut Option<&'k TokenError>,
) -> Result<(usize, Arc<VerifiedToken>), Refused> {
    // Shadow provider j: the provider that verifies its tokens, its cache id.
    let verifier = |j: usize| -> Option<(&Provider, usize)> {
        match shadow.verifiers.get(j)? {
            Verifier::Enforced(i) => Some((policy.providers.get(*i)?, *i)),
            Verifier::Own => Some((shadow.policy.providers.get(j)?, OWN_CACHE_IDS + j)),
        }
    };
    let by_id = |id: usize| {
        candidates
            .iter()
            .copied()
            .find(|j| verifier(*j).is_some_and(|(_, c)| c == id))
    };
    let generation = |id: usize| {
        by_id(id)
            .and_then(verifier)
            .map(|(p, _)| p.key_generation())
    };
    if let Some((id, hit)) = cache.get(token, req.now, &generation) {
        if let Some(j) = by_id(id) {
            return Ok((j, hit));
        }
    }
    let j = authn::route(token, candidates, |j| {
        shadow.policy.providers.get(j).map(Provider::issuer)
    })?;
    let Some((p, id)) = verifier(j) else {
        return Err(Refused {
            provider: None,
            error: TokenError::IssuerMismatch {
                found: String::new(),
            },
        });
    };
    if let Some(k) =
        known.filter(|k| shadow.verifiers.get(j) == Some(&Verifier::Enforced(k.provider)))
    {
        *repeated = Some(k.error);
        return Err(Refused {
            provider: Some(j),
            error: TokenError::KeysUnavailable,
        });
    }
    match p.verify_with(token, req.now, req.crypto) {
        Ok(v) => {
            let v = Arc::new(v);
            cache.put(id, p.key_generation(), token, v.clone());
            Ok((j, v))
        }
        Err(error) => Err(Refused {
            provider: Some(j),
            error,
        }),
    }
}

#[cfg(test)]
mod tests;
