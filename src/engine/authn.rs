//! Authentication: find at most one token, route it to the provider it
//! belongs to, and verify it (or serve it from the per-VM cache).

use super::cache::TokenCache;
use super::operation::Request;
use crate::config::TokenSource;
use crate::decision::{Reason, TokenIdentity, TokenSeen};
use crate::host::SignatureBackend;
use crate::jwt::{peek_issuer, TokenError, VerifiedToken};
use crate::policy::Policy;
use crate::request::token::{self, FindError, TokenLocation};
use std::sync::Arc;

/// A token that did not verify, and the provider that refused it (`None`
/// when no provider could be chosen for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub provider: Option<usize>,
    pub error: TokenError,
}

/// What authentication established: the verified token, if any, and the
/// token as seen (where it was, who judged it).
#[derive(Debug)]
pub(crate) struct Authn {
    pub token: Option<TokenIdentity>,
    pub seen: Option<TokenSeen>,
}

/// Why authentication refused the request, before any rule.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub reason: Reason,
    pub location: Option<TokenLocation>,
    pub seen: Option<TokenSeen>,
}

/// The token of the request, verified; no token when there is none.
pub(crate) fn authenticate(
    policy: &Policy,
    req: &Request<'_>,
    cache: &mut TokenCache,
) -> Result<Authn, Refusal> {
    authenticate_with(&policy.token_sources, req, &mut |token, _, candidates| {
        verify_token(policy, token, candidates, req.now, req.crypto, cache)
    })
}

/// What checks a found token: `(token, source index, candidates)` to the
/// provider that verified it, or the refusal.
pub(crate) type Verify<'v, 'r> =
    dyn FnMut(&'r str, usize, &[usize]) -> Result<(usize, Arc<VerifiedToken>), Refused> + 'v;

/// Find at most one token in `sources` (each with the providers that read
/// it) and have `verify` check it (one instance for the enforced policy and
/// a shadow: a `dyn` costs one indirect call, a second copy kilobytes).
pub(crate) fn authenticate_with<'r>(
    sources: &[(TokenSource, Vec<usize>)],
    req: &Request<'r>,
    verify: &mut Verify<'_, 'r>,
) -> Result<Authn, Refusal> {
    let refusal = |reason, location, seen| Refusal {
        reason,
        location,
        seen,
    };
    let found = match token::find(sources.iter().map(|(s, _)| s), req.headers, req.path) {
        Ok(Some(f)) => f,
        Ok(None) => {
            return Ok(Authn {
                token: None,
                seen: None,
            })
        }
        Err(FindError::Multiple(loc)) => return Err(refusal(Reason::MultipleTokens, loc, None)),
        Err(FindError::Empty(loc)) => {
            return Err(refusal(
                Reason::InvalidToken(TokenError::BadStructure { segments: 0 }),
                Some(loc),
                None,
            ))
        }
    };
    let candidates = sources
        .get(found.source)
        .map_or(&[][..], |(_, p)| p.as_slice());
    match verify(found.token, found.source, candidates) {
        Ok((provider, token)) => Ok(Authn {
            seen: Some(TokenSeen {
                source: found.source,
                provider: Some(provider),
            }),
            token: Some(TokenIdentity {
                provider,
                token,
                location: found.location,
            }),
        }),
        Err(r) => Err(refusal(
            Reason::InvalidToken(r.error),
            Some(found.location),
            Some(TokenSeen {
                source: found.source,
                provider: r.provider,
            }),
        )),
    }
}

/// Of several `candidates`, the one whose issuer (`issuer_of`) the
/// token's unverified `iss` names; the only one needs no look.
pub(crate) fn route<'p>(
    token: &str,
    candidates: &[usize],
    issuer_of: impl Fn(usize) -> Option<&'p str>,
) -> Result<usize, Refused> {
    let refused = |error| {
        Err(Refused {
            provider: None,
            error,
        })
    };
    match candidates {
        [only] => Ok(*only),
        many => {
            let iss = match peek_issuer(token) {
                Ok(iss) => iss,
                Err(e) => return refused(e),
            };
            match many
                .iter()
                .copied()
                .find(|i| issuer_of(*i) == Some(iss.as_str()))
            {
                Some(i) => Ok(i),
                None => refused(TokenError::IssuerMismatch { found: iss }),
            }
        }
    }
}

/// Verify `token` with one of `candidates` (indices into the policy's
/// providers): the only one, or the one whose issuer the unverified `iss`
/// names. The chosen provider then checks everything, `iss` included.
pub fn verify_token(
    policy: &Policy,
    token: &str,
    candidates: &[usize],
    now: u64,
    crypto: Option<&dyn SignatureBackend>,
    cache: &mut TokenCache,
) -> Result<(usize, Arc<VerifiedToken>), Refused> {
    let refused = |provider, error| Err(Refused { provider, error });
    // Cache first: a hit skips base64, JSON and signature work entirely.
    let generation = |i: usize| {
        candidates
            .contains(&i)
            .then(|| policy.providers.get(i).map(|p| p.key_generation()))
            .flatten()
    };
    if let Some(hit) = cache.get(token, now, &generation) {
        return Ok(hit);
    }
    let provider = route(token, candidates, |i| {
        policy.providers.get(i).map(|p| p.issuer())
    })?;
    let Some(p) = policy.providers.get(provider) else {
        return refused(
            None,
            TokenError::IssuerMismatch {
                found: String::new(),
            },
        );
    };
    match p.verify_with(token, now, crypto) {
        Ok(verified) => {
            let verified = Arc::new(verified);
            cache.put(provider, p.key_generation(), token, verified.clone());
            Ok((provider, verified))
        }
        Err(e) => refused(Some(provider), e),
    }
}
