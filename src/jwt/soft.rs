//! Software RSA (PKCS#1 v1.5 and PSS) and ECDSA verification, through
//! jwt-simple: natively always (the CLI has no host verifier), and in the
//! full module build (`--features wasm-crypto`) as the fallback for proxies
//! without Envoy's `verify_signature` and for PS*. The default module leaves
//! these algorithms to the host and carries none of this code.

use super::alg::Alg;
use jwt_simple::prelude::*;

/// A verifier for exactly one algorithm, built from one JWK.
#[derive(Clone)]
pub enum Verifier {
    RS256(RS256PublicKey),
    RS384(RS384PublicKey),
    RS512(RS512PublicKey),
    PS256(PS256PublicKey),
    PS384(PS384PublicKey),
    PS512(PS512PublicKey),
    ES256(ES256PublicKey),
    ES384(ES384PublicKey),
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifier({})", self.alg())
    }
}

impl Verifier {
    pub fn alg(&self) -> Alg {
        match self {
            Verifier::RS256(_) => Alg::RS256,
            Verifier::RS384(_) => Alg::RS384,
            Verifier::RS512(_) => Alg::RS512,
            Verifier::PS256(_) => Alg::PS256,
            Verifier::PS384(_) => Alg::PS384,
            Verifier::PS512(_) => Alg::PS512,
            Verifier::ES256(_) => Alg::ES256,
            Verifier::ES384(_) => Alg::ES384,
        }
    }

    /// RSA verifiers for `algs` (the RSA ones among them).
    pub fn rsa(n: &[u8], e: &[u8], algs: &[Alg]) -> Result<Vec<Verifier>, String> {
        let err = |e: jwt_simple::Error| e.to_string();
        let mut out = Vec::with_capacity(algs.len());
        for alg in algs {
            out.push(match alg {
                Alg::RS256 => Verifier::RS256(RS256PublicKey::from_components(n, e).map_err(err)?),
                Alg::RS384 => Verifier::RS384(RS384PublicKey::from_components(n, e).map_err(err)?),
                Alg::RS512 => Verifier::RS512(RS512PublicKey::from_components(n, e).map_err(err)?),
                Alg::PS256 => Verifier::PS256(PS256PublicKey::from_components(n, e).map_err(err)?),
                Alg::PS384 => Verifier::PS384(PS384PublicKey::from_components(n, e).map_err(err)?),
                Alg::PS512 => Verifier::PS512(PS512PublicKey::from_components(n, e).map_err(err)?),
                Alg::ES256 | Alg::ES384 | Alg::EdDSA => continue,
            });
        }
        Ok(out)
    }

    /// The ECDSA verifier of a SEC1 point (`04 || x || y`).
    pub fn ec(sec1: &[u8], p384: bool) -> Result<Verifier, String> {
        let err = |e: jwt_simple::Error| e.to_string();
        Ok(if p384 {
            Verifier::ES384(ES384PublicKey::from_bytes(sec1).map_err(err)?)
        } else {
            Verifier::ES256(ES256PublicKey::from_bytes(sec1).map_err(err)?)
        })
    }

    /// Verify the token's signature (and, redundantly, its registered
    /// claims). `options` must carry `artificial_time`: jwt-simple's own clock
    /// must never run inside Envoy.
    pub fn verify(
        &self,
        token: &str,
        options: VerificationOptions,
    ) -> Result<JWTClaims<NoCustomClaims>, jwt_simple::Error> {
        let options = Some(options);
        match self {
            Verifier::RS256(k) => k.verify_token::<NoCustomClaims>(token, options),
            Verifier::RS384(k) => k.verify_token::<NoCustomClaims>(token, options),
            Verifier::RS512(k) => k.verify_token::<NoCustomClaims>(token, options),
            Verifier::PS256(k) => k.verify_token::<NoCustomClaims>(token, options),
            Verifier::PS384(k) => k.verify_token::<NoCustomClaims>(token, options),
            Verifier::PS512(k) => k.verify_token::<NoCustomClaims>(token, options),
            Verifier::ES256(k) => k.verify_token::<NoCustomClaims>(token, options),
            Verifier::ES384(k) => k.verify_token::<NoCustomClaims>(token, options),
        }
    }
}
