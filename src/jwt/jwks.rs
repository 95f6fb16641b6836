//! JSON Web Key Sets: parsed once at configuration time into typed verifiers.
//!
//! Each key is bound to the algorithms it may verify: the intersection of the
//! provider's allow-list, what its `kty`/`crv` supports, and its own `alg` if
//! the JWK names one. A token's `alg` then has to find itself in that list, so
//! no token can steer us into using a key with the wrong algorithm.
//!
//! Keys we cannot use (encryption keys, symmetric `oct` keys, unknown curves)
//! are skipped with a warning: real JWKS endpoints publish those routinely.
//! Broken key material for a key we *would* use is an error, because silently
//! dropping it would turn into "every token fails" later.

use super::alg::{Alg, KeyFamily};
#[cfg(any(not(target_arch = "wasm32"), feature = "wasm-crypto"))]
use super::soft::Verifier;
use super::{curve, der};
use crate::error::{Diagnostic, FieldPath, Message, Naming, Problem};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

/// Longest `kid` we store or look up. Longer ones cannot match anything.
pub const MAX_KID_LEN: usize = 256;

/// Most keys a token without `kid` is tried against, in key-set order (as
/// Envoy's jwt_authn and most libraries do, but bounded: every garbage token
/// costs at most this many signature checks). Key sets mid-rotation publish
/// two or three keys per algorithm; see docs/security.md "Tokens without kid".
pub const MAX_KIDLESS_KEYS: usize = 4;

/// JWK members that only a private key has. Their presence in a policy that is
/// shipped to every sidecar is a leaked secret, so it is refused.
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// One usable public key.
#[derive(Debug, Clone)]
pub struct Key {
    kid: Option<String>,
    family: KeyFamily,
    /// Exact signature length in bytes for this key (RSA: modulus length).
    signature_len: usize,
    /// The algorithms this key may verify; never empty.
    algorithms: Vec<Alg>,
    /// SubjectPublicKeyInfo DER, for the host's native verifier (RSA, EC).
    spki_der: Option<Vec<u8>>,
    /// Ed25519 keys are verified in wasm (Envoy's verifier has no Ed25519).
    ed25519: Option<ed25519_compact::PublicKey>,
    /// Software verifiers (RSA, EC), where the build has them.
    #[cfg(any(not(target_arch = "wasm32"), feature = "wasm-crypto"))]
    verifiers: Vec<Verifier>,
}

impl Key {
    pub fn spki_der(&self) -> Option<&[u8]> {
        self.spki_der.as_deref()
    }
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
    pub fn family(&self) -> KeyFamily {
        self.family
    }
    pub fn signature_len(&self) -> usize {
        self.signature_len
    }
    /// Algorithms this key may verify.
    pub fn algorithms(&self) -> impl Iterator<Item = Alg> + '_ {
        self.algorithms.iter().copied()
    }
    /// Whether this key may verify `alg`.
    pub fn allows(&self, alg: Alg) -> bool {
        self.algorithms.contains(&alg)
    }
    pub fn ed25519(&self) -> Option<&ed25519_compact::PublicKey> {
        self.ed25519.as_ref()
    }
    /// The software verifier for `alg`, if this key may verify it.
    #[cfg(any(not(target_arch = "wasm32"), feature = "wasm-crypto"))]
    pub fn verifier(&self, alg: Alg) -> Option<&Verifier> {
        self.verifiers.iter().find(|v| v.alg() == alg)
    }
}

/// The provider's keys, looked up by exact `kid`.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<Key>,
    /// Keys skipped while parsing: (path, why), the path relative to the
    /// set as given to the parser (`.keys[2]`).
    skipped: Vec<(String, String)>,
}

/// Why no key was found for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLookupError {
    /// The token's `kid` is not in the set.
    UnknownKid,
    /// The token has no `kid` and no key, or more than [`MAX_KIDLESS_KEYS`]
    /// keys, can verify its `alg`.
    NoUniqueKey { candidates: usize },
    /// The key named by `kid` exists but may not verify this `alg`.
    AlgMismatch,
}

impl KeySet {
    pub fn keys(&self) -> &[Key] {
        &self.keys
    }
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    /// Keys that were skipped while parsing: where (`.keys[2]`) and why.
    pub fn skipped(&self) -> &[(String, String)] {
        &self.skipped
    }
    /// `<path>: skipped: <why>`, one per skipped key.
    pub fn warning_lines(&self) -> Vec<String> {
        self.skipped
            .iter()
            .map(|(at, why)| format!("{at}: skipped: {why}"))
            .collect()
    }
    /// Does any key verify `alg`?
    pub fn supports(&self, alg: Alg) -> bool {
        self.keys.iter().any(|k| k.allows(alg))
    }

    /// The keys to try for a token, in order. With a `kid`: the one key of
    /// that `kid` (exact lookup), which must allow `alg`. Without: every key
    /// that can verify `alg`, if there are 1 to [`MAX_KIDLESS_KEYS`] of them.
    pub fn candidates(&self, kid: Option<&str>, alg: Alg) -> Result<Vec<&Key>, KeyLookupError> {
        if kid.is_some() {
            return self.find(kid, alg).map(|k| vec![k]);
        }
        let keys: Vec<&Key> = self.keys.iter().filter(|k| k.allows(alg)).collect();
        if keys.is_empty() || keys.len() > MAX_KIDLESS_KEYS {
            return Err(KeyLookupError::NoUniqueKey {
                candidates: keys.len(),
            });
        }
        Ok(keys)
    }

    /// The key for a token: with a `kid`, exact lookup, and the key must
    /// allow `alg`; without one, the only key that can verify `alg`.
    pub fn find(&self, kid: Option<&str>, alg: Alg) -> Result<&Key, KeyLookupError> {
        match kid {
            Some(kid) => {
                if kid.len() > MAX_KID_LEN {
                    return Err(KeyLookupError::UnknownKid);
                }
                // A scan, not a map: a set holds a few keys (the fetched
                // document is size-capped), and a map costs the module bytes.
                let key = self
                    .keys
                    .iter()
                    .find(|k| k.kid.as_deref() == Some(kid))
                    .ok_or(KeyLookupError::UnknownKid)?;
                if !key.allows(alg) {
                    return Err(KeyLookupError::AlgMismatch);
                }
                Ok(key)
            }
            None => {
                let mut found = self.keys.iter().filter(|k| k.allows(alg));
                match (found.next(), found.next()) {
                    (Some(key), None) => Ok(key),
                    (None, _) => Err(KeyLookupError::NoUniqueKey { candidates: 0 }),
                    (Some(_), Some(_)) => Err(KeyLookupError::NoUniqueKey {
                        candidates: 2 + found.count(),
                    }),
                }
            }
        }
    }
}

/// Parse an inline JWKS (`{"keys": [...]}`) into the keys usable with the
/// `allowed` algorithms. `path` names the `jwks` field, e.g. `providers[0].jwks`.
///
/// Errors: not an object / no `keys` array, duplicate `kid`, private key
/// members, broken material of a supported key, or no usable key at all.
fn err(at: impl AsRef<str>, p: Problem) -> Diagnostic {
    Diagnostic::error(FieldPath::root().raw(at.as_ref()), p)
}

fn bad(at: impl AsRef<str>, m: impl Into<Message>) -> Diagnostic {
    Diagnostic::invalid(FieldPath::root().raw(at.as_ref()), m)
}

pub fn parse_jwks(jwks: &Value, allowed: &[Alg], path: &str) -> Result<KeySet, Diagnostic> {
    parse_jwks_mode(jwks, allowed, path, false)
}

/// Parse a JWKS fetched from an identity provider. As [`parse_jwks`], except
/// that a key we cannot use for any reason (broken material, private members,
/// an overlong `kid`) is skipped with a warning instead of refusing the whole
/// set: one bad key published next to good ones must not become an outage.
/// Still refused: not `{"keys": [...]}`, a duplicate `kid`, no usable key.
pub fn parse_jwks_remote(jwks: &Value, allowed: &[Alg], path: &str) -> Result<KeySet, Diagnostic> {
    parse_jwks_mode(jwks, allowed, path, true)
}

fn parse_jwks_mode(
    jwks: &Value,
    allowed: &[Alg],
    path: &str,
    lenient: bool,
) -> Result<KeySet, Diagnostic> {
    let obj = jwks
        .as_object()
        .ok_or_else(|| bad(path, "must be a JSON object like {\"keys\": [...]}"))?;
    let keys_path = format!("{path}.keys");
    let keys = match obj.get("keys") {
        Some(Value::Array(keys)) => keys,
        Some(_) => return Err(bad(keys_path, "must be an array of JWKs")),
        None => return Err(bad(keys_path, "required")),
    };
    if keys.is_empty() {
        return Err(err(keys_path, Problem::Empty));
    }

    let mut set = KeySet::default();
    for (i, jwk) in keys.iter().enumerate() {
        let kpath = format!("{keys_path}[{i}]");
        let parsed = match parse_key(jwk, allowed, &kpath) {
            Ok(p) => p,
            Err(e) if lenient => Parsed::Skipped(format!(
                "unusable: {}{}",
                e.path
                    .render(Naming::Snake, true)
                    .strip_prefix(kpath.as_str())
                    .filter(|f| !f.is_empty())
                    .map_or(String::new(), |f| format!("{f} ")),
                e.problem
            )),
            Err(e) => return Err(e),
        };
        match parsed {
            Parsed::Usable(key) => {
                if let Some(kid) = &key.kid {
                    if set.keys.iter().any(|k| k.kid.as_ref() == Some(kid)) {
                        return Err(err(format!("{kpath}.kid"), Problem::duplicate(kid)));
                    }
                }
                set.keys.push(key);
            }
            Parsed::Skipped(why) => set.skipped.push((kpath, why)),
        }
    }
    if set.keys.is_empty() {
        let allowed: Vec<&str> = allowed.iter().map(|a| a.name()).collect();
        return Err(bad(
            keys_path,
            format!(
                "no usable signing key for the allowed algorithms [{}] ({} key(s) skipped: {})",
                allowed.join(", "),
                set.skipped.len(),
                set.warning_lines().join("; ")
            ),
        ));
    }
    Ok(set)
}

enum Parsed {
    Usable(Key),
    Skipped(String),
}

fn str_member<'a>(
    jwk: &'a Map<String, Value>,
    name: &str,
    kpath: &str,
) -> Result<Option<&'a str>, Diagnostic> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("{kpath}.{name}"), "must be a string")),
    }
}

/// The key family from `kty` (and `crv`); `Err(Skipped)` for a key type
/// we do not use.
fn key_family(
    jwk: &Map<String, Value>,
    kty: &str,
    kpath: &str,
) -> Result<Result<KeyFamily, Parsed>, Diagnostic> {
    Ok(Ok(match kty {
        "RSA" => KeyFamily::Rsa,
        "EC" => match str_member(jwk, "crv", kpath)? {
            Some("P-256") => KeyFamily::P256,
            Some("P-384") => KeyFamily::P384,
            Some(other) => {
                return Ok(Err(Parsed::Skipped(format!(
                    "EC curve {other:?} is not supported"
                ))))
            }
            None => return Err(bad(format!("{kpath}.crv"), "required for kty EC")),
        },
        "OKP" => match str_member(jwk, "crv", kpath)? {
            Some("Ed25519") => KeyFamily::Ed25519,
            Some(other) => {
                return Ok(Err(Parsed::Skipped(format!(
                    "OKP curve {other:?} is not supported"
                ))))
            }
            None => return Err(bad(format!("{kpath}.crv"), "required for kty OKP")),
        },
        "oct" => {
            return Ok(Err(Parsed::Skipped(
                "symmetric (oct) keys are never used".into(),
            )))
        }
        other => {
            return Ok(Err(Parsed::Skipped(format!(
                "kty {other:?} is not supported"
            ))))
        }
    }))
}

/// The allowed algorithms this key may verify (narrowed by its `alg`).
fn key_algorithms(
    jwk: &Map<String, Value>,
    family: KeyFamily,
    allowed: &[Alg],
    kpath: &str,
) -> Result<Result<Vec<Alg>, Parsed>, Diagnostic> {
    // Algorithms this key may verify.
    let mut algs: Vec<Alg> = allowed
        .iter()
        .copied()
        .filter(|a| a.family() == family)
        .collect();
    if let Some(name) = str_member(jwk, "alg", kpath)? {
        match Alg::from_name(name) {
            Ok(a) if a.family() != family => {
                return Err(bad(
                    format!("{kpath}.alg"),
                    format!("{a} does not fit a {family} key"),
                ))
            }
            Ok(a) => algs.retain(|x| *x == a),
            Err(_) => {
                return Ok(Err(Parsed::Skipped(format!(
                    "alg {name:?} is not a supported signature algorithm"
                ))))
            }
        }
        if algs.is_empty() {
            return Ok(Err(Parsed::Skipped(format!(
                "alg {name:?} is not in the provider's algorithms"
            ))));
        }
    }
    if algs.is_empty() {
        return Ok(Err(Parsed::Skipped(format!(
            "no allowed algorithm uses a {family} key"
        ))));
    }
    Ok(Ok(algs))
}

fn parse_key(jwk: &Value, allowed: &[Alg], kpath: &str) -> Result<Parsed, Diagnostic> {
    let jwk = jwk
        .as_object()
        .ok_or_else(|| bad(kpath, "must be a JSON object"))?;

    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(bad(
            kpath,
            format!("contains private key member '{member}'; configure only the public key"),
        ));
    }

    let kid = match str_member(jwk, "kid", kpath)? {
        None => None,
        Some("") => return Err(err(format!("{kpath}.kid"), Problem::Empty)),
        Some(k) if k.len() > MAX_KID_LEN => {
            return Err(bad(
                format!("{kpath}.kid"),
                format!("longer than {MAX_KID_LEN} bytes"),
            ))
        }
        Some(k) => Some(k.to_string()),
    };

    let kty =
        str_member(jwk, "kty", kpath)?.ok_or_else(|| bad(format!("{kpath}.kty"), "required"))?;

    if let Some(use_) = str_member(jwk, "use", kpath)? {
        if use_ != "sig" {
            return Ok(Parsed::Skipped(format!("\"use\" is {use_:?}, not \"sig\"")));
        }
    }
    if let Some(ops) = jwk.get("key_ops") {
        let ops = ops
            .as_array()
            .ok_or_else(|| bad(format!("{kpath}.key_ops"), "must be an array of strings"))?;
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Ok(Parsed::Skipped(
                "\"key_ops\" does not include \"verify\"".into(),
            ));
        }
    }

    let family = match key_family(jwk, kty, kpath)? {
        Ok(f) => f,
        Err(skipped) => return Ok(skipped),
    };
    let algs = match key_algorithms(jwk, family, allowed, kpath)? {
        Ok(a) => a,
        Err(skipped) => return Ok(skipped),
    };

    let key = match family {
        KeyFamily::Rsa => rsa_key(jwk, kid, &algs, kpath)?,
        KeyFamily::P256 | KeyFamily::P384 => ec_key(jwk, kid, family, &algs, kpath)?,
        KeyFamily::Ed25519 => okp_key(jwk, kid, kpath)?,
    };
    Ok(Parsed::Usable(key))
}

/// Decode a required base64url member (no padding, canonical).
fn b64_member(
    jwk: &Map<String, Value>,
    name: &str,
    what: &str,
    kpath: &str,
) -> Result<Vec<u8>, Diagnostic> {
    let s = str_member(jwk, name, kpath)?
        .ok_or_else(|| bad(kpath, format!("{what} key has no '{name}'")))?;
    URL_SAFE_NO_PAD.decode(s).map_err(|e| {
        bad(
            format!("{kpath}.{name}"),
            format!("not unpadded base64url: {e}"),
        )
    })
}

fn rsa_key(
    jwk: &Map<String, Value>,
    kid: Option<String>,
    algs: &[Alg],
    kpath: &str,
) -> Result<Key, Diagnostic> {
    let n = b64_member(jwk, "n", "RSA", kpath)?;
    let e = b64_member(jwk, "e", "RSA", kpath)?;
    let rejected = |why: String| {
        bad(
            kpath,
            format!("RSA key rejected ({why}); need a 2048–4096-bit modulus and e = 65537"),
        )
    };
    let spki = der::rsa_spki(&n, &e).map_err(|e| rejected(e.to_string()))?;
    Ok(Key {
        kid,
        family: KeyFamily::Rsa,
        signature_len: der::rsa_modulus(&n).len(),
        algorithms: algs.to_vec(),
        spki_der: Some(spki),
        ed25519: None,
        #[cfg(any(not(target_arch = "wasm32"), feature = "wasm-crypto"))]
        verifiers: Verifier::rsa(&n, &e, algs).map_err(rejected)?,
    })
}

fn ec_key(
    jwk: &Map<String, Value>,
    kid: Option<String>,
    family: KeyFamily,
    algs: &[Alg],
    kpath: &str,
) -> Result<Key, Diagnostic> {
    let (coord_len, alg) = match family {
        KeyFamily::P384 => (48, Alg::ES384),
        _ => (32, Alg::ES256),
    };
    if !algs.contains(&alg) {
        // Cannot happen (algs is filtered by family), but never build a key
        // for an algorithm that is not allowed.
        return Err(bad(kpath, format!("{alg} is not allowed for this key")));
    }
    let x = b64_member(jwk, "x", "EC", kpath)?;
    let y = b64_member(jwk, "y", "EC", kpath)?;
    for (name, v) in [("x", &x), ("y", &y)] {
        if v.len() != coord_len {
            return Err(bad(
                format!("{kpath}.{name}"),
                format!(
                    "must decode to {coord_len} bytes for {family}, got {}",
                    v.len()
                ),
            ));
        }
    }
    let p384 = family == KeyFamily::P384;
    if !curve::on_curve(&x, &y, p384) {
        return Err(bad(
            kpath,
            format!("{family} point rejected: not on the curve"),
        ));
    }
    let mut sec1 = Vec::with_capacity(1 + 2 * coord_len);
    sec1.push(0x04);
    sec1.extend_from_slice(&x);
    sec1.extend_from_slice(&y);
    Ok(Key {
        kid,
        family,
        signature_len: 2 * coord_len,
        algorithms: vec![alg],
        spki_der: Some(der::ec_spki(&sec1, p384)),
        ed25519: None,
        #[cfg(any(not(target_arch = "wasm32"), feature = "wasm-crypto"))]
        verifiers: vec![Verifier::ec(&sec1, p384)
            .map_err(|err| bad(kpath, format!("{family} point rejected: {err}")))?],
    })
}

fn okp_key(jwk: &Map<String, Value>, kid: Option<String>, kpath: &str) -> Result<Key, Diagnostic> {
    let x = b64_member(jwk, "x", "OKP", kpath)?;
    let pk = ed25519_compact::PublicKey::from_slice(&x).map_err(|_| {
        bad(
            format!("{kpath}.x"),
            format!("must decode to 32 bytes for Ed25519, got {}", x.len()),
        )
    })?;
    pk.validate()
        .map_err(|err| bad(kpath, format!("Ed25519 key rejected: {err}")))?;
    Ok(Key {
        kid,
        family: KeyFamily::Ed25519,
        signature_len: 64,
        algorithms: vec![Alg::EdDSA],
        // The host verifier has no Ed25519 (observed on Envoy 1.40).
        spki_der: None,
        ed25519: Some(pk),
        #[cfg(any(not(target_arch = "wasm32"), feature = "wasm-crypto"))]
        verifiers: Vec::new(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
pub(crate) mod tests {
    use super::*;
    use jwt_simple::prelude::*;
    use serde_json::json;

    pub(crate) fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub(crate) fn es256_jwk(kp: &ES256KeyPair, kid: Option<&str>) -> Value {
        let raw = kp.public_key().public_key().to_bytes_uncompressed();
        let mut v =
            json!({"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..65])});
        if let Some(kid) = kid {
            v["kid"] = json!(kid);
        }
        v
    }

    pub(crate) fn ed_jwk(kp: &Ed25519KeyPair, kid: Option<&str>) -> Value {
        let raw = kp.public_key().to_bytes();
        let mut v = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&raw)});
        if let Some(kid) = kid {
            v["kid"] = json!(kid);
        }
        v
    }

    pub(crate) fn rsa_jwk(kp: &RS256KeyPair, kid: Option<&str>) -> Value {
        let c = kp.public_key().to_components();
        let mut v = json!({"kty": "RSA", "n": b64(&c.n), "e": b64(&c.e)});
        if let Some(kid) = kid {
            v["kid"] = json!(kid);
        }
        v
    }

    pub(crate) fn rsa_pair() -> &'static RS256KeyPair {
        static KP: std::sync::OnceLock<RS256KeyPair> = std::sync::OnceLock::new();
        KP.get_or_init(|| {
            RS256KeyPair::from_pem(include_str!("../testdata/rsa2048_test_only.pem")).unwrap()
        })
    }

    fn err_msg(jwks: Value, allowed: &[Alg]) -> String {
        parse_jwks(&jwks, allowed, "providers[0].jwks")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_each_family() {
        let ec = ES256KeyPair::generate();
        let ed = Ed25519KeyPair::generate();
        let rsa = rsa_pair();
        let jwks = json!({"keys": [es256_jwk(&ec, Some("ec")), ed_jwk(&ed, Some("ed")), rsa_jwk(rsa, Some("rsa"))]});
        let set = parse_jwks(
            &jwks,
            &[Alg::ES256, Alg::EdDSA, Alg::RS256, Alg::PS256],
            "p",
        )
        .unwrap();
        assert_eq!(set.len(), 3);
        assert!(set.warning_lines().is_empty());
        let rsa_key = set.find(Some("rsa"), Alg::PS256).unwrap();
        assert_eq!(rsa_key.signature_len(), 256);
        assert_eq!(
            rsa_key.algorithms().collect::<Vec<_>>(),
            vec![Alg::RS256, Alg::PS256]
        );
        assert_eq!(
            set.find(Some("ec"), Alg::ES256).unwrap().signature_len(),
            64
        );
        assert_eq!(
            set.find(Some("ec"), Alg::RS256).unwrap_err(),
            KeyLookupError::AlgMismatch
        );
        assert_eq!(
            set.find(Some("EC"), Alg::ES256).unwrap_err(),
            KeyLookupError::UnknownKid
        );
        assert_eq!(set.find(None, Alg::EdDSA).unwrap().kid(), Some("ed"));
        assert_eq!(
            set.find(None, Alg::ES384).unwrap_err(),
            KeyLookupError::NoUniqueKey { candidates: 0 }
        );
    }

    #[test]
    fn jwk_alg_narrows_the_key() {
        let rsa = rsa_pair();
        let mut jwk = rsa_jwk(rsa, Some("r"));
        jwk["alg"] = json!("PS256");
        let set = parse_jwks(&json!({"keys": [jwk]}), &[Alg::RS256, Alg::PS256], "p").unwrap();
        assert_eq!(
            set.find(Some("r"), Alg::RS256).unwrap_err(),
            KeyLookupError::AlgMismatch
        );
        assert!(set.find(Some("r"), Alg::PS256).is_ok());
    }

    #[test]
    fn skipped_keys_warn() {
        let ec = ES256KeyPair::generate();
        let mut enc = es256_jwk(&ec, Some("enc"));
        enc["use"] = json!("enc");
        let mut hs = json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"});
        hs["alg"] = json!("HS256");
        let k1 = json!({"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"});
        let ed448 = json!({"kty": "OKP", "crv": "Ed448", "x": "AA"});
        let mut wrong_alg = es256_jwk(&ec, Some("rsa-oaep"));
        wrong_alg["alg"] = json!("ECDH-ES");
        let mut no_verify = es256_jwk(&ec, Some("nv"));
        no_verify["key_ops"] = json!(["encrypt"]);
        let good = es256_jwk(&ec, Some("good"));
        let jwks = json!({"keys": [enc, hs, k1, ed448, wrong_alg, no_verify, good]});
        let set = parse_jwks(&jwks, &[Alg::ES256], "providers[0].jwks").unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.warning_lines().len(), 6, "{:?}", set.warning_lines());
        assert!(set.warning_lines()[0].starts_with("providers[0].jwks.keys[0]: skipped"));
    }

    #[test]
    fn config_errors_name_the_field() {
        let ec = ES256KeyPair::generate();
        let ed = Ed25519KeyPair::generate();
        let mut short_x = es256_jwk(&ec, None);
        short_x["x"] = json!(b64(&[1u8; 31]));
        let mut padded = es256_jwk(&ec, None);
        padded["x"] = json!(format!("{}=", b64(&[1u8; 32])));
        let mut off_curve = es256_jwk(&ec, None);
        off_curve["y"] = json!(b64(&[7u8; 32]));
        let mut bad_alg = es256_jwk(&ec, None);
        bad_alg["alg"] = json!("RS256");
        let mut private = ed_jwk(&ed, None);
        private["d"] = json!("AAAA");
        let table: Vec<(Value, &[Alg], &str)> = vec![
            (
                json!([]),
                &[Alg::ES256],
                "providers[0].jwks: must be a JSON object",
            ),
            (json!({}), &[Alg::ES256], "providers[0].jwks.keys: required"),
            (
                json!({"keys": []}),
                &[Alg::ES256],
                "providers[0].jwks.keys: must not be empty",
            ),
            (
                json!({"keys": [{"kty": "RSA", "e": "AQAB"}]}),
                &[Alg::RS256],
                "providers[0].jwks.keys[0]: RSA key has no 'n'",
            ),
            (
                json!({"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}]}),
                &[Alg::RS256],
                "providers[0].jwks.keys[0].n: not unpadded base64url",
            ),
            (
                json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}),
                &[Alg::RS256],
                "providers[0].jwks.keys[0]: RSA key rejected",
            ),
            (
                json!({"keys": [short_x]}),
                &[Alg::ES256],
                "providers[0].jwks.keys[0].x: must decode to 32 bytes",
            ),
            (
                json!({"keys": [padded]}),
                &[Alg::ES256],
                "providers[0].jwks.keys[0].x: not unpadded base64url",
            ),
            (
                json!({"keys": [off_curve]}),
                &[Alg::ES256],
                "providers[0].jwks.keys[0]: EC P-256 point rejected",
            ),
            (
                json!({"keys": [bad_alg]}),
                &[Alg::ES256],
                "providers[0].jwks.keys[0].alg: RS256 does not fit",
            ),
            (
                json!({"keys": [private]}),
                &[Alg::EdDSA],
                "providers[0].jwks.keys[0]: contains private key member 'd'",
            ),
            (
                json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": b64(&[1u8; 31])}]}),
                &[Alg::EdDSA],
                "providers[0].jwks.keys[0].x: must decode to 32 bytes",
            ),
            (
                json!({"keys": [es256_jwk(&ec, Some("a")), es256_jwk(&ec, Some("a"))]}),
                &[Alg::ES256],
                "providers[0].jwks.keys[1].kid: duplicate name 'a'",
            ),
            (
                json!({"keys": [es256_jwk(&ec, Some(""))]}),
                &[Alg::ES256],
                "providers[0].jwks.keys[0].kid: must not be empty",
            ),
            (
                json!({"keys": [es256_jwk(&ec, Some(&"k".repeat(257)))]}),
                &[Alg::ES256],
                "providers[0].jwks.keys[0].kid: longer than 256",
            ),
            (
                json!({"keys": [{"crv": "P-256"}]}),
                &[Alg::ES256],
                "providers[0].jwks.keys[0].kty: required",
            ),
            (
                json!({"keys": [es256_jwk(&ec, None)]}),
                &[Alg::RS256],
                "providers[0].jwks.keys: no usable signing key",
            ),
        ];
        for (jwks, allowed, want) in table {
            let got = err_msg(jwks.clone(), allowed);
            assert!(
                got.starts_with(want),
                "jwks {jwks}\n got: {got}\nwant: {want}"
            );
        }
    }

    #[test]
    fn remote_sets_skip_unusable_keys_but_not_ambiguity() {
        let ec = ES256KeyPair::generate();
        let mut short_x = es256_jwk(&ec, Some("short"));
        short_x["x"] = json!(b64(&[1u8; 31]));
        let mut private = es256_jwk(&ec, Some("leaked"));
        private["d"] = json!("AAAA");
        let jwks = json!({"keys": [short_x, private, es256_jwk(&ec, Some("good"))]});
        assert!(parse_jwks(&jwks, &[Alg::ES256], "p").is_err());
        let set = parse_jwks_remote(&jwks, &[Alg::ES256], "jwks").unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(
            set.warning_lines(),
            [
                "jwks.keys[0]: skipped: unusable: .x must decode to 32 bytes for EC P-256, got 31",
                "jwks.keys[1]: skipped: unusable: contains private key member 'd'; configure only the public key",
            ]
        );
        let dup = json!({"keys": [es256_jwk(&ec, Some("a")), es256_jwk(&ec, Some("a"))]});
        assert_eq!(
            parse_jwks_remote(&dup, &[Alg::ES256], "jwks")
                .unwrap_err()
                .to_string(),
            "jwks.keys[1].kid: duplicate name 'a'"
        );
        let none = json!({"keys": [short_x_only(&ec)]});
        assert!(parse_jwks_remote(&none, &[Alg::ES256], "jwks")
            .unwrap_err()
            .to_string()
            .starts_with("jwks.keys: no usable signing key"));
    }

    fn short_x_only(ec: &ES256KeyPair) -> Value {
        let mut k = es256_jwk(ec, None);
        k["x"] = json!(b64(&[1u8; 31]));
        k
    }

    #[test]
    fn keyless_lookup_needs_a_unique_candidate() {
        let a = Ed25519KeyPair::generate();
        let b = Ed25519KeyPair::generate();
        let set = parse_jwks(
            &json!({"keys": [ed_jwk(&a, Some("a")), ed_jwk(&b, None)]}),
            &[Alg::EdDSA],
            "p",
        )
        .unwrap();
        assert_eq!(
            set.find(None, Alg::EdDSA).unwrap_err(),
            KeyLookupError::NoUniqueKey { candidates: 2 }
        );
        // Without kid, up to MAX_KIDLESS_KEYS keys are tried, in set order.
        let got: Vec<Option<&str>> = set
            .candidates(None, Alg::EdDSA)
            .unwrap()
            .iter()
            .map(|k| k.kid())
            .collect();
        assert_eq!(got, vec![Some("a"), None]);
        assert_eq!(set.candidates(Some("a"), Alg::EdDSA).unwrap().len(), 1);
        assert_eq!(
            set.candidates(None, Alg::ES256).unwrap_err(),
            KeyLookupError::NoUniqueKey { candidates: 0 }
        );
        let many: Vec<Value> = (0..=MAX_KIDLESS_KEYS)
            .map(|i| ed_jwk(&Ed25519KeyPair::generate(), Some(&format!("k{i}"))))
            .collect();
        let big = parse_jwks(&json!({ "keys": many }), &[Alg::EdDSA], "p").unwrap();
        assert_eq!(
            big.candidates(None, Alg::EdDSA).unwrap_err(),
            KeyLookupError::NoUniqueKey {
                candidates: MAX_KIDLESS_KEYS + 1
            }
        );
        assert_eq!(
            set.find(Some(&"a".repeat(300)), Alg::EdDSA).unwrap_err(),
            KeyLookupError::UnknownKid
        );
    }

    /// Our SPKI DER is the one the software verifier would hand the host.
    #[test]
    fn spki_der_matches_the_library() {
        let rsa =
            RS256KeyPair::from_pem(include_str!("../testdata/rsa2048_test_only.pem")).unwrap();
        let c = rsa.public_key().to_components();
        assert_eq!(
            crate::jwt::der::rsa_spki(&c.n, &c.e).unwrap(),
            rsa.public_key().to_der().unwrap()
        );
        for _ in 0..4 {
            let ec = ES256KeyPair::generate();
            let sec1 = ec.public_key().public_key().to_bytes_uncompressed();
            let (x, y) = (&sec1[1..33], &sec1[33..]);
            assert!(crate::jwt::curve::on_curve(x, y, false));
            assert_eq!(
                crate::jwt::der::ec_spki(&sec1, false),
                ec.public_key().to_der().unwrap()
            );
            let ec384 = ES384KeyPair::generate();
            let sec1 = ec384.public_key().public_key().to_bytes_uncompressed();
            assert!(crate::jwt::curve::on_curve(&sec1[1..49], &sec1[49..], true));
            assert_eq!(
                crate::jwt::der::ec_spki(&sec1, true),
                ec384.public_key().to_der().unwrap()
            );
        }
    }
}
