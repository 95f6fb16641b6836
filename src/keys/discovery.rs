//! OpenID Connect Discovery 1.0: `<issuer>/.well-known/openid-configuration`
//! names the issuer's `jwks_uri`. The document is as untrusted as any other
//! network input: strict JSON (no duplicate keys, shallow), size-capped, and
//! its `issuer` must equal the provider's issuer exactly (§4.3), so a
//! document served for another issuer can never redirect our key source.

use super::url::{self, HttpUrl};
use crate::json::{clip, read as json};
use serde_json::Value;

/// Largest discovery document we read.
pub const MAX_DISCOVERY_BYTES: usize = 64 * 1024;
/// Discovery documents are flat objects with string arrays.
const MAX_DEPTH: usize = 8;
pub const WELL_KNOWN: &str = "/.well-known/openid-configuration";

/// The discovery URL for `issuer` (the issuer with any trailing `/` removed,
/// then `/.well-known/openid-configuration`).
pub fn discovery_url(issuer: &str) -> Result<HttpUrl, String> {
    let base = issuer.trim_end_matches('/');
    if base.contains('?') {
        return Err("the issuer has a query, so it has no discovery document".into());
    }
    url::parse(&format!("{base}{WELL_KNOWN}"))
}

/// The `jwks_uri` of a discovery document served for `issuer`.
pub fn jwks_uri(body: &[u8], issuer: &str) -> Result<HttpUrl, String> {
    if body.len() > MAX_DISCOVERY_BYTES {
        return Err(format!(
            "discovery document is {} bytes, over the {MAX_DISCOVERY_BYTES}-byte cap",
            body.len()
        ));
    }
    let doc = json::parse_object(body, MAX_DEPTH)
        .map_err(|e| format!("discovery document is not usable JSON: {e}"))?;
    match doc.get("issuer") {
        Some(Value::String(s)) if s == issuer => {}
        Some(Value::String(s)) => {
            return Err(format!(
                "discovery document is for issuer {:?}, not {issuer:?}",
                clip(s)
            ))
        }
        _ => return Err("discovery document has no string 'issuer'".into()),
    }
    match doc.get("jwks_uri") {
        Some(Value::String(s)) => {
            url::parse(s).map_err(|e| format!("discovery document 'jwks_uri': {e}"))
        }
        _ => Err("discovery document has no string 'jwks_uri'".into()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const ISS: &str = "https://idp.example.com/oauth2/default";

    #[test]
    fn url_from_issuer() {
        assert_eq!(
            discovery_url(ISS).unwrap().path,
            "/oauth2/default/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://idp.example.com/").unwrap().path,
            WELL_KNOWN
        );
        assert!(discovery_url("not a url").is_err());
        assert!(discovery_url("https://h/?tenant=1").is_err());
    }

    #[test]
    fn reads_jwks_uri() {
        let doc = format!(
            r#"{{"issuer":"{ISS}","jwks_uri":"https://keys.example.com/v1/keys","response_types_supported":["code"]}}"#
        );
        let u = jwks_uri(doc.as_bytes(), ISS).unwrap();
        assert_eq!(u.authority, "keys.example.com");
        assert_eq!(u.path, "/v1/keys");
    }

    #[test]
    fn refuses_bad_documents() {
        let cases: Vec<(String, &str)> = vec![
            ("garbage".into(), "not usable JSON"),
            ("[]".into(), "not usable JSON"),
            (r#"{"jwks_uri":"https://k/"}"#.into(), "no string 'issuer'"),
            (
                r#"{"issuer":"https://evil.example.com","jwks_uri":"https://k/"}"#.into(),
                "not \"https://idp",
            ),
            (format!(r#"{{"issuer":"{ISS}"}}"#), "no string 'jwks_uri'"),
            (
                format!(r#"{{"issuer":"{ISS}","jwks_uri":"file:///etc/passwd"}}"#),
                "'jwks_uri': scheme 'file'",
            ),
            (
                format!(r#"{{"issuer":"{ISS}","jwks_uri":"https://a/","jwks_uri":"https://b/"}}"#),
                "duplicate key",
            ),
            (
                format!(
                    r#"{{"issuer":"{ISS}","x":"{}"}}"#,
                    "a".repeat(MAX_DISCOVERY_BYTES)
                ),
                "over the",
            ),
        ];
        for (doc, want) in cases {
            let err = jwks_uri(doc.as_bytes(), ISS).unwrap_err();
            assert!(err.contains(want), "{}: {err}", &doc[..doc.len().min(80)]);
        }
    }
}
