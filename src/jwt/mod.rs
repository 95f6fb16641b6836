//! JWT verification: a pure engine (no proxy-wasm, no clock), so it runs the
//! same natively (CLI, tests, fuzzing) and inside the wasm filter.
//!
//! Flow: [`Provider::compile`] turns a `ProviderConfig` into typed keys and
//! limits once; [`Provider::verify`] checks a compact JWS at the host-supplied
//! time with the cheap rejections first and the signature last;
//! [`ClaimTest`] evaluates policy conditions on the verified claims.

pub mod alg;
mod curve;
mod der;
pub mod jwks;
pub mod native;
#[cfg(any(not(target_arch = "wasm32"), feature = "wasm-crypto"))]
mod soft;
pub mod verify;

pub use alg::Alg;
pub use jwks::{parse_jwks, KeySet};
pub use verify::{TokenError, VerifiedToken};

use verify::{decode_object, issuer_of, split, Segment};

/// Whether this build verifies RSA and ECDSA signatures itself: natively
/// always, in wasm only in the full module build (`wasm-crypto`). Without
/// it, Envoy's `verify_signature` must do it.
pub const SOFTWARE_CRYPTO: bool = cfg!(any(not(target_arch = "wasm32"), feature = "wasm-crypto"));

/// Unverified peek at the payload's `iss`, used only to choose among
/// providers that share a token source. Nothing here is trusted: the chosen
/// provider still runs the full [`Provider::verify`]. The same size caps and
/// strict parsing apply, so it is as cheap to reject garbage here as there.
pub fn peek_issuer(token: &str) -> Result<String, TokenError> {
    let parts = split(token)?;
    let claims = decode_object(Segment::Payload, parts.payload)?;
    issuer_of(&claims).map(str::to_owned)
}
