//! Decisions and their machine-readable reason codes.

use crate::jwt::{TokenError, VerifiedToken};
use crate::pattern::path::PathError;
use crate::pattern::spiffe::SpiffeId;

/// Why a request was allowed or denied. `code()` is the stable string used in
/// responses, audit events and metric names; `status()` the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    RoleGranted,
    PublicRule,
    PathNotCanonical(PathError),
    MultipleTokens,
    TokenMissing,
    InvalidToken(TokenError),
    DeniedByRule,
    RoleRequired,
    NoMatchingRule,
}

impl Reason {
    pub fn code(&self) -> &'static str {
        match self {
            Reason::RoleGranted => "role_granted",
            Reason::PublicRule => "public_rule",
            Reason::PathNotCanonical(_) => "path_not_canonical",
            Reason::MultipleTokens => "multiple_tokens",
            Reason::TokenMissing => "token_missing",
            Reason::InvalidToken(e) => e.code(),
            Reason::DeniedByRule => "denied_by_rule",
            Reason::RoleRequired => "role_required",
            Reason::NoMatchingRule => "no_matching_rule",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Reason::RoleGranted | Reason::PublicRule => 200,
            Reason::PathNotCanonical(_) | Reason::MultipleTokens => 400,
            // No key set for the token's provider yet: the token may be fine,
            // the client should retry (README "Key management").
            Reason::InvalidToken(TokenError::KeysUnavailable) => 503,
            Reason::TokenMissing | Reason::InvalidToken(_) => 401,
            Reason::DeniedByRule | Reason::RoleRequired | Reason::NoMatchingRule => 403,
        }
    }

    pub fn is_allow(&self) -> bool {
        matches!(self, Reason::RoleGranted | Reason::PublicRule)
    }

    /// Every denial code, for pre-defining one counter per reason.
    pub fn all_denial_codes() -> Vec<&'static str> {
        let mut v = vec![
            "path_not_canonical",
            "multiple_tokens",
            "token_missing",
            "denied_by_rule",
            "role_required",
            "no_matching_rule",
        ];
        v.extend(TokenError::CODES);
        v
    }
}

/// Where the token was found, so it can be removed before going upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    Header(String),
    Query(String),
    Cookie(String),
}

#[derive(Debug, Clone)]
pub struct TokenIdentity {
    pub provider: usize,
    /// Shared with the token cache: a hit costs no copy of the claims.
    pub token: std::sync::Arc<VerifiedToken>,
    pub location: TokenLocation,
}

/// Who the caller proved to be. Built only from the peer certificate and a
/// verified token, never from request headers.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub peer: Option<SpiffeId>,
    pub token: Option<TokenIdentity>,
}

#[derive(Debug, Clone)]
pub struct Decision {
    pub reason: Reason,
    /// Name of the deciding rule, if a rule decided.
    pub rule: Option<String>,
    /// Names of the roles the caller holds (empty when authentication failed).
    pub roles: Vec<String>,
    pub identity: Identity,
    /// The token's location when one was presented, even if it failed, so the
    /// filter can still strip it.
    pub token_location: Option<TokenLocation>,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.reason.is_allow()
    }
    pub fn status(&self) -> u16 {
        self.reason.status()
    }
}
