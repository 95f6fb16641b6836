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
            Reason::InvalidToken(e) => token_status(e),
            Reason::TokenMissing => 401,
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

/// The status of a refused token.
pub fn token_status(e: &TokenError) -> u16 {
    match e {
        // No key set for the token's provider yet: the token may be fine,
        // the client should retry (docs/operations.md "Key management").
        TokenError::KeysUnavailable => 503,
        _ => 401,
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

/// The one token a request carried, verified or refused: where it was
/// found and which provider judged it (for the audit event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenSeen {
    /// Index into `Policy::token_sources`.
    pub source: usize,
    /// Index into `Policy::providers`; `None` when no provider could be
    /// chosen for it.
    pub provider: Option<usize>,
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
    /// The token as the filter's authentication saw it (`None` in the CLI,
    /// which is handed a token or claims directly).
    pub token_seen: Option<TokenSeen>,
}

/// What a shadow policy would have decided (docs/policy.md "Shadow
/// policy"): never enforced, only compared and reported, so it keeps only
/// what is reported of its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShadowDecision {
    /// `Reason::code`.
    pub reason: &'static str,
    pub status: u16,
    pub allowed: bool,
    /// Index into the shadow's rules.
    pub rule: Option<usize>,
}

impl ShadowDecision {
    pub fn of(reason: &Reason, rule: Option<usize>) -> ShadowDecision {
        ShadowDecision {
            reason: reason.code(),
            status: reason.status(),
            allowed: reason.is_allow(),
            rule,
        }
    }

    /// A refused token (`Reason::InvalidToken`), without owning the error.
    pub fn refused_token(e: &TokenError) -> ShadowDecision {
        ShadowDecision {
            reason: e.code(),
            status: token_status(e),
            allowed: false,
            rule: None,
        }
    }
}

/// How a shadow decision differs from the enforced one. Two decisions
/// differ when one allows and the other denies, or when their reason codes
/// differ; a different deciding rule alone is no change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    AllowToDeny,
    DenyToAllow,
    ReasonChanged,
}

impl Change {
    pub const ALL: [Change; 3] = [
        Change::AllowToDeny,
        Change::DenyToAllow,
        Change::ReasonChanged,
    ];

    /// The change from decision `a` to decision `b`, each given as
    /// (allowed, reason code).
    pub fn between(a: (bool, &str), b: (bool, &str)) -> Option<Change> {
        match (a.0, b.0) {
            (true, false) => Some(Change::AllowToDeny),
            (false, true) => Some(Change::DenyToAllow),
            _ if a.1 != b.1 => Some(Change::ReasonChanged),
            _ => None,
        }
    }

    /// How the shadow's decision differs from the enforced `reason`.
    pub fn of(reason: &Reason, shadow: &ShadowDecision) -> Option<Change> {
        Change::between(
            (reason.is_allow(), reason.code()),
            (shadow.allowed, shadow.reason),
        )
    }

    /// The counter's name part: `oam_authz.shadow.<code>`.
    pub fn code(self) -> &'static str {
        match self {
            Change::AllowToDeny => "allow_to_deny",
            Change::DenyToAllow => "deny_to_allow",
            Change::ReasonChanged => "reason_changed",
        }
    }

    /// Its position in [`Change::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
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
