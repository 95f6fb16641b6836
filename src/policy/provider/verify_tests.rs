//! End-to-end verification tests: every pitfall from
//! docs/security.md as a crafted token that a naive
//! verifier would accept, plus positive cases per algorithm.
//!
//! `NOW` is in 2023 on purpose: if jwt-simple ever consulted its own clock
//! instead of `artificial_time`, every positive case would fail as expired.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::config::ProviderConfig;
use crate::json::read::{JsonError, MAX_DEPTH};
use crate::jwt::jwks::tests::{b64, ed_jwk, es256_jwk, rsa_jwk};
use crate::jwt::peek_issuer;
use crate::jwt::verify::{self, Segment, TokenError};
use crate::policy::claims::lookup;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use std::sync::OnceLock;

const NOW: u64 = 1_700_000_000;
const ISS: &str = "https://idp.example.com";
const RSA_PEM: &str = include_str!("../../testdata/rsa2048_test_only.pem");

struct Fixture {
    ed1: Ed25519KeyPair,
    ed2: Ed25519KeyPair,
    ec1: ES256KeyPair,
    provider: Provider,
}

fn fx() -> &'static Fixture {
    static FX: OnceLock<Fixture> = OnceLock::new();
    FX.get_or_init(|| {
        let ed1 = Ed25519KeyPair::generate();
        let ed2 = Ed25519KeyPair::generate();
        let ec1 = ES256KeyPair::generate();
        let rsa = RS256KeyPair::from_pem(RSA_PEM).unwrap();
        let cfg = ProviderConfig {
            name: "idp".into(),
            issuer: ISS.into(),
            audiences: vec!["orders".into(), "billing".into()],
            algorithms: vec![
                "RS256".into(),
                "PS256".into(),
                "ES256".into(),
                "EdDSA".into(),
            ],
            jwks: Some(json!({"keys": [
                ed_jwk(&ed1, Some("ed1")),
                ed_jwk(&ed2, Some("ed2")),
                es256_jwk(&ec1, Some("ec1")),
                rsa_jwk(&rsa, Some("rsa1")),
            ]})),
            remote_jwks: None,
            from: None,
            clock_skew_seconds: None,
            max_lifetime_seconds: None,
            forward_token: false,
            audience_claim: None,
            allow_http_issuer: false,
        };
        let (provider, _) = super::tests::compile_at(&cfg, 0).unwrap();
        Fixture {
            ed1,
            ed2,
            ec1,
            provider,
        }
    })
}

/// Default claims with `patch` applied; a `null` in the patch removes the claim.
fn claims(patch: Value) -> String {
    let mut c = json!({
        "iss": ISS, "sub": "alice", "aud": "orders",
        "iat": NOW - 10, "exp": NOW + 300, "groups": ["admins"],
    });
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c.to_string()
}

fn sign_ed_raw(kp: &Ed25519KeyPair, signing_input: &str) -> String {
    let sig = kp
        .key_pair()
        .as_ref()
        .sk
        .sign(signing_input.as_bytes(), None);
    b64(&sig[..])
}

/// A correctly EdDSA-signed token with arbitrary raw header and payload JSON.
fn ed_token(kp: &Ed25519KeyPair, header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = sign_ed_raw(kp, &input);
    format!("{input}.{sig}")
}

/// The fixture's ES256 key pair, signing with the given `kid`.
fn ec1_with_kid(kid: &str) -> ES256KeyPair {
    ES256KeyPair::from_bytes(&fx().ec1.to_bytes())
        .unwrap()
        .with_key_id(kid)
}

const ED1: &str = r#"{"alg":"EdDSA","kid":"ed1","typ":"JWT"}"#;

fn verify_token(token: &str) -> Result<VerifiedToken, TokenError> {
    fx().provider.verify(token, NOW)
}

/// The error a token is refused with; panics if it is accepted.
#[track_caller]
fn refusal(token: &str) -> TokenError {
    verify_token(token).unwrap_err()
}

/// Asserts that `$token` is refused with an error matching `$pat` (and the
/// optional guard); extra arguments are a format string naming the case.
/// The exact variant, not its shared `code()`, so a test cannot pass because
/// the token failed some other check with the same code.
macro_rules! assert_refused {
    ($token:expr, $pat:pat $(if $guard:expr)?) => {
        assert_refused!($token, $pat $(if $guard)?, "{}", stringify!($token))
    };
    ($token:expr, $pat:pat $(if $guard:expr)?, $($ctx:tt)+) => {{
        let e = refusal(&$token);
        assert!(
            matches!(e, $pat $(if $guard)?),
            "{}: expected {}, got {e:?}",
            format_args!($($ctx)+),
            stringify!($pat $(if $guard)?),
        );
    }};
}

fn jwt_claims(sub: &str) -> JWTClaims<NoCustomClaims> {
    let mut c = Claims::create(Duration::from_secs(300))
        .with_issuer(ISS)
        .with_subject(sub)
        .with_audience("orders");
    c.issued_at = Some(UnixTimeStamp::from_secs(NOW - 10));
    c.invalid_before = Some(UnixTimeStamp::from_secs(NOW - 10));
    c.expires_at = Some(UnixTimeStamp::from_secs(NOW + 300));
    c
}

fn replace_segment(token: &str, index: usize, with: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[index] = with;
    parts.join(".")
}

// ---------- positive cases ----------

#[test]
fn accepts_rs256() {
    let kp = RS256KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("rsa1");
    let t = verify_token(&kp.sign(jwt_claims("alice")).unwrap()).unwrap();
    assert_eq!(t.issuer, ISS);
    assert_eq!(t.subject.as_deref(), Some("alice"));
    assert_eq!(t.expires_at, NOW + 300);
}

#[test]
fn accepts_ps256() {
    let kp = PS256KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("rsa1");
    let t = verify_token(&kp.sign(jwt_claims("bob")).unwrap()).unwrap();
    assert_eq!(t.subject.as_deref(), Some("bob"));
}

#[test]
fn accepts_es256_with_and_without_kid() {
    let with_kid = ec1_with_kid("ec1");
    assert!(verify_token(&with_kid.sign(jwt_claims("a")).unwrap()).is_ok());
    // No kid: exactly one key in the set can verify ES256, so it is used.
    assert!(verify_token(&fx().ec1.sign(jwt_claims("a")).unwrap()).is_ok());
}

#[test]
fn accepts_eddsa_and_returns_our_parsed_claims() {
    let t = verify_token(&ed_token(
        &fx().ed1,
        ED1,
        &claims(json!({"realm_access": {"roles": ["ops"]}})),
    ))
    .unwrap();
    assert_eq!(t.claims["groups"], json!(["admins"]));
    assert_eq!(
        lookup(&t.claims, "realm_access.roles"),
        Some(&json!(["ops"]))
    );
    // The second Ed25519 key is selected by kid, not tried in turn.
    let h2 = r#"{"alg":"EdDSA","kid":"ed2"}"#;
    assert!(verify_token(&ed_token(&fx().ed2, h2, &claims(json!({})))).is_ok());
    assert_eq!(
        refusal(&ed_token(&fx().ed1, h2, &claims(json!({})))),
        TokenError::BadSignature
    );
}

#[test]
fn typ_variants() {
    let bad_typ = TokenError::BadHeader("'typ' must be JWT or end in +jwt".into());
    for (typ, want) in [
        ("JWT", Ok(())),
        ("jwt", Ok(())),
        ("at+jwt", Ok(())),
        ("JOSE", Err(bad_typ)),
    ] {
        let h = format!(r#"{{"alg":"EdDSA","kid":"ed1","typ":"{typ}"}}"#);
        assert_eq!(
            verify_token(&ed_token(&fx().ed1, &h, &claims(json!({})))).map(|_| ()),
            want,
            "{typ}"
        );
    }
}

// ---------- algorithm pitfalls ----------

#[test]
fn alg_none_is_refused() {
    let p = b64(claims(json!({})).as_bytes());
    for alg in ["none", "None", "NONE"] {
        let h = b64(format!(r#"{{"alg":"{alg}","kid":"ed1"}}"#).as_bytes());
        // Empty signature (the classic form) and a junk one.
        assert_refused!(
            format!("{h}.{p}."),
            TokenError::AlgNotAllowed { alg: ref a } if a == alg,
            "{alg} empty sig"
        );
        assert_refused!(
            format!("{h}.{p}.AAAA"),
            TokenError::AlgNotAllowed { alg: ref a } if a == alg,
            "{alg} junk sig"
        );
    }
    // No alg at all.
    let h = b64(br#"{"kid":"ed1"}"#);
    assert_eq!(
        refusal(&format!("{h}.{p}.AAAA")),
        TokenError::BadHeader("'alg' is missing".into())
    );
}

#[test]
fn hs256_with_rsa_public_key_as_secret_is_refused() {
    let rsa = RS256KeyPair::from_pem(RSA_PEM).unwrap();
    for secret in [
        rsa.public_key().to_pem().unwrap().into_bytes(),
        rsa.public_key().to_der().unwrap(),
    ] {
        let key = HS256Key::from_bytes(&secret).with_key_id("rsa1");
        let token = key.authenticate(jwt_claims("mallory")).unwrap();
        assert_eq!(
            refusal(&token),
            TokenError::AlgNotAllowed {
                alg: "HS256".into()
            }
        );
    }
}

#[test]
fn es256_token_against_rsa_kid_is_refused() {
    let kp = ec1_with_kid("rsa1");
    assert_eq!(
        refusal(&kp.sign(jwt_claims("a")).unwrap()),
        TokenError::AlgKeyMismatch {
            alg: Alg::ES256,
            kid: "rsa1".into()
        }
    );
    // And an RS256 token claiming an Ed25519 kid.
    let rsa = RS256KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("ed1");
    assert_eq!(
        refusal(&rsa.sign(jwt_claims("a")).unwrap()),
        TokenError::AlgKeyMismatch {
            alg: Alg::RS256,
            kid: "ed1".into()
        }
    );
}

#[test]
fn alg_outside_provider_allow_list_is_refused() {
    let kp = ES384KeyPair::generate().with_key_id("ec1");
    assert_eq!(
        refusal(&kp.sign(jwt_claims("a")).unwrap()),
        TokenError::AlgNotAllowed {
            alg: "ES384".into()
        }
    );
    let kp = RS512KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("rsa1");
    assert_eq!(
        refusal(&kp.sign(jwt_claims("a")).unwrap()),
        TokenError::AlgNotAllowed {
            alg: "RS512".into()
        }
    );
}

// ---------- signature pitfalls ----------

#[test]
fn psychic_signature_is_refused() {
    let h = b64(br#"{"alg":"ES256","kid":"ec1"}"#);
    let p = b64(claims(json!({})).as_bytes());
    let zero = b64(&[0u8; 64]);
    assert_eq!(
        refusal(&format!("{h}.{p}.{zero}")),
        TokenError::BadSignature
    );
    // r = s = n (the group order) is the other classic form.
    let n = hex_bytes("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    let rs = b64(&[n.clone(), n].concat());
    assert_eq!(refusal(&format!("{h}.{p}.{rs}")), TokenError::BadSignature);
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn wrong_signature_length_is_refused() {
    let good = ec1_with_kid("ec1").sign(jwt_claims("a")).unwrap();
    let sig = URL_SAFE_NO_PAD
        .decode(good.rsplit('.').next().unwrap())
        .unwrap();
    // DER-encoded or padded ES256 signatures: same bytes plus one.
    let longer = b64(&[sig.clone(), vec![0]].concat());
    assert_eq!(
        refusal(&replace_segment(&good, 2, &longer)),
        TokenError::SignatureLength {
            expected: 64,
            found: 65
        }
    );
    let shorter = b64(&sig[..63]);
    assert_eq!(
        refusal(&replace_segment(&good, 2, &shorter)),
        TokenError::SignatureLength {
            expected: 64,
            found: 63
        }
    );

    let rsa = RS256KeyPair::from_pem(RSA_PEM)
        .unwrap()
        .with_key_id("rsa1")
        .sign(jwt_claims("a"))
        .unwrap();
    let sig = URL_SAFE_NO_PAD
        .decode(rsa.rsplit('.').next().unwrap())
        .unwrap();
    assert_eq!(sig.len(), 256);
    let err = fx()
        .provider
        .verify(&replace_segment(&rsa, 2, &b64(&sig[1..])), NOW)
        .unwrap_err();
    assert_eq!(
        err,
        TokenError::SignatureLength {
            expected: 256,
            found: 255
        }
    );

    let ed = ed_token(&fx().ed1, ED1, &claims(json!({})));
    let empty = replace_segment(&ed, 2, "");
    assert_eq!(
        refusal(&empty),
        TokenError::SignatureLength {
            expected: 64,
            found: 0
        }
    );
}

#[test]
fn tampered_payload_is_refused() {
    let good = ec1_with_kid("ec1").sign(jwt_claims("alice")).unwrap();
    assert!(verify_token(&good).is_ok());
    let evil = b64(claims(json!({"sub": "admin", "groups": ["root"]})).as_bytes());
    assert_eq!(
        refusal(&replace_segment(&good, 1, &evil)),
        TokenError::BadSignature
    );

    let good = ed_token(&fx().ed1, ED1, &claims(json!({})));
    assert_eq!(
        refusal(&replace_segment(&good, 1, &evil)),
        TokenError::BadSignature
    );
}

#[test]
fn token_signed_by_a_key_outside_the_set_is_refused() {
    let stranger = Ed25519KeyPair::generate();
    assert_eq!(
        refusal(&ed_token(&stranger, ED1, &claims(json!({})))),
        TokenError::BadSignature
    );
}

// ---------- kid pitfalls ----------

#[test]
fn kid_rules() {
    let p = claims(json!({}));
    let unknown = |kid: &str| TokenError::UnknownKid { kid: kid.into() };
    let table = [
        (r#"{"alg":"EdDSA","kid":"nope"}"#, unknown("nope")),
        (r#"{"alg":"EdDSA","kid":"ED1"}"#, unknown("ED1")),
        (r#"{"alg":"EdDSA","kid":"ed1 "}"#, unknown("ed1 ")),
        (r#"{"alg":"EdDSA","kid":"../ed1"}"#, unknown("../ed1")),
        (
            r#"{"alg":"EdDSA","kid":7}"#,
            TokenError::BadHeader("'kid' must be a string".into()),
        ),
    ];
    for (h, want) in table {
        assert_eq!(refusal(&ed_token(&fx().ed1, h, &p)), want, "{h}");
    }
    let long = format!(r#"{{"alg":"EdDSA","kid":"{}"}}"#, "k".repeat(300));
    assert_refused!(
        ed_token(&fx().ed1, &long, &p),
        TokenError::UnknownKid { ref kid } if kid.starts_with("kkkk") && kid.len() < 300
    );
}

#[test]
fn jku_x5u_headers_are_ignored() {
    let h = r#"{"alg":"EdDSA","kid":"ed1","jku":"https://evil.example/jwks.json","x5u":"https://evil.example/c.pem"}"#;
    // Signed by the configured key: accepted, nothing fetched.
    assert!(verify_token(&ed_token(&fx().ed1, h, &claims(json!({})))).is_ok());
    // Signed by the key the URL would serve: still checked against ed1 only.
    let attacker = Ed25519KeyPair::generate();
    assert_eq!(
        refusal(&ed_token(&attacker, h, &claims(json!({})))),
        TokenError::BadSignature
    );
}

#[test]
fn embedded_jwk_header_is_never_trusted() {
    let attacker = Ed25519KeyPair::generate();
    let jwk = ed_jwk(&attacker, Some("ed1"));
    let h = json!({"alg": "EdDSA", "kid": "ed1", "jwk": jwk}).to_string();
    // An object-valued `jwk` is refused up front as a malformed header (the
    // library could not parse it); a string-valued one is ignored and the
    // configured key decides.
    assert_refused!(
        ed_token(&attacker, &h, &claims(json!({}))),
        TokenError::BadHeader(ref m) if m.starts_with("'jwk' is not a string")
    );
    let h = json!({"alg": "EdDSA", "kid": "ed1", "jwk": jwk.to_string()}).to_string();
    assert_eq!(
        refusal(&ed_token(&attacker, &h, &claims(json!({})))),
        TokenError::BadSignature
    );
}

#[test]
fn crit_header_is_refused() {
    for h in [
        r#"{"alg":"EdDSA","kid":"ed1","crit":["exp"],"exp":1}"#,
        r#"{"alg":"EdDSA","kid":"ed1","crit":[]}"#,
    ] {
        assert_eq!(
            refusal(&ed_token(&fx().ed1, h, &claims(json!({})))),
            TokenError::CriticalHeader,
            "{h}"
        );
    }
}

// ---------- structure and size ----------

#[test]
fn structure_rules() {
    let good = ed_token(&fx().ed1, ED1, &claims(json!({})));
    let parts: Vec<&str> = good.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);
    let segments = |n| TokenError::BadStructure { segments: n };
    let table = [
        (format!("{h}.{p}"), segments(2)),
        (format!("{h}.{p}.{s}.{s}"), segments(4)),
        (format!("{h}..{s}"), segments(3)),
        (format!(".{p}.{s}"), segments(3)),
        (String::new(), segments(1)),
        ("..".into(), segments(3)),
        (format!(" {good}"), TokenError::BadBase64(Segment::Header)),
        (
            format!("{good}\n"),
            TokenError::BadBase64(Segment::Signature),
        ),
    ];
    for (t, want) in table {
        assert_eq!(refusal(&t), want, "{t:?}");
    }
}

#[test]
fn non_canonical_base64_is_refused_even_when_signed() {
    // Header and payload that the standard alphabet encodes with '/' or '+';
    // the signature is valid over exactly these bytes, so only the encoding
    // rule stands between the token and acceptance.
    let payload = claims(json!({"note": "??????>>>>>>"}));
    let hs = STANDARD_NO_PAD.encode(ED1.as_bytes());
    let ps = STANDARD_NO_PAD.encode(payload.as_bytes());
    assert!(ps.contains('/') || ps.contains('+'));
    let input = format!("{hs}.{ps}");
    let token = format!("{input}.{}", sign_ed_raw(&fx().ed1, &input));
    assert_eq!(refusal(&token), TokenError::BadBase64(Segment::Payload));

    // Padding on a segment, signed over the padded text.
    let hp = format!("{}=", b64(ED1.as_bytes()));
    let input = format!("{hp}.{}", b64(payload.as_bytes()));
    let token = format!("{input}.{}", sign_ed_raw(&fx().ed1, &input));
    assert_eq!(refusal(&token), TokenError::BadBase64(Segment::Header));

    // Padding on the signature.
    let good = ed_token(&fx().ed1, ED1, &payload);
    assert_eq!(
        refusal(&format!("{good}==")),
        TokenError::BadBase64(Segment::Signature)
    );
}

#[test]
fn oversized_token_fails_before_decoding() {
    // 64 KiB of characters that are not even base64: only a size check
    // before decoding can produce token_too_large here.
    let junk = "!".repeat(64 * 1024);
    let token = format!("{junk}.{junk}.{junk}");
    let too_large_token = TokenError::TooLarge {
        what: "token",
        limit: verify::MAX_TOKEN_LEN,
    };
    assert_eq!(refusal(&token), too_large_token);
    assert_eq!(peek_issuer(&token).unwrap_err(), too_large_token);
    // Large header segment, large payload segment.
    let big_h = "A".repeat(verify::MAX_HEADER_SEGMENT + 1);
    assert_eq!(
        refusal(&format!("{big_h}.AAAA.AAAA")),
        TokenError::TooLarge {
            what: "header",
            limit: verify::MAX_HEADER_SEGMENT
        }
    );
    let big_p = "A".repeat(12_000);
    let too_large_claims = TokenError::TooLarge {
        what: "claim set",
        limit: verify::MAX_PAYLOAD_BYTES,
    };
    assert_eq!(refusal(&format!("AAAA.{big_p}.AAAA")), too_large_claims);
    // A properly signed token whose claim set is over 8 KiB.
    let fat = claims(json!({"pad": "x".repeat(9000)}));
    assert_eq!(refusal(&ed_token(&fx().ed1, ED1, &fat)), too_large_claims);
}

#[test]
fn deep_json_is_refused() {
    let too_deep = JsonError::TooDeep { max: MAX_DEPTH }.to_string();
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let p = claims(json!({})).replacen('{', &format!("{{\"deep\":{deep},"), 1);
    assert_eq!(
        refusal(&ed_token(&fx().ed1, ED1, &p)),
        TokenError::BadJson {
            segment: Segment::Payload,
            detail: too_deep.clone()
        }
    );
    let h = format!(r#"{{"alg":"EdDSA","kid":"ed1","x":{deep}}}"#);
    assert_eq!(
        refusal(&ed_token(&fx().ed1, &h, &claims(json!({})))),
        TokenError::BadJson {
            segment: Segment::Header,
            detail: too_deep
        }
    );
}

#[test]
fn non_object_segments_are_refused() {
    let not_object = JsonError::NotObject.to_string();
    let syntax = JsonError::Syntax(String::new()).to_string();
    for (h, p, segment, detail) in [
        ("[]", claims(json!({})), Segment::Header, &not_object),
        (ED1, "[]".into(), Segment::Payload, &not_object),
        (ED1, "\"x\"".into(), Segment::Payload, &not_object),
        (ED1, "{".into(), Segment::Payload, &syntax),
    ] {
        assert_refused!(
            ed_token(&fx().ed1, h, &p),
            TokenError::BadJson { segment: s, detail: ref d }
                if s == segment && d.starts_with(detail.as_str()),
            "{h} {p}"
        );
    }
}

// ---------- duplicate keys ----------

#[test]
fn duplicate_keys_are_refused() {
    let c = claims(json!({}));
    let dup_exp = c.replacen('{', &format!("{{\"exp\":{},", NOW + 999_999), 1);
    let dup_nested = c.replacen(
        '{',
        r#"{"realm_access":{"roles":["user"],"roles":["admin"]},"#,
        1,
    );
    let dup_escaped = c.replacen('{', r#"{"\u0073ub":"admin","#, 1);
    for (p, key) in [
        (&dup_exp, "exp"),
        (&dup_nested, "roles"),
        (&dup_escaped, "sub"),
    ] {
        assert_eq!(
            refusal(&ed_token(&fx().ed1, ED1, p)),
            TokenError::DuplicateKey {
                segment: Segment::Payload,
                key: key.into()
            },
            "{p}"
        );
    }
    let dup_header = r#"{"alg":"EdDSA","kid":"ed2","kid":"ed1"}"#;
    assert_eq!(
        refusal(&ed_token(&fx().ed1, dup_header, &c)),
        TokenError::DuplicateKey {
            segment: Segment::Header,
            key: "kid".into()
        }
    );
    let dup_alg = r#"{"alg":"none","kid":"ed1","alg":"EdDSA"}"#;
    assert_eq!(
        refusal(&ed_token(&fx().ed1, dup_alg, &c)),
        TokenError::DuplicateKey {
            segment: Segment::Header,
            key: "alg".into()
        }
    );
}

// ---------- claims: iss, aud, times ----------

#[test]
fn claim_table() {
    type Want = Result<(), TokenError>;
    let mismatch = |found: &str| {
        Err(TokenError::IssuerMismatch {
            found: found.into(),
        })
    };
    let expired = |exp| Err(TokenError::Expired { exp, now: NOW });
    let not_integer = |name| Err(TokenError::ClaimNotInteger(name));
    let too_long = |lifetime| {
        Err(TokenError::LifetimeTooLong {
            lifetime,
            max: 86_400,
        })
    };
    let table: Vec<(&str, Value, Want)> = vec![
        ("baseline", json!({}), Ok(())),
        // iss
        (
            "wrong iss",
            json!({"iss": "https://evil.example.com"}),
            mismatch("https://evil.example.com"),
        ),
        (
            "iss trailing slash",
            json!({"iss": format!("{ISS}/")}),
            mismatch(&format!("{ISS}/")),
        ),
        (
            "iss missing",
            json!({"iss": null}),
            Err(TokenError::IssuerMissing),
        ),
        (
            "iss array",
            json!({"iss": [ISS]}),
            mismatch(&json!([ISS]).to_string()),
        ),
        // aud
        (
            "aud missing",
            json!({"aud": null}),
            Err(TokenError::AudienceMissing {
                claim: "aud".into(),
            }),
        ),
        ("aud string hit", json!({"aud": "billing"}), Ok(())),
        (
            "aud string miss",
            json!({"aud": "Orders"}),
            Err(TokenError::AudienceMismatch),
        ),
        ("aud array hit", json!({"aud": ["x", "orders"]}), Ok(())),
        (
            "aud array miss",
            json!({"aud": ["x", "y"]}),
            Err(TokenError::AudienceMismatch),
        ),
        (
            "aud empty array",
            json!({"aud": []}),
            Err(TokenError::AudienceMismatch),
        ),
        (
            "aud array non-string",
            json!({"aud": ["orders", 1]}),
            Err(TokenError::AudienceInvalid),
        ),
        (
            "aud number",
            json!({"aud": 1}),
            Err(TokenError::AudienceInvalid),
        ),
        // exp
        (
            "exp missing",
            json!({"exp": null}),
            Err(TokenError::MissingClaim("exp")),
        ),
        (
            "exp float",
            json!({"exp": (NOW + 300) as f64}),
            not_integer("exp"),
        ),
        (
            "exp float fraction",
            json!({"exp": NOW as f64 + 300.5}),
            not_integer("exp"),
        ),
        (
            "exp string",
            json!({"exp": (NOW + 300).to_string()}),
            not_integer("exp"),
        ),
        ("exp negative", json!({"exp": -1}), not_integer("exp")),
        (
            "exp null-ish bool",
            json!({"exp": true}),
            not_integer("exp"),
        ),
        (
            "nbf float",
            json!({"nbf": (NOW - 10) as f64}),
            not_integer("nbf"),
        ),
        ("iat string", json!({"iat": "1"}), not_integer("iat")),
        (
            "expired beyond skew",
            json!({"exp": NOW - 31}),
            expired(NOW - 31),
        ),
        (
            "expired at skew edge",
            json!({"exp": NOW - 30}),
            expired(NOW - 30),
        ),
        ("expired within skew", json!({"exp": NOW - 29}), Ok(())),
        (
            "nbf beyond skew",
            json!({"nbf": NOW + 31}),
            Err(TokenError::NotYetValid {
                nbf: NOW + 31,
                now: NOW,
            }),
        ),
        ("nbf within skew", json!({"nbf": NOW + 30}), Ok(())),
        (
            "iat beyond skew",
            json!({"iat": NOW + 31}),
            Err(TokenError::IssuedInFuture {
                iat: NOW + 31,
                now: NOW,
            }),
        ),
        ("iat within skew", json!({"iat": NOW + 30}), Ok(())),
        // lifetime (default max 86400)
        (
            "lifetime max",
            json!({"iat": NOW - 10, "exp": NOW - 10 + 86_400}),
            Ok(()),
        ),
        (
            "lifetime too long",
            json!({"iat": NOW - 10, "exp": NOW - 10 + 86_401}),
            too_long(86_401),
        ),
        ("ancient iat", json!({"iat": 0}), too_long(NOW + 300)),
        (
            "no iat, nbf based",
            json!({"iat": null, "nbf": NOW - 10, "exp": NOW - 10 + 86_401}),
            too_long(86_401),
        ),
        (
            "no iat, no nbf, far exp",
            json!({"iat": null, "exp": NOW + 86_401}),
            too_long(86_401),
        ),
        (
            "no iat, no nbf, ok",
            json!({"iat": null, "exp": NOW + 86_400}),
            Ok(()),
        ),
        (
            "exp far future",
            json!({"exp": u64::MAX}),
            too_long(u64::MAX - (NOW - 10)),
        ),
        // registered string claims the library also parses
        (
            "sub number",
            json!({"sub": 42}),
            Err(TokenError::BadClaim("sub")),
        ),
        (
            "jti number",
            json!({"jti": 42}),
            Err(TokenError::BadClaim("jti")),
        ),
        ("no sub", json!({"sub": null}), Ok(())),
    ];
    for (name, patch, want) in table {
        let token = ed_token(&fx().ed1, ED1, &claims(patch));
        assert_eq!(verify_token(&token).map(|_| ()), want, "{name}");
    }
}

#[test]
fn cheap_checks_run_before_signature() {
    // A garbage signature of the right length, with claims that fail early:
    // the early code proves the signature was never reached.
    let h = b64(ED1.as_bytes());
    let sig = b64(&[1u8; 64]);
    for (patch, want) in [
        (
            json!({"iss": "x"}),
            TokenError::IssuerMismatch { found: "x".into() },
        ),
        (json!({"aud": "x"}), TokenError::AudienceMismatch),
        (
            json!({"exp": NOW - 100}),
            TokenError::Expired {
                exp: NOW - 100,
                now: NOW,
            },
        ),
        (json!({"exp": null}), TokenError::MissingClaim("exp")),
    ] {
        let p = b64(claims(patch).as_bytes());
        assert_eq!(refusal(&format!("{h}.{p}.{sig}")), want);
    }
}

#[test]
fn host_clock_out_of_range_fails_closed() {
    let token = ed_token(
        &fx().ed1,
        ED1,
        &claims(json!({"iat": null, "exp": verify::MAX_NOW + 10})),
    );
    let err = fx()
        .provider
        .verify(&token, verify::MAX_NOW + 1)
        .unwrap_err();
    assert_eq!(
        err,
        TokenError::ClockOutOfRange {
            now: verify::MAX_NOW + 1
        }
    );
}

#[test]
fn peek_issuer_reads_iss_only() {
    let t = ed_token(&fx().ed1, ED1, &claims(json!({})));
    assert_eq!(peek_issuer(&t).unwrap(), ISS);
    let t = ed_token(&fx().ed1, ED1, &claims(json!({"iss": null})));
    assert_eq!(peek_issuer(&t).unwrap_err(), TokenError::IssuerMissing);
    let t = ed_token(
        &fx().ed1,
        ED1,
        &claims(json!({})).replacen('{', r#"{"iss":"a","#, 1),
    );
    assert_eq!(
        peek_issuer(&t).unwrap_err(),
        TokenError::DuplicateKey {
            segment: Segment::Payload,
            key: "iss".into()
        }
    );
    assert_eq!(
        peek_issuer("a.b").unwrap_err(),
        TokenError::BadStructure { segments: 2 }
    );
}

#[test]
fn errors_display_clipped_untrusted_text() {
    let h = format!(r#"{{"alg":"EdDSA","kid":"\n{}"}}"#, "k".repeat(200));
    let err = fx()
        .provider
        .verify(&ed_token(&fx().ed1, &h, &claims(json!({}))), NOW)
        .unwrap_err();
    // The kid is what is displayed, so the refusal must be about the kid.
    assert!(matches!(err, TokenError::UnknownKid { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.len() < 120, "{msg}");
    assert!(!msg.contains('\n'));
}

/// Without `kid`, each key that can verify the `alg` is tried in key-set
/// order (at most `MAX_KIDLESS_KEYS`), as Envoy's jwt_authn does; a token no
/// key verifies is refused with a bad signature, never let through.
#[test]
fn tokens_without_kid_try_each_key_of_the_algorithm() {
    let h = r#"{"alg":"EdDSA"}"#;
    let c = claims(json!({}));
    // ed1 is the first Ed25519 key of the set, ed2 the second.
    assert!(verify_token(&ed_token(&fx().ed1, h, &c)).is_ok());
    assert!(verify_token(&ed_token(&fx().ed2, h, &c)).is_ok());
    let stranger = Ed25519KeyPair::generate();
    assert_eq!(
        refusal(&ed_token(&stranger, h, &c)),
        TokenError::BadSignature
    );
    // ES256: one key in the set, as before.
    assert!(verify_token(&fx().ec1.sign(jwt_claims("a")).unwrap()).is_ok());
    // More candidates than the bound: refused before any signature check.
    let many: Vec<Value> = (0..=crate::jwt::jwks::MAX_KIDLESS_KEYS)
        .map(|i| ed_jwk(&Ed25519KeyPair::generate(), Some(&format!("k{i}"))))
        .collect();
    let cfg = ProviderConfig {
        name: "many".into(),
        issuer: ISS.into(),
        audiences: vec!["orders".into()],
        algorithms: vec!["EdDSA".into()],
        jwks: Some(json!({ "keys": many })),
        remote_jwks: None,
        from: None,
        clock_skew_seconds: None,
        max_lifetime_seconds: None,
        forward_token: false,
        audience_claim: None,
        allow_http_issuer: false,
    };
    let (p, _) = super::tests::compile_at(&cfg, 0).unwrap();
    assert_eq!(
        p.verify(&ed_token(&stranger, h, &c), NOW),
        Err(TokenError::NoUniqueKey {
            alg: Alg::EdDSA,
            candidates: crate::jwt::jwks::MAX_KIDLESS_KEYS + 1
        })
    );
    // With a kid the lookup stays exact: ed2's token under kid ed1 fails.
    assert_eq!(
        refusal(&ed_token(&fx().ed2, ED1, &c)),
        TokenError::BadSignature
    );
}

#[test]
fn display_clips_text_from_callers_too() {
    let e = TokenError::IssuerMismatch {
        found: "x".repeat(5000),
    };
    assert!(e.to_string().len() < 120);
    assert_eq!(e.code(), "token_issuer_unknown");
}

/// The tests above assert variants; the codes those variants map to are a
/// stable public contract (metrics, audit logs), checked here once for
/// every variant a test above produces.
#[test]
fn refusal_codes_are_stable() {
    let table = [
        (TokenError::BadStructure { segments: 2 }, "token_malformed"),
        (TokenError::BadBase64(Segment::Payload), "token_malformed"),
        (
            TokenError::BadJson {
                segment: Segment::Header,
                detail: String::new(),
            },
            "token_malformed",
        ),
        (TokenError::BadHeader(String::new()), "token_malformed"),
        (TokenError::CriticalHeader, "token_malformed"),
        (TokenError::BadClaim("sub"), "token_malformed"),
        (
            TokenError::TooLarge {
                what: "token",
                limit: verify::MAX_TOKEN_LEN,
            },
            "token_too_large",
        ),
        (
            TokenError::DuplicateKey {
                segment: Segment::Payload,
                key: "exp".into(),
            },
            "token_duplicate_claim",
        ),
        (
            TokenError::AlgNotAllowed { alg: "none".into() },
            "token_alg_not_allowed",
        ),
        (
            TokenError::AlgKeyMismatch {
                alg: Alg::ES256,
                kid: "rsa1".into(),
            },
            "token_alg_not_allowed",
        ),
        (
            TokenError::UnknownKid { kid: "nope".into() },
            "token_unknown_kid",
        ),
        (
            TokenError::NoUniqueKey {
                alg: Alg::EdDSA,
                candidates: 2,
            },
            "token_unknown_kid",
        ),
        (
            TokenError::SignatureLength {
                expected: 64,
                found: 0,
            },
            "token_bad_signature",
        ),
        (TokenError::BadSignature, "token_bad_signature"),
        (TokenError::Expired { exp: 0, now: NOW }, "token_expired"),
        (
            TokenError::ClockOutOfRange {
                now: verify::MAX_NOW + 1,
            },
            "token_expired",
        ),
        (
            TokenError::NotYetValid { nbf: 0, now: NOW },
            "token_not_yet_valid",
        ),
        (
            TokenError::IssuedInFuture { iat: 0, now: NOW },
            "token_not_yet_valid",
        ),
        (
            TokenError::LifetimeTooLong {
                lifetime: 86_401,
                max: 86_400,
            },
            "token_lifetime_too_long",
        ),
        (TokenError::MissingClaim("exp"), "token_missing_claim"),
        (TokenError::ClaimNotInteger("exp"), "token_missing_claim"),
        (TokenError::IssuerMissing, "token_issuer_unknown"),
        (
            TokenError::IssuerMismatch { found: "x".into() },
            "token_issuer_unknown",
        ),
        (
            TokenError::AudienceMissing {
                claim: "aud".into(),
            },
            "token_audience_mismatch",
        ),
        (TokenError::AudienceMismatch, "token_audience_mismatch"),
        (TokenError::AudienceInvalid, "token_audience_mismatch"),
    ];
    for (e, want) in table {
        assert_eq!(e.code(), want, "{e:?}");
    }
}

/// Amazon Cognito access tokens carry the app client id in `client_id` and
/// no `aud`; ID tokens carry it in `aud` and no `client_id`. With
/// `audience_claim: client_id` only access tokens for the client pass, on
/// both signature paths (jwt-simple must not re-check `aud` then).
#[test]
fn cognito_access_tokens_use_client_id_as_the_audience() {
    const COGNITO: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123";
    let rsa = RS256KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("c1");
    let cfg = ProviderConfig {
        name: "cognito".into(),
        issuer: COGNITO.into(),
        audiences: vec!["5r2ekm3pt1pd2kk4fafm4fmd7".into()],
        algorithms: vec!["RS256".into()],
        jwks: Some(json!({"keys": [rsa_jwk(&rsa, Some("c1"))]})),
        remote_jwks: None,
        from: None,
        clock_skew_seconds: None,
        max_lifetime_seconds: Some(3600),
        forward_token: false,
        audience_claim: Some("client_id".into()),
        allow_http_issuer: false,
    };
    let (p, _) = super::tests::compile_at(&cfg, 0).unwrap();
    assert_eq!(p.audience_claim(), "client_id");
    let sign = |extra: Value| {
        let mut c = json!({
            "token_use": "access", "scope": "orders/read", "cognito:groups": ["release-managers"],
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        let mut claims = Claims::with_custom_claims(c, Duration::from_secs(300))
            .with_issuer(COGNITO)
            .with_subject("u-1");
        claims.issued_at = Some(UnixTimeStamp::from_secs(NOW - 10));
        claims.invalid_before = None;
        claims.expires_at = Some(UnixTimeStamp::from_secs(NOW + 300));
        rsa.sign(claims).unwrap()
    };
    let access = sign(json!({"client_id": "5r2ekm3pt1pd2kk4fafm4fmd7"}));
    let t = p.verify(&access, NOW).unwrap();
    assert_eq!(
        lookup(&t.claims, "cognito:groups"),
        Some(&json!(["release-managers"]))
    );
    let other_client = sign(json!({"client_id": "other"}));
    assert_eq!(
        p.verify(&other_client, NOW),
        Err(TokenError::AudienceMismatch)
    );
    let rsa_id = RS256KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("c1");
    let mut id = Claims::with_custom_claims(json!({"token_use": "id"}), Duration::from_secs(300))
        .with_issuer(COGNITO)
        .with_subject("u-1")
        .with_audience("5r2ekm3pt1pd2kk4fafm4fmd7");
    id.issued_at = Some(UnixTimeStamp::from_secs(NOW - 10));
    id.invalid_before = None;
    id.expires_at = Some(UnixTimeStamp::from_secs(NOW + 300));
    let id_token = rsa_id.sign(id).unwrap();
    assert_eq!(
        p.verify(&id_token, NOW),
        Err(TokenError::AudienceMissing {
            claim: "client_id".into()
        })
    );
}

/// A header carrying an `x5c` chain (two certificates) fits the 8 KiB cap;
/// the chain is never used to verify.
#[test]
fn headers_with_an_x5c_chain_fit_the_cap() {
    let cert = STANDARD_NO_PAD.encode(vec![0x30u8; 1400]);
    let header =
        json!({"alg": "EdDSA", "kid": "ed1", "typ": "JWT", "x5c": [cert, cert]}).to_string();
    let token = ed_token(&fx().ed1, &header, &claims(json!({})));
    assert!(token.split('.').next().unwrap().len() > 4096);
    assert!(verify_token(&token).is_ok());
    let five =
        json!({"alg": "EdDSA", "kid": "ed1", "x5c": [cert, cert, cert, cert, cert]}).to_string();
    assert_eq!(
        refusal(&ed_token(&fx().ed1, &five, &claims(json!({})))),
        TokenError::TooLarge {
            what: "header",
            limit: 8192
        }
    );
}

/// A host verifier that says yes: what is left of a cache miss is our own
/// work (split, base64, JSON, claim checks, the DER signature).
#[derive(Debug)]
struct Yes;
impl crate::host::SignatureBackend for Yes {
    fn verify(&self, _: &str, _: &[u8], _: &[u8], _: &[u8]) -> Option<bool> {
        Some(true)
    }
}

/// Our cost of an RS256 and an ES256 cache miss with the host's verifier
/// stubbed, `OAM_PROFILE_N` times each (e.g. under callgrind; see
/// docs/performance.md "The cache-miss path").
#[test]
#[ignore]
fn miss_profile() {
    use std::time::Instant;
    let n: u32 = std::env::var("OAM_PROFILE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rsa = RS256KeyPair::from_pem(RSA_PEM).unwrap().with_key_id("rsa1");
    let rs = rsa.sign(jwt_claims("alice")).unwrap();
    let es = ec1_with_kid("ec1").sign(jwt_claims("alice")).unwrap();
    for (name, token) in [("RS256", rs), ("ES256", es)] {
        assert!(fx().provider.verify_with(&token, NOW, Some(&Yes)).is_ok());
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(fx().provider.verify_with(&token, NOW, Some(&Yes)).is_ok());
        }
        println!(
            "{name} miss, host verifier stubbed: {:?}/token",
            t.elapsed() / n
        );
    }
}
