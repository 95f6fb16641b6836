//! The JWS algorithms this filter can verify.
//!
//! The set is closed on purpose: only asymmetric signatures, so that a public
//! key can never double as an HMAC secret (RS256→HS256 confusion), and never
//! `none`. A name is matched exactly (case-sensitive), as RFC 7515 requires.

use std::fmt;

/// An asymmetric JWS algorithm we accept in configuration and in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// The kind of public key an algorithm needs. A token's `alg` must agree with
/// the key's `kty`/`crv`; this is what stops an ES256 token from being checked
/// against an RSA key (CVE-2019-12995 class) or any cross-family confusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    /// `kty: RSA`
    Rsa,
    /// `kty: EC`, `crv: P-256`
    P256,
    /// `kty: EC`, `crv: P-384`
    P384,
    /// `kty: OKP`, `crv: Ed25519`
    Ed25519,
}

impl fmt::Display for KeyFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyFamily::Rsa => "RSA",
            KeyFamily::P256 => "EC P-256",
            KeyFamily::P384 => "EC P-384",
            KeyFamily::Ed25519 => "OKP Ed25519",
        })
    }
}

/// Why an algorithm name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlgRejection {
    /// `none` in any letter case: an unsigned token.
    None,
    /// `HS256` and friends: a shared secret, which would let anyone holding the
    /// verification key (or tricking us into using a public key) mint tokens.
    Symmetric,
    /// Not a name we know (including wrong letter case, e.g. `rs256`).
    Unknown,
}

impl Alg {
    /// Every supported algorithm, in a stable order (used in messages).
    pub const ALL: [Alg; 9] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
    ];

    /// Parse a JWS `alg` name exactly.
    pub fn from_name(name: &str) -> Result<Alg, AlgRejection> {
        if let Some(alg) = Alg::ALL.iter().find(|a| a.name() == name) {
            return Ok(*alg);
        }
        if name.eq_ignore_ascii_case("none") {
            Err(AlgRejection::None)
        } else if name.len() >= 2 && name.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("hs")) {
            Err(AlgRejection::Symmetric)
        } else {
            Err(AlgRejection::Unknown)
        }
    }

    /// The registered JWS name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
        }
    }

    /// RSA-PSS: only the software verifier has it.
    pub fn is_pss(self) -> bool {
        matches!(self, Alg::PS256 | Alg::PS384 | Alg::PS512)
    }

    /// Ed25519: always verified in wasm.
    pub fn is_eddsa(self) -> bool {
        self == Alg::EdDSA
    }

    /// The key family this algorithm verifies with.
    pub fn family(self) -> KeyFamily {
        match self {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => {
                KeyFamily::Rsa
            }
            Alg::ES256 => KeyFamily::P256,
            Alg::ES384 => KeyFamily::P384,
            Alg::EdDSA => KeyFamily::Ed25519,
        }
    }

    /// The exact signature length in bytes for fixed-size schemes. RSA
    /// signatures are as long as the modulus, so they return `None` here and
    /// are checked against the key instead.
    pub fn fixed_signature_len(self) -> Option<usize> {
        match self {
            Alg::ES256 => Some(64),
            Alg::ES384 => Some(96),
            Alg::EdDSA => Some(64),
            _ => None,
        }
    }

    /// Comma-separated list of all supported names, for error messages.
    pub fn supported_list() -> String {
        Alg::ALL
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for alg in Alg::ALL {
            assert_eq!(Alg::from_name(alg.name()), Ok(alg));
        }
    }

    #[test]
    fn rejections() {
        let table = [
            ("none", AlgRejection::None),
            ("None", AlgRejection::None),
            ("NONE", AlgRejection::None),
            ("HS256", AlgRejection::Symmetric),
            ("hs512", AlgRejection::Symmetric),
            ("rs256", AlgRejection::Unknown),
            ("ES512", AlgRejection::Unknown),
            ("Ed25519", AlgRejection::Unknown),
            ("", AlgRejection::Unknown),
            ("H", AlgRejection::Unknown),
        ];
        for (name, want) in table {
            assert_eq!(Alg::from_name(name), Err(want), "{name}");
        }
    }

    #[test]
    fn families_and_lengths() {
        assert_eq!(Alg::PS384.family(), KeyFamily::Rsa);
        assert_eq!(Alg::ES384.family(), KeyFamily::P384);
        assert_eq!(Alg::ES256.fixed_signature_len(), Some(64));
        assert_eq!(Alg::ES384.fixed_signature_len(), Some(96));
        assert_eq!(Alg::EdDSA.fixed_signature_len(), Some(64));
        assert_eq!(Alg::RS256.fixed_signature_len(), None);
    }
}
