//! Native-speed signature checks through the host (Envoy's `verify_signature`
//! foreign function, BoringSSL), with the pure-wasm verifier as fallback.
//!
//! Pure-wasm RS256 costs ~0.8 ms and ES256 ~1.9 ms per check; BoringSSL does
//! them in tens of µs. Envoy 1.40 accepts RSA PKCS#1 v1.5 and ECDSA (DER
//! signatures) but not Ed25519 or RSA-PSS, so EdDSA and PS* always stay in
//! wasm. The host is asked only after every cheap check has passed, and a
//! host that cannot answer (`None`) means "verify in wasm", never "accept".

use super::alg::Alg;
use crate::host::SignatureBackend;

/// The hash name Envoy's crypto utility expects, for the algorithms the host
/// verifies; `None` for those it cannot (EdDSA, PS*).
pub fn host_hash(alg: Alg) -> Option<&'static str> {
    match alg {
        Alg::RS256 | Alg::ES256 => Some("sha256"),
        Alg::RS384 | Alg::ES384 => Some("sha384"),
        Alg::RS512 => Some("sha512"),
        Alg::PS256 | Alg::PS384 | Alg::PS512 | Alg::EdDSA => None,
    }
}

/// The signature in the form the host wants: RSA as is; ECDSA raw `r||s`
/// (JWS) converted to DER. `raw` has already been length-checked.
pub fn host_signature(alg: Alg, raw: &[u8]) -> Option<Vec<u8>> {
    match alg {
        Alg::ES256 | Alg::ES384 => ecdsa_raw_to_der(raw),
        _ => Some(raw.to_vec()),
    }
}

/// `r||s` (equal halves) to `SEQUENCE { INTEGER r, INTEGER s }`.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || raw.len() % 2 != 0 || raw.len() > 132 {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let int = |x: &[u8]| {
        // Minimal big-endian encoding, with a 0x00 when the top bit is set.
        let x = match x.iter().position(|b| *b != 0) {
            Some(i) => x.get(i..).unwrap_or(&[]),
            None => &[0u8][..],
        };
        let mut v = Vec::with_capacity(x.len() + 3);
        v.push(0x02);
        let pad = x.first().is_some_and(|b| b & 0x80 != 0);
        v.push((x.len() + usize::from(pad)) as u8);
        if pad {
            v.push(0);
        }
        v.extend_from_slice(x);
        v
    };
    let (ri, si) = (int(r), int(s));
    let body = ri.len() + si.len();
    let mut out = Vec::with_capacity(body + 3);
    out.push(0x30);
    if body >= 0x80 {
        out.push(0x81);
    }
    out.push(body as u8);
    out.extend_from_slice(&ri);
    out.extend_from_slice(&si);
    Some(out)
}

/// A P-256 key, message and signature made once with OpenSSL. The host is
/// used only if it accepts this signature AND refuses a tampered copy, so a
/// host that answers "valid" to everything can never be trusted.
const PROBE_SPKI: &str = "3059301306072a8648ce3d020106082a8648ce3d03010703420004840582b62ae5d916f7d33b5e65ff8c2b85223d0d0ffafb15ec80fd16bab7580ce603187d4b51c83e36f15a23ac81c3f266910b1559ef149fb3a13947854af661";
const PROBE_SIG: &str = "3045022049cedcd12184421ee00500a9954600ebe6455e6c6c621bdd9cba35d26ea75a7e022100ca83fde9fee450f7d40e832b1755f6788a93903412f363b39072186b6fadd2ff";
const PROBE_TEXT: &[u8] = b"oam-authz native crypto probe";

fn unhex(s: &str) -> Vec<u8> {
    s.as_bytes()
        .chunks(2)
        .filter_map(|c| {
            std::str::from_utf8(c)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

/// Whether `backend` verifies correctly: a known-good signature must pass and
/// the same signature over different text must fail.
pub fn probe(backend: &dyn SignatureBackend) -> bool {
    let (spki, sig) = (unhex(PROBE_SPKI), unhex(PROBE_SIG));
    backend.verify("sha256", &spki, &sig, PROBE_TEXT) == Some(true)
        && backend.verify("sha256", &spki, &sig, b"oam-authz native crypto probE") == Some(false)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    out.push((field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Protobuf `VerifySignatureArguments` (envoy ext/verify_signature.proto):
/// 1 hash_function, 2 public_key (DER), 3 signature, 4 text.
pub fn encode_arguments(hash: &str, spki_der: &[u8], signature: &[u8], text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(spki_der.len() + signature.len() + text.len() + 24);
    put_bytes(&mut out, 1, hash.as_bytes());
    put_bytes(&mut out, 2, spki_der);
    put_bytes(&mut out, 3, signature);
    put_bytes(&mut out, 4, text);
    out
}

fn get_varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Protobuf `VerifySignatureResult`: 1 result (bool), 2 error (string).
/// Unknown fields are skipped; anything malformed is `None`.
pub fn decode_result(b: &[u8]) -> Option<(bool, String)> {
    let (mut i, mut result, mut error) = (0usize, false, String::new());
    while i < b.len() {
        let tag = get_varint(b, &mut i)?;
        match (tag >> 3, tag & 7) {
            (1, 0) => result = get_varint(b, &mut i)? != 0,
            (field, 2) => {
                let len = usize::try_from(get_varint(b, &mut i)?).ok()?;
                let bytes = b.get(i..i.checked_add(len)?)?;
                i += len;
                if field == 2 {
                    error = String::from_utf8_lossy(bytes).into_owned();
                }
            }
            (_, 0) => {
                get_varint(b, &mut i)?;
            }
            _ => return None,
        }
    }
    Some((result, error))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn der_signatures() {
        // r = 1, s = 0x80 (needs a pad byte)
        let mut raw = vec![0u8; 64];
        raw[31] = 1;
        raw[63] = 0x80;
        assert_eq!(
            ecdsa_raw_to_der(&raw).unwrap(),
            vec![0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x02, 0x00, 0x80]
        );
        // r = s = 0 encodes as INTEGER 0: the host must refuse it, not us crash.
        assert_eq!(
            ecdsa_raw_to_der(&[0u8; 64]).unwrap(),
            vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]
        );
        // Full-width P-384 values with the top bit set: padded, short length form.
        let der = ecdsa_raw_to_der(&[0xffu8; 96]).unwrap();
        assert_eq!(&der[..4], &[0x30, 2 * (2 + 1 + 48), 0x02, 49]);
        // 2 x 66-byte values exceed 127 bytes: long length form.
        let der = ecdsa_raw_to_der(&[0xffu8; 132]).unwrap();
        assert_eq!(&der[..3], &[0x30, 0x81, 2 * (2 + 1 + 66)]);
        assert!(ecdsa_raw_to_der(&[1u8; 63]).is_none());
        assert!(ecdsa_raw_to_der(&[]).is_none());
    }

    #[test]
    fn protobuf_round_trip() {
        let args = encode_arguments("sha256", &[1, 2, 3], &[9; 200], b"a.b");
        assert_eq!(&args[..8], &[0x0a, 6, b's', b'h', b'a', b'2', b'5', b'6']);
        assert_eq!(&args[8..13], &[0x12, 3, 1, 2, 3]);
        assert_eq!(&args[13..16], &[0x1a, 0xc8, 0x01], "200 as a varint");
        assert_eq!(decode_result(&[0x08, 0x01]), Some((true, String::new())));
        assert_eq!(
            decode_result(&[0x08, 0x00, 0x12, 0x02, b'n', b'o']),
            Some((false, "no".into()))
        );
        assert_eq!(
            decode_result(&[]),
            Some((false, String::new())),
            "proto3 default: false"
        );
        assert_eq!(decode_result(&[0x12, 0x05, b'x']), None, "truncated");
        assert_eq!(decode_result(&[0x0b]), None, "unsupported wire type");
        assert_eq!(decode_result(&[0x08, 0xff]), None, "unterminated varint");
    }

    /// A backend on RustCrypto's P-256 verifier, to prove the probe vector
    /// is right and that the probe rejects liars.
    #[derive(Debug)]
    struct Rust;
    impl SignatureBackend for Rust {
        fn verify(&self, _: &str, spki: &[u8], sig: &[u8], text: &[u8]) -> Option<bool> {
            use p256::ecdsa::signature::Verifier as _;
            use p256::pkcs8::DecodePublicKey as _;
            let vk = p256::ecdsa::VerifyingKey::from_public_key_der(spki).ok()?;
            let sig = p256::ecdsa::Signature::from_der(sig).ok()?;
            Some(vk.verify(text, &sig).is_ok())
        }
    }
    #[derive(Debug)]
    struct Liar;
    impl SignatureBackend for Liar {
        fn verify(&self, _: &str, _: &[u8], _: &[u8], _: &[u8]) -> Option<bool> {
            Some(true)
        }
    }
    #[derive(Debug)]
    struct Absent;
    impl SignatureBackend for Absent {
        fn verify(&self, _: &str, _: &[u8], _: &[u8], _: &[u8]) -> Option<bool> {
            None
        }
    }

    #[test]
    fn probe_accepts_a_correct_verifier_only() {
        assert!(probe(&Rust));
        assert!(!probe(&Liar));
        assert!(!probe(&Absent));
    }

    #[test]
    fn which_algorithms_go_to_the_host() {
        assert_eq!(host_hash(Alg::RS256), Some("sha256"));
        assert_eq!(host_hash(Alg::ES384), Some("sha384"));
        assert_eq!(host_hash(Alg::EdDSA), None);
        assert_eq!(host_hash(Alg::PS256), None);
    }
}
