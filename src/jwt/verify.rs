//! Compact-JWS verification, cheapest checks first.
//!
//! Signature math costs 0.2–2 ms in wasm (see docs/performance.md), so a flood of
//! unique garbage tokens must be turned away by size, structure, `alg`, `kid`,
//! `iss`, `aud` and time checks before any of it runs. Every step fails closed
//! with a distinct [`TokenError`] whose [`code`](TokenError::code) is stable
//! for metrics and audit logs.
//!
//! The claims we return are the ones *we* parsed (duplicate-key-free, depth
//! capped), never a second interpretation from the library. jwt-simple then
//! verifies the signature over the exact same bytes and re-checks the
//! registered claims with the host's time (`artificial_time`); its own clock is
//! never consulted because it has panicked inside Envoy before.

use super::alg::{Alg, AlgRejection};
use super::jwks::{Key, KeyLookupError, KeySet, MAX_KIDLESS_KEYS};
use super::native::{host_hash, host_signature};
use crate::host::SignatureBackend;
use crate::json::clip;
use crate::json::read::{self as json, JsonError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};
use std::fmt;

/// Longest compact token we look at. Real access tokens are 0.5–4 KiB.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// Longest base64url header segment: 8 KiB (jwt-simple's own limit), room
/// for an `x5c` chain of two certificates (about 3 KiB each once encoded
/// twice). `x5c` is never used to verify (keys come only from the policy);
/// it only must not get a valid token refused. docs/security.md "Size caps".
pub const MAX_HEADER_SEGMENT: usize = 8 * 1024;
/// Largest decoded claim set.
pub const MAX_PAYLOAD_BYTES: usize = 8 * 1024;
/// Longest base64url payload segment: `MAX_PAYLOAD_BYTES` encoded without padding.
pub const MAX_PAYLOAD_SEGMENT: usize = MAX_PAYLOAD_BYTES.div_ceil(3) * 4;
/// Longest base64url signature segment (RSA-4096 = 512 bytes = 683 chars).
pub const MAX_SIGNATURE_SEGMENT: usize = 1024;
/// Latest "now" we can hand to jwt-simple: its timestamps are 32.32 fixed
/// point, so seconds must stay well below 2^32 (year 2106) to never overflow.
pub const MAX_NOW: u64 = (1 << 32) - (1 << 26);

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    pub issuer: String,
    pub subject: Option<String>,
    pub expires_at: u64,
    pub claims: Map<String, Value>,
}

/// Which part of the token a problem was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    Header,
    Payload,
    Signature,
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Segment::Header => "header",
            Segment::Payload => "payload",
            Segment::Signature => "signature",
        })
    }
}

/// Why a token was refused. Strings carried here come from the token and are
/// clipped to 64 characters; `Display` quotes them so they cannot forge log lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Token, segment or claim set over its size cap (checked before decoding).
    TooLarge { what: &'static str, limit: usize },
    /// Not three dot-separated segments with non-empty header and payload.
    BadStructure { segments: usize },
    /// A segment is not strict unpadded base64url.
    BadBase64(Segment),
    /// Header or payload is not a JSON object, or nests too deep.
    BadJson { segment: Segment, detail: String },
    /// A header field has a shape we cannot accept (e.g. `typ` is not JWT).
    BadHeader(String),
    /// The header has `crit`: we implement no extensions, so we must refuse.
    CriticalHeader,
    /// A registered claim has the wrong JSON type (e.g. numeric `sub`).
    BadClaim(&'static str),
    /// The same key twice in header or payload, at any depth.
    DuplicateKey { segment: Segment, key: String },
    /// `alg` missing from the allow-list, `none`, HS*, or unknown.
    AlgNotAllowed { alg: String },
    /// The selected key may not verify this `alg` (kty/crv/JWK `alg` mismatch).
    AlgKeyMismatch { alg: Alg, kid: String },
    /// The token's `kid` is not in the key set.
    UnknownKid { kid: String },
    /// No `kid`, and no key or more than `MAX_KIDLESS_KEYS` keys can verify the `alg`.
    NoUniqueKey { alg: Alg, candidates: usize },
    /// Signature length is wrong for the key/algorithm.
    SignatureLength { expected: usize, found: usize },
    /// The signature does not verify.
    BadSignature,
    /// The verification library refused the token for another reason.
    VerifierRejected(String),
    /// `exp` (plus skew) is not after now.
    Expired { exp: u64, now: u64 },
    /// `nbf` is after now (plus skew).
    NotYetValid { nbf: u64, now: u64 },
    /// `iat` is after now (plus skew).
    IssuedInFuture { iat: u64, now: u64 },
    /// `exp` minus `iat` (or `nbf`, or now) exceeds the provider's maximum.
    LifetimeTooLong { lifetime: u64, max: u64 },
    /// Required time claim absent (only `exp` is required).
    MissingClaim(&'static str),
    /// A time claim is not a non-negative integer (floats and strings refused).
    ClaimNotInteger(&'static str),
    /// No `iss` claim.
    IssuerMissing,
    /// `iss` is not a string or differs from the provider's issuer.
    IssuerMismatch { found: String },
    /// No audience claim (`aud`, or the provider's `audience_claim`).
    AudienceMissing { claim: String },
    /// `aud` has no entry equal to a configured audience.
    AudienceMismatch,
    /// `aud` is neither a string nor an array of strings.
    AudienceInvalid,
    /// The host clock is beyond what we can safely compute with.
    ClockOutOfRange { now: u64 },
    /// The provider's remote key set has not been fetched yet, or is older
    /// than its staleness bound. Not the token's fault: 503, not 401.
    KeysUnavailable,
}

impl TokenError {
    /// Every value `code` returns: one counter is defined per code at load, so
    /// a code missing here would go uncounted (see the test below).
    pub const CODES: [&'static str; 13] = [
        "token_malformed",
        "token_too_large",
        "token_duplicate_claim",
        "token_alg_not_allowed",
        "token_unknown_kid",
        "token_bad_signature",
        "token_expired",
        "token_not_yet_valid",
        "token_lifetime_too_long",
        "token_missing_claim",
        "token_issuer_unknown",
        "token_audience_mismatch",
        "jwks_unavailable",
    ];

    /// Machine-readable reason, stable across versions (metrics, audit logs,
    /// `WWW-Authenticate` error descriptions).
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::TooLarge { .. } => "token_too_large",
            TokenError::BadStructure { .. }
            | TokenError::BadBase64(_)
            | TokenError::BadJson { .. }
            | TokenError::BadHeader(_)
            | TokenError::CriticalHeader
            | TokenError::BadClaim(_) => "token_malformed",
            TokenError::DuplicateKey { .. } => "token_duplicate_claim",
            TokenError::AlgNotAllowed { .. } | TokenError::AlgKeyMismatch { .. } => {
                "token_alg_not_allowed"
            }
            TokenError::UnknownKid { .. } | TokenError::NoUniqueKey { .. } => "token_unknown_kid",
            TokenError::SignatureLength { .. }
            | TokenError::BadSignature
            | TokenError::VerifierRejected(_) => "token_bad_signature",
            TokenError::Expired { .. } | TokenError::ClockOutOfRange { .. } => "token_expired",
            TokenError::NotYetValid { .. } | TokenError::IssuedInFuture { .. } => {
                "token_not_yet_valid"
            }
            TokenError::LifetimeTooLong { .. } => "token_lifetime_too_long",
            TokenError::MissingClaim(_) | TokenError::ClaimNotInteger(_) => "token_missing_claim",
            TokenError::IssuerMissing | TokenError::IssuerMismatch { .. } => "token_issuer_unknown",
            TokenError::AudienceMissing { .. }
            | TokenError::AudienceMismatch
            | TokenError::AudienceInvalid => "token_audience_mismatch",
            TokenError::KeysUnavailable => "jwks_unavailable",
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::TooLarge { what, limit } => write!(f, "{what} exceeds {limit} bytes"),
            TokenError::BadStructure { segments } => {
                write!(
                    f,
                    "expected 3 dot-separated segments (header and payload non-empty), found {segments}"
                )
            }
            TokenError::BadBase64(seg) => write!(f, "{seg} is not unpadded base64url"),
            TokenError::BadJson { segment, detail } => write!(f, "{segment}: {detail}"),
            TokenError::BadHeader(msg) => write!(f, "header: {msg}"),
            TokenError::CriticalHeader => {
                write!(f, "header has 'crit'; no extensions are supported")
            }
            TokenError::BadClaim(name) => write!(f, "claim '{name}' must be a string"),
            TokenError::DuplicateKey { segment, key } => {
                write!(f, "{segment} has duplicate key {:?}", clip(key))
            }
            TokenError::AlgNotAllowed { alg } => {
                write!(f, "alg {:?} is not allowed for this provider", clip(alg))
            }
            TokenError::AlgKeyMismatch { alg, kid } => {
                write!(f, "key {:?} may not verify {alg}", clip(kid))
            }
            TokenError::UnknownKid { kid } => {
                write!(f, "kid {:?} is not in the provider's key set", clip(kid))
            }
            TokenError::NoUniqueKey { alg, candidates: 0 } => {
                write!(f, "token has no kid and no key can verify {alg}")
            }
            TokenError::NoUniqueKey { alg, candidates } => {
                write!(f, "token has no kid and {candidates} keys could verify {alg}; without a kid at most {MAX_KIDLESS_KEYS} are tried")
            }
            TokenError::SignatureLength { expected, found } => {
                write!(f, "signature is {found} bytes, expected {expected}")
            }
            TokenError::BadSignature => write!(f, "signature does not verify"),
            TokenError::VerifierRejected(msg) => {
                write!(f, "verifier rejected the token: {}", clip(msg))
            }
            TokenError::Expired { exp, now } => write!(f, "expired at {exp} (now {now})"),
            TokenError::NotYetValid { nbf, now } => write!(f, "not valid before {nbf} (now {now})"),
            TokenError::IssuedInFuture { iat, now } => {
                write!(f, "issued in the future at {iat} (now {now})")
            }
            TokenError::LifetimeTooLong { lifetime, max } => {
                write!(f, "lifetime {lifetime}s exceeds the maximum {max}s")
            }
            TokenError::MissingClaim(name) => write!(f, "required claim '{name}' is missing"),
            TokenError::ClaimNotInteger(name) => {
                write!(f, "claim '{name}' must be a non-negative integer")
            }
            TokenError::IssuerMissing => write!(f, "no 'iss' claim"),
            TokenError::IssuerMismatch { found } => {
                write!(f, "issuer {:?} is not this provider's issuer", clip(found))
            }
            TokenError::AudienceMissing { claim } => write!(f, "no '{claim}' claim"),
            TokenError::AudienceMismatch => {
                write!(f, "the audience matches none of the configured audiences")
            }
            TokenError::AudienceInvalid => {
                write!(f, "the audience claim must be a string or an array of strings")
            }
            TokenError::ClockOutOfRange { now } => write!(f, "host time {now} is out of range"),
            TokenError::KeysUnavailable => write!(
                f,
                "the provider's key set is not available (not fetched yet, or past its staleness bound)"
            ),
        }
    }
}

impl std::error::Error for TokenError {}

/// What a token must satisfy; borrowed from a compiled provider.
#[derive(Debug, Clone, Copy)]
pub struct Requirements<'a> {
    pub issuer: &'a str,
    pub audiences: &'a [String],
    /// The claim compared with `audiences`: `aud`, or e.g. `client_id`.
    pub audience_claim: &'a str,
    pub algorithms: &'a [Alg],
    pub keys: &'a KeySet,
    pub clock_skew: u64,
    pub max_lifetime: u64,
    /// Native verifier offered by the host, if any (see `native`).
    pub backend: Option<&'a dyn SignatureBackend>,
}

/// The three raw segments of a compact JWS.
pub(crate) struct Parts<'t> {
    pub header: &'t str,
    pub payload: &'t str,
    pub signature: &'t str,
}

/// Size cap and segment split; nothing is decoded yet.
pub(crate) fn split(token: &str) -> Result<Parts<'_>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLarge {
            what: "token",
            limit: MAX_TOKEN_LEN,
        });
    }
    let mut it = token.split('.');
    // An empty signature is let through here so that `alg: none` tokens are
    // reported as such; it then fails the signature length check.
    let (header, payload, signature) = match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() => (h, p, s),
        _ => {
            return Err(TokenError::BadStructure {
                segments: token.split('.').count(),
            })
        }
    };
    if header.len() > MAX_HEADER_SEGMENT {
        return Err(TokenError::TooLarge {
            what: "header",
            limit: MAX_HEADER_SEGMENT,
        });
    }
    if payload.len() > MAX_PAYLOAD_SEGMENT {
        return Err(TokenError::TooLarge {
            what: "claim set",
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    if signature.len() > MAX_SIGNATURE_SEGMENT {
        return Err(TokenError::TooLarge {
            what: "signature",
            limit: MAX_SIGNATURE_SEGMENT,
        });
    }
    Ok(Parts {
        header,
        payload,
        signature,
    })
}

fn b64(segment: Segment, s: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| TokenError::BadBase64(segment))
}

/// Decode and strictly parse a JSON-object segment.
pub(crate) fn decode_object(segment: Segment, s: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = b64(segment, s)?;
    if segment == Segment::Payload && bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(TokenError::TooLarge {
            what: "claim set",
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    json::parse_object(&bytes, json::MAX_DEPTH).map_err(|e| match e {
        JsonError::DuplicateKey(key) => TokenError::DuplicateKey { segment, key },
        other => TokenError::BadJson {
            segment,
            detail: other.to_string(),
        },
    })
}

/// Header fields that jwt-simple also parses, with the JSON type it insists
/// on. We never *use* `jku`, `x5u`, `jwk`, `x5c` (keys come only from our
/// configuration), but a value of another type would make the library fail
/// after we have spent a signature check, so we refuse it up front.
const LIBRARY_STRING_FIELDS: [&str; 7] = ["cty", "jku", "jwk", "x5u", "x5t", "x5t#S256", "salt"];

/// Check the header and return the algorithm and `kid`.
fn check_header<'h>(
    header: &'h Map<String, Value>,
    allowed: &[Alg],
) -> Result<(Alg, Option<&'h str>), TokenError> {
    let alg_name = match header.get("alg") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(TokenError::BadHeader("'alg' must be a string".into())),
        None => return Err(TokenError::BadHeader("'alg' is missing".into())),
    };
    let alg = match Alg::from_name(alg_name) {
        Ok(alg) if allowed.contains(&alg) => alg,
        Ok(_) | Err(AlgRejection::None | AlgRejection::Symmetric | AlgRejection::Unknown) => {
            return Err(TokenError::AlgNotAllowed {
                alg: clip(alg_name),
            })
        }
    };
    if header.contains_key("crit") {
        return Err(TokenError::CriticalHeader);
    }
    if let Some(typ) = header.get("typ") {
        let ok = typ.as_str().is_some_and(|t| {
            t.eq_ignore_ascii_case("JWT")
                || (t.len() > 4
                    && t.get(t.len() - 4..)
                        .is_some_and(|s| s.eq_ignore_ascii_case("+jwt")))
        });
        if !ok {
            return Err(TokenError::BadHeader(
                "'typ' must be JWT or end in +jwt".into(),
            ));
        }
    }
    for field in LIBRARY_STRING_FIELDS {
        if header.get(field).is_some_and(|v| !v.is_string()) {
            return Err(TokenError::BadHeader(format!(
                "'{field}' is not a string; embedded keys are not supported"
            )));
        }
    }
    if let Some(salt) = header.get("salt").and_then(Value::as_str) {
        b64(Segment::Header, salt)?;
    }
    if let Some(x5c) = header.get("x5c") {
        let ok = x5c
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            return Err(TokenError::BadHeader(
                "'x5c' must be an array of strings".into(),
            ));
        }
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(TokenError::BadHeader("'kid' must be a string".into())),
    };
    Ok((alg, kid))
}

/// A time claim: absent, or a non-negative integer (no floats, no strings).
fn time_claim(claims: &Map<String, Value>, name: &'static str) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or(TokenError::ClaimNotInteger(name)),
    }
}

/// `iss`, as the exact string.
pub(crate) fn issuer_of(claims: &Map<String, Value>) -> Result<&str, TokenError> {
    match claims.get("iss") {
        None => Err(TokenError::IssuerMissing),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(TokenError::IssuerMismatch {
            found: clip(&crate::json::write::to_text(other)),
        }),
    }
}

fn check_audience(
    claims: &Map<String, Value>,
    claim: &str,
    audiences: &[String],
) -> Result<(), TokenError> {
    let wanted = |a: &str| audiences.iter().any(|w| w == a);
    match claims.get(claim) {
        None => Err(TokenError::AudienceMissing {
            claim: claim.to_string(),
        }),
        Some(Value::String(a)) if wanted(a) => Ok(()),
        Some(Value::String(_)) => Err(TokenError::AudienceMismatch),
        Some(Value::Array(list)) => {
            let mut hit = false;
            for item in list {
                match item.as_str() {
                    // Keep scanning: a non-string anywhere makes the claim invalid.
                    Some(a) => hit |= wanted(a),
                    None => return Err(TokenError::AudienceInvalid),
                }
            }
            if hit {
                Ok(())
            } else {
                Err(TokenError::AudienceMismatch)
            }
        }
        Some(_) => Err(TokenError::AudienceInvalid),
    }
}

/// Time and lifetime checks. Returns `exp`.
///
/// Lifetime is `exp - iat` when `iat` is present, else `exp - nbf`, else
/// `exp - now`: a token without `iat` cannot claim to be short-lived, so we
/// measure what is left of it, which bounds every accepted `exp` to
/// `now + skew + max_lifetime` either way.
fn check_times(
    claims: &Map<String, Value>,
    now: u64,
    skew: u64,
    max_lifetime: u64,
) -> Result<u64, TokenError> {
    let exp = time_claim(claims, "exp")?.ok_or(TokenError::MissingClaim("exp"))?;
    let nbf = time_claim(claims, "nbf")?;
    let iat = time_claim(claims, "iat")?;
    if now >= exp.saturating_add(skew) {
        return Err(TokenError::Expired { exp, now });
    }
    let latest = now.saturating_add(skew);
    if let Some(nbf) = nbf.filter(|nbf| *nbf > latest) {
        return Err(TokenError::NotYetValid { nbf, now });
    }
    if let Some(iat) = iat.filter(|iat| *iat > latest) {
        return Err(TokenError::IssuedInFuture { iat, now });
    }
    let start = iat.or(nbf).unwrap_or(now);
    let lifetime = exp.saturating_sub(start);
    if lifetime > max_lifetime {
        return Err(TokenError::LifetimeTooLong {
            lifetime,
            max: max_lifetime,
        });
    }
    Ok(exp)
}

fn optional_string<'c>(
    claims: &'c Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'c str>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TokenError::BadClaim(name)),
    }
}

/// What the claims of a token must satisfy (the claim part of [`Requirements`]).
#[derive(Debug, Clone, Copy)]
pub struct ClaimRules<'a> {
    pub issuer: &'a str,
    pub audiences: &'a [String],
    /// The claim compared with `audiences` (`aud` unless configured).
    pub audience_claim: &'a str,
    pub clock_skew: u64,
    pub max_lifetime: u64,
}

impl<'a> ClaimRules<'a> {
    fn of(req: &Requirements<'a>) -> ClaimRules<'a> {
        ClaimRules {
            issuer: req.issuer,
            audiences: req.audiences,
            audience_claim: req.audience_claim,
            clock_skew: req.clock_skew,
            max_lifetime: req.max_lifetime,
        }
    }
}

/// The registered claims [`check_claims`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedClaims {
    pub issuer: String,
    pub subject: Option<String>,
    pub expires_at: u64,
}

/// Step 4 of [`verify_compact`] on a decoded claim set: `iss`, `aud`, the
/// times and lifetime, the string-typed registered claims, the clock range.
/// `oam-authz diff` runs it on its example claims (which have no signature).
pub fn check_claims(
    claims: &Map<String, Value>,
    rules: &ClaimRules<'_>,
    now: u64,
) -> Result<CheckedClaims, TokenError> {
    let issuer = issuer_of(claims)?.to_owned();
    if issuer != rules.issuer {
        return Err(TokenError::IssuerMismatch {
            found: clip(&issuer),
        });
    }
    check_audience(claims, rules.audience_claim, rules.audiences)?;
    let exp = check_times(claims, now, rules.clock_skew, rules.max_lifetime)?;
    let subject = optional_string(claims, "sub")?.map(str::to_owned);
    optional_string(claims, "jti")?;
    optional_string(claims, "nonce")?;
    if now > MAX_NOW {
        return Err(TokenError::ClockOutOfRange { now });
    }
    Ok(CheckedClaims {
        issuer,
        subject,
        expires_at: exp,
    })
}

#[cfg(any(not(target_arch = "wasm32"), feature = "wasm-crypto"))]
fn map_library_error(err: &jwt_simple::Error, exp: u64, now: u64) -> TokenError {
    use jwt_simple::JWTError;
    match err.downcast_ref::<JWTError>() {
        Some(JWTError::InvalidSignature) => TokenError::BadSignature,
        Some(JWTError::TokenHasExpired) => TokenError::Expired { exp, now },
        Some(JWTError::TokenNotValidYet | JWTError::ClockDrift) => {
            TokenError::NotYetValid { nbf: 0, now }
        }
        Some(JWTError::RequiredIssuerMismatch | JWTError::RequiredIssuerMissing) => {
            TokenError::IssuerMismatch {
                found: String::new(),
            }
        }
        Some(JWTError::RequiredAudienceMismatch | JWTError::RequiredAudienceMissing) => {
            TokenError::AudienceMismatch
        }
        _ => TokenError::VerifierRejected(clip(&err.to_string())),
    }
}

/// Verify a compact JWS against `req` at unix time `now` (seconds).
///
/// Long on purpose: the steps below run in this order because the order is
/// the defence (sizes, structure, header, key, claims, then signature math
/// last), and one function keeps that order visible in one screen.
pub fn verify_compact(
    token: &str,
    req: &Requirements<'_>,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    // 1. Sizes and structure, before any decoding.
    let parts = split(token)?;

    // 2. Header: alg allow-list, crit, field shapes, kid.
    let header = decode_object(Segment::Header, parts.header)?;
    let (alg, kid) = check_header(&header, req.algorithms)?;

    // 3. Key selection: exact kid, or (no kid) the few keys able to verify alg.
    let keys = req.keys.candidates(kid, alg).map_err(|e| match e {
        KeyLookupError::UnknownKid => TokenError::UnknownKid {
            kid: clip(kid.unwrap_or_default()),
        },
        KeyLookupError::NoUniqueKey { candidates } => TokenError::NoUniqueKey { alg, candidates },
        KeyLookupError::AlgMismatch => TokenError::AlgKeyMismatch {
            alg,
            kid: clip(kid.unwrap_or_default()),
        },
    })?;

    // 4. Claims, strictly parsed.
    let claims = decode_object(Segment::Payload, parts.payload)?;
    let checked = check_claims(&claims, &ClaimRules::of(req), now)?;
    let (issuer, subject, exp) = (checked.issuer, checked.subject, checked.expires_at);

    // 5. Signature length for the key, then the signature itself; without
    // a kid, each candidate in turn until one verifies.
    let signed = Signed {
        token,
        signing_input: token
            .get(..parts.header.len() + 1 + parts.payload.len())
            .unwrap_or_default(),
        signature: b64(Segment::Signature, parts.signature)?,
    };
    let verified = VerifiedToken {
        issuer,
        subject,
        expires_at: exp,
        claims,
    };
    let mut refusal = None;
    for key in keys {
        match verify_signature(&signed, alg, key, req, now, exp) {
            Ok(()) => return Ok(verified),
            Err(e @ (TokenError::BadSignature | TokenError::SignatureLength { .. })) => {
                refusal.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(refusal.unwrap_or(TokenError::BadSignature))
}

/// A token, the text its signature covers, and the decoded signature.
struct Signed<'t> {
    token: &'t str,
    signing_input: &'t str,
    signature: Vec<u8>,
}

/// The host's verdict on an RSA/ECDSA signature: `None` when it has no
/// verifier or could not run it.
fn host_verdict(key: &Key, alg: Alg, signed: &Signed<'_>, req: &Requirements<'_>) -> Option<bool> {
    let (backend, hash, der) = (req.backend?, host_hash(alg)?, key.spki_der()?);
    let sig = host_signature(alg, &signed.signature)?;
    backend.verify(hash, der, &sig, signed.signing_input.as_bytes())
}

/// The signature with one key, after its length: Ed25519 in wasm; RSA and
/// ECDSA by the host, else by the software verifier where this build has
/// one. Every claim check is ours and already done.
fn verify_signature(
    signed: &Signed<'_>,
    alg: Alg,
    key: &Key,
    req: &Requirements<'_>,
    now: u64,
    exp: u64,
) -> Result<(), TokenError> {
    let found = signed.signature.len();
    let expected = alg.fixed_signature_len().unwrap_or(key.signature_len());
    if found != expected {
        return Err(TokenError::SignatureLength { expected, found });
    }
    if let Some(pk) = key.ed25519() {
        let sig = ed25519_compact::Signature::from_slice(&signed.signature)
            .map_err(|_| TokenError::BadSignature)?;
        return pk
            .verify(signed.signing_input.as_bytes(), &sig)
            .map_err(|_| TokenError::BadSignature);
    }
    match host_verdict(key, alg, signed, req) {
        Some(true) => Ok(()),
        Some(false) => Err(TokenError::BadSignature),
        None => software_verify(key, alg, signed.token, req, now, exp),
    }
}

/// The default module has no software RSA/ECDSA: its configuration is
/// refused unless the host verifier works, so this is a host that stopped
/// answering. Fail closed.
#[cfg(all(target_arch = "wasm32", not(feature = "wasm-crypto")))]
fn software_verify(
    _key: &Key,
    alg: Alg,
    _token: &str,
    _req: &Requirements<'_>,
    _now: u64,
    _exp: u64,
) -> Result<(), TokenError> {
    Err(TokenError::VerifierRejected(format!(
        "no verifier for {alg}: Envoy's verify_signature did not answer"
    )))
}

/// jwt-simple over the same bytes, where the host did not answer.
#[cfg(any(not(target_arch = "wasm32"), feature = "wasm-crypto"))]
fn software_verify(
    key: &Key,
    alg: Alg,
    token: &str,
    req: &Requirements<'_>,
    now: u64,
    exp: u64,
) -> Result<(), TokenError> {
    use jwt_simple::prelude::{Duration, HashSet, UnixTimeStamp, VerificationOptions};
    let verifier = key
        .verifier(alg)
        .ok_or_else(|| TokenError::AlgKeyMismatch {
            alg,
            kid: clip(key.kid().unwrap_or_default()),
        })?;
    let options = VerificationOptions {
        artificial_time: Some(UnixTimeStamp::from_secs(now)),
        time_tolerance: Some(Duration::from_secs(req.clock_skew)),
        allowed_issuers: Some(HashSet::from([req.issuer.to_owned()])),
        // jwt-simple knows only `aud`; another audience claim was checked above.
        allowed_audiences: (req.audience_claim == "aud")
            .then(|| req.audiences.iter().cloned().collect()),
        max_token_length: Some(MAX_TOKEN_LEN),
        max_header_length: Some(MAX_HEADER_SEGMENT),
        ..VerificationOptions::default()
    };
    verifier
        .verify(token, options)
        .map(|_| ())
        .map_err(|e| map_library_error(&e, exp, now))
}

#[cfg(test)]
mod code_tests {
    use super::*;

    /// One value per variant: a new variant fails to compile here (the match
    /// is exhaustive) until its code is listed, and the code must be in CODES.
    #[test]
    fn every_code_is_listed() {
        let all = [
            TokenError::TooLarge {
                what: "token",
                limit: 1,
            },
            TokenError::BadStructure { segments: 0 },
            TokenError::BadBase64(Segment::Header),
            TokenError::BadJson {
                segment: Segment::Payload,
                detail: String::new(),
            },
            TokenError::BadHeader(String::new()),
            TokenError::CriticalHeader,
            TokenError::BadClaim("sub"),
            TokenError::DuplicateKey {
                segment: Segment::Payload,
                key: String::new(),
            },
            TokenError::AlgNotAllowed { alg: String::new() },
            TokenError::AlgKeyMismatch {
                alg: Alg::RS256,
                kid: String::new(),
            },
            TokenError::UnknownKid { kid: String::new() },
            TokenError::NoUniqueKey {
                alg: Alg::RS256,
                candidates: 0,
            },
            TokenError::SignatureLength {
                expected: 1,
                found: 0,
            },
            TokenError::BadSignature,
            TokenError::VerifierRejected(String::new()),
            TokenError::Expired { exp: 0, now: 0 },
            TokenError::NotYetValid { nbf: 0, now: 0 },
            TokenError::IssuedInFuture { iat: 0, now: 0 },
            TokenError::LifetimeTooLong {
                lifetime: 0,
                max: 0,
            },
            TokenError::MissingClaim("exp"),
            TokenError::ClaimNotInteger("exp"),
            TokenError::IssuerMissing,
            TokenError::IssuerMismatch {
                found: String::new(),
            },
            TokenError::AudienceMissing {
                claim: String::new(),
            },
            TokenError::AudienceMismatch,
            TokenError::AudienceInvalid,
            TokenError::ClockOutOfRange { now: 0 },
            TokenError::KeysUnavailable,
        ];
        for e in &all {
            // Exhaustiveness guard: adding a variant breaks this match.
            match e {
                TokenError::TooLarge { .. }
                | TokenError::BadStructure { .. }
                | TokenError::BadBase64(_)
                | TokenError::BadJson { .. }
                | TokenError::BadHeader(_)
                | TokenError::CriticalHeader
                | TokenError::BadClaim(_)
                | TokenError::DuplicateKey { .. }
                | TokenError::AlgNotAllowed { .. }
                | TokenError::AlgKeyMismatch { .. }
                | TokenError::UnknownKid { .. }
                | TokenError::NoUniqueKey { .. }
                | TokenError::SignatureLength { .. }
                | TokenError::BadSignature
                | TokenError::VerifierRejected(_)
                | TokenError::Expired { .. }
                | TokenError::NotYetValid { .. }
                | TokenError::IssuedInFuture { .. }
                | TokenError::LifetimeTooLong { .. }
                | TokenError::MissingClaim(_)
                | TokenError::ClaimNotInteger(_)
                | TokenError::IssuerMissing
                | TokenError::IssuerMismatch { .. }
                | TokenError::AudienceMissing { .. }
                | TokenError::AudienceMismatch
                | TokenError::AudienceInvalid
                | TokenError::ClockOutOfRange { .. }
                | TokenError::KeysUnavailable => {}
            }
            assert!(TokenError::CODES.contains(&e.code()), "{e:?}: {}", e.code());
        }
        for code in TokenError::CODES {
            assert!(
                all.iter().any(|e| e.code() == code),
                "{code} is never returned"
            );
        }
    }
}
