//! SubjectPublicKeyInfo DER for RSA and EC public keys, as Envoy's
//! `verify_signature` (BoringSSL) takes them, and the checks a key must pass
//! before we hand it over: built here, so the filter needs no RSA or EC code.

/// DER length octets.
fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let significant = bytes.get(skip..).unwrap_or_default();
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(significant);
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 6);
    out.push(tag);
    push_len(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// A non-negative INTEGER from big-endian magnitude bytes.
fn integer(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let m = magnitude.get(skip..).unwrap_or_default();
    let mut body = Vec::with_capacity(m.len() + 1);
    if m.first().is_none_or(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(m);
    tlv(0x02, &body)
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(bytes.len() + 1);
    body.push(0);
    body.extend_from_slice(bytes);
    tlv(0x03, &body)
}

/// rsaEncryption (1.2.840.113549.1.1.1).
const OID_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
];
/// id-ecPublicKey (1.2.840.10045.2.1).
const OID_EC: &[u8] = &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 (1.2.840.10045.3.1.7).
const OID_P256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// secp384r1 (1.3.132.0.34).
const OID_P384: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const NULL: &[u8] = &[0x05, 0x00];

/// Why an RSA key is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaKeyError {
    /// The modulus is not 2048 to 4096 bits.
    ModulusSize { bits: usize },
    /// An even modulus is not an RSA modulus.
    EvenModulus,
    /// The exponent is not an odd number in 3..2^32.
    Exponent,
}

impl std::fmt::Display for RsaKeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RsaKeyError::ModulusSize { bits } => write!(f, "a {bits}-bit modulus"),
            RsaKeyError::EvenModulus => write!(f, "an even modulus"),
            RsaKeyError::Exponent => write!(f, "an unusual public exponent"),
        }
    }
}

/// The modulus without leading zero bytes (its length is the signature length).
pub fn rsa_modulus(n: &[u8]) -> &[u8] {
    let skip = n.iter().take_while(|b| **b == 0).count();
    n.get(skip..).unwrap_or_default()
}

/// Check an RSA public key (`n`, `e` big-endian) and return its SPKI DER.
pub fn rsa_spki(n: &[u8], e: &[u8]) -> Result<Vec<u8>, RsaKeyError> {
    let m = rsa_modulus(n);
    let bits = m.len() * 8 - m.first().map_or(8, |b| b.leading_zeros() as usize);
    if !(2048..=4096).contains(&bits) {
        return Err(RsaKeyError::ModulusSize { bits });
    }
    if m.last().is_some_and(|b| b & 1 == 0) {
        return Err(RsaKeyError::EvenModulus);
    }
    let e = rsa_modulus(e);
    let value = if e.len() <= 4 {
        e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
    } else {
        0
    };
    if value < 3 || value % 2 == 0 {
        return Err(RsaKeyError::Exponent);
    }
    let key = seq(&[&integer(m), &integer(e)]);
    Ok(seq(&[&seq(&[OID_RSA, NULL]), &bit_string(&key)]))
}

/// SPKI DER of an EC point already checked to be on its curve: `sec1` is
/// `04 || x || y`; `p384` selects the curve.
pub fn ec_spki(sec1: &[u8], p384: bool) -> Vec<u8> {
    let curve = if p384 { OID_P384 } else { OID_P256 };
    seq(&[&seq(&[OID_EC, curve]), &bit_string(sec1)])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        let mut v = Vec::new();
        push_len(&mut v, 0x7f);
        push_len(&mut v, 0x80);
        push_len(&mut v, 0x1234);
        assert_eq!(v, [0x7f, 0x81, 0x80, 0x82, 0x12, 0x34]);
        assert_eq!(integer(&[0, 0, 0x80]), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(&[0x01, 0x00, 0x01]), [0x02, 0x03, 0x01, 0x00, 0x01]);
        assert_eq!(integer(&[]), [0x02, 0x01, 0x00]);
    }

    #[test]
    fn rsa_key_checks() {
        let mut n = vec![0xc3; 256];
        n[255] |= 1;
        let e = [1, 0, 1];
        assert!(rsa_spki(&n, &e).is_ok());
        assert_eq!(
            rsa_spki(&n[..128], &e),
            Err(RsaKeyError::ModulusSize { bits: 1024 })
        );
        let mut even = n.clone();
        even[255] = 0xc2;
        assert_eq!(rsa_spki(&even, &e), Err(RsaKeyError::EvenModulus));
        assert_eq!(rsa_spki(&n, &[1]), Err(RsaKeyError::Exponent));
        assert_eq!(rsa_spki(&n, &[1, 0, 0]), Err(RsaKeyError::Exponent));
        // A leading zero byte does not count towards the size.
        let mut padded = vec![0];
        padded.extend_from_slice(&n);
        assert_eq!(rsa_spki(&padded, &e), rsa_spki(&n, &e));
    }
}
