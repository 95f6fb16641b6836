//! Authentication: find at most one token, route it to the provider it
//! belongs to, and verify it (or serve it from the per-VM cache).

use super::cache::TokenCache;
use super::operation::Request;
use crate::decision::{Reason, TokenIdentity};
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

/// The token of the request, verified; `Ok(None)` when there is none.
pub(crate) fn authenticate(
    policy: &Policy,
    req: &Request<'_>,
    cache: &mut TokenCache,
) -> Result<Option<TokenIdentity>, (Reason, Option<TokenLocation>)> {
    let sources = policy.token_sources.iter().map(|(s, _)| s);
    let found = match token::find(sources, req.headers, req.path) {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(None),
        Err(FindError::Multiple(loc)) => return Err((Reason::MultipleTokens, loc)),
        Err(FindError::Empty(loc)) => {
            return Err((
                Reason::InvalidToken(TokenError::BadStructure { segments: 0 }),
                Some(loc),
            ))
        }
    };
    let candidates = policy
        .token_sources
        .get(found.source)
        .map_or(&[][..], |(_, p)| p.as_slice());
    match verify_token(policy, found.token, candidates, req.now, req.crypto, cache) {
        Ok((provider, token)) => Ok(Some(TokenIdentity {
            provider,
            token,
            location: found.location,
        })),
        Err(r) => Err((Reason::InvalidToken(r.error), Some(found.location))),
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
    if let Some(hit) = cache.get(token, now, generation) {
        return Ok(hit);
    }
    let provider = match candidates {
        [only] => *only,
        many => {
            let iss = match peek_issuer(token) {
                Ok(iss) => iss,
                Err(e) => return refused(None, e),
            };
            match many
                .iter()
                .copied()
                .find(|i| policy.providers.get(*i).is_some_and(|p| p.issuer() == iss))
            {
                Some(i) => i,
                None => return refused(None, TokenError::IssuerMismatch { found: iss }),
            }
        }
    };
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
