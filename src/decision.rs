//! Decisions, their machine-readable reason codes, and the reply a denied
//! request gets. A `Decision` is final when the engine returns it: the
//! filter, `explain`, `test` and the audit event all read it as is.

use crate::json::write::Object;
use crate::jwt::{TokenError, VerifiedToken};
use crate::pattern::path::PathError;
use crate::pattern::spiffe::SpiffeId;
use crate::request::token::TokenLocation;
use std::sync::Arc;

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
            // the client should retry (docs/operations.md "Key management").
            Reason::InvalidToken(TokenError::KeysUnavailable) => 503,
            Reason::TokenMissing | Reason::InvalidToken(_) => 401,
            Reason::DeniedByRule | Reason::RoleRequired | Reason::NoMatchingRule => 403,
        }
    }

    pub fn is_allow(&self) -> bool {
        matches!(self, Reason::RoleGranted | Reason::PublicRule)
    }

    /// Whether the request got as far as authorization (a well-formed path
    /// and, if presented, a valid token). Only then does the caller hold roles.
    pub fn reached_authorization(&self) -> bool {
        !matches!(
            self,
            Reason::PathNotCanonical(_) | Reason::MultipleTokens | Reason::InvalidToken(_)
        )
    }

    /// Every denial code, for pre-defining one counter per reason; a
    /// denial's [`denial_index`](Reason::denial_index) is its position here.
    pub fn all_denial_codes() -> Vec<&'static str> {
        let mut v = OWN_DENIALS.to_vec();
        v.extend(TokenError::CODES);
        v
    }

    /// The position of this denial's code in [`all_denial_codes`](Reason::all_denial_codes);
    /// `None` for an allow.
    pub fn denial_index(&self) -> Option<usize> {
        let own = |i| Some(i);
        match self {
            Reason::RoleGranted | Reason::PublicRule => None,
            Reason::PathNotCanonical(_) => own(0),
            Reason::MultipleTokens => own(1),
            Reason::TokenMissing => own(2),
            Reason::DeniedByRule => own(3),
            Reason::RoleRequired => own(4),
            Reason::NoMatchingRule => own(5),
            Reason::InvalidToken(e) => TokenError::CODES
                .iter()
                .position(|c| *c == e.code())
                .map(|i| OWN_DENIALS.len() + i),
        }
    }

    /// The `WWW-Authenticate` challenge of a 400/401 (RFC 6750 §3).
    fn challenge(&self) -> Option<&'static str> {
        match self {
            Reason::TokenMissing => Some("Bearer realm=\"oam-authz\""),
            // jwks_unavailable (503): nothing is wrong with the token.
            Reason::InvalidToken(TokenError::KeysUnavailable) => None,
            Reason::InvalidToken(_) => Some("Bearer realm=\"oam-authz\", error=\"invalid_token\""),
            Reason::MultipleTokens => Some("Bearer realm=\"oam-authz\", error=\"invalid_request\""),
            _ => None,
        }
    }
}

/// The denial codes that are not token errors, in `denial_index` order.
const OWN_DENIALS: [&str; 6] = [
    "path_not_canonical",
    "multiple_tokens",
    "token_missing",
    "denied_by_rule",
    "role_required",
    "no_matching_rule",
];

#[derive(Debug, Clone)]
pub struct TokenIdentity {
    /// Index into `Policy::providers`.
    pub provider: usize,
    /// Shared with the token cache: a hit costs no copy of the claims.
    pub token: Arc<VerifiedToken>,
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
    /// Index into `Policy::rules` of the deciding rule, if a rule decided.
    pub rule: Option<usize>,
    /// Indices into `Policy::roles` of the roles the caller holds, ascending:
    /// those the decision consulted, or every held role when the policy
    /// forwards roles upstream. Empty when authentication failed.
    pub roles: Vec<usize>,
    pub identity: Identity,
    /// The token's location when one was presented, even if it failed, so the
    /// filter can still strip it.
    pub token_location: Option<TokenLocation>,
}

/// The local reply to a denied request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: String,
}

impl Decision {
    pub fn allowed(&self) -> bool {
        self.reason.is_allow()
    }
    pub fn status(&self) -> u16 {
        self.reason.status()
    }

    /// What a client is told when this decision denies: the status, a JSON
    /// body with the error word, the reason code and the request id (nothing
    /// internal), and the headers that go with them.
    pub fn reply(&self, request_id: &str) -> Reply {
        let status = self.status();
        let error = match status {
            400 => "bad_request",
            401 => "unauthorized",
            503 => "unavailable",
            _ => "forbidden",
        };
        let mut body = String::with_capacity(96);
        Object::new(&mut body)
            .str("error", error)
            .str("reason", self.reason.code())
            .str("request_id", request_id)
            .end();
        let mut headers = vec![
            ("content-type", "application/json"),
            ("x-oam-authz-reason", self.reason.code()),
            ("cache-control", "no-store"),
        ];
        if let Some(w) = self.reason.challenge() {
            headers.push(("www-authenticate", w));
        }
        if status == 503 {
            headers.push(("retry-after", "1"));
        }
        Reply {
            status,
            headers,
            body,
        }
    }
}
