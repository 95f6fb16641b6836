//! A token issuer from the policy (`ProviderConfig`), validated and compiled.
//!
//! All semantic checks happen here, once, so the request path only does
//! lookups. Every error names the field path an operator has to fix.

use crate::config::{ProviderConfig, TokenSource};
use crate::error::{ConfigError, Problem};
use crate::jwt::alg::{Alg, AlgRejection};
use crate::jwt::jwks::{parse_jwks, KeySet};
use crate::jwt::verify::{verify_compact, Requirements, TokenError, VerifiedToken};
use crate::keys::{self, live::LiveKeys, RemoteKeys};
use std::sync::Arc;

/// Default tolerance for `exp`/`nbf`/`iat` (Envoy uses 60 s, jwt-simple 15 min).
pub const DEFAULT_CLOCK_SKEW: u64 = 30;
pub const MAX_CLOCK_SKEW: u64 = 300;
/// Default maximum token lifetime: one day.
pub const DEFAULT_MAX_LIFETIME: u64 = 86_400;
pub const MIN_MAX_LIFETIME: u64 = 1;
pub const MAX_MAX_LIFETIME: u64 = 31_536_000;

/// Where keys come from: the policy itself, or the identity provider (fetched
/// by the filter's root context, see `crate::keys`).
#[derive(Debug, Clone)]
enum KeySource {
    Inline(Arc<KeySet>),
    Remote(RemoteKeys),
}

/// A compiled provider.
#[derive(Debug, Clone)]
pub struct Provider {
    name: String,
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Alg>,
    keys: KeySource,
    sources: Vec<TokenSource>,
    clock_skew: u64,
    max_lifetime: u64,
    forward_token: bool,
    warnings: Vec<String>,
}

/// RFC 9110 `tchar`: what a header (or cookie) name may contain.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn check_range(value: u64, min: u64, max: u64, path: String) -> Result<u64, ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::new(
            path,
            Problem::OutOfRange { value, min, max },
        ));
    }
    Ok(value)
}

fn compile_sources(
    from: &Option<Vec<TokenSource>>,
    path: &str,
) -> Result<Vec<TokenSource>, ConfigError> {
    let Some(list) = from else {
        return Ok(vec![TokenSource::Header {
            name: "authorization".into(),
            prefix: Some("Bearer ".into()),
        }]);
    };
    let fpath = format!("{path}.from");
    if list.is_empty() {
        return Err(ConfigError::new(fpath, Problem::Empty));
    }
    let mut out: Vec<TokenSource> = Vec::with_capacity(list.len());
    for (i, src) in list.iter().enumerate() {
        let spath = format!("{fpath}[{i}]");
        let compiled = match src {
            TokenSource::Header { name, prefix } => {
                let npath = format!("{spath}.header.name");
                if name.is_empty() {
                    return Err(ConfigError::new(npath, Problem::Empty));
                }
                if !name.chars().all(is_tchar) {
                    return Err(ConfigError::invalid(
                        npath,
                        format!("'{name}' is not a valid HTTP header name"),
                    ));
                }
                TokenSource::Header {
                    name: name.to_ascii_lowercase(),
                    prefix: prefix.clone(),
                }
            }
            TokenSource::Query(name) => {
                let npath = format!("{spath}.query");
                if name.is_empty() {
                    return Err(ConfigError::new(npath, Problem::Empty));
                }
                if name
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || "&=#?".contains(c))
                {
                    return Err(ConfigError::invalid(
                        npath,
                        format!("'{name}' is not a valid query parameter name"),
                    ));
                }
                TokenSource::Query(name.clone())
            }
            TokenSource::Cookie(name) => {
                let npath = format!("{spath}.cookie");
                if name.is_empty() {
                    return Err(ConfigError::new(npath, Problem::Empty));
                }
                if !name.chars().all(is_tchar) {
                    return Err(ConfigError::invalid(
                        npath,
                        format!("'{name}' is not a valid cookie name"),
                    ));
                }
                TokenSource::Cookie(name.clone())
            }
        };
        if out.contains(&compiled) {
            return Err(ConfigError::invalid(
                spath,
                "same token source listed twice",
            ));
        }
        out.push(compiled);
    }
    Ok(out)
}

fn compile_algorithms(names: &[String], path: &str) -> Result<Vec<Alg>, ConfigError> {
    let apath = format!("{path}.algorithms");
    if names.is_empty() {
        return Err(ConfigError::new(apath, Problem::Empty));
    }
    let mut algs = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let ipath = format!("{apath}[{i}]");
        let alg = Alg::from_name(name).map_err(|why| {
            let msg = match why {
                AlgRejection::None => "'none' is never accepted: it means an unsigned token".to_string(),
                AlgRejection::Symmetric => format!(
                    "'{name}' is never accepted: shared-secret algorithms let anyone holding the key mint tokens"
                ),
                AlgRejection::Unknown => {
                    format!("unknown algorithm '{name}' (supported: {})", Alg::supported_list())
                }
            };
            ConfigError::invalid(&ipath, msg)
        })?;
        if algs.contains(&alg) {
            return Err(ConfigError::new(ipath, Problem::Duplicate(name.clone())));
        }
        algs.push(alg);
    }
    Ok(algs)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Provider {
    /// Compile one provider; `path` is its field path like `providers[2]`.
    pub fn compile(cfg: &ProviderConfig, path: &str) -> Result<Provider, ConfigError> {
        if cfg.name.is_empty() {
            return Err(ConfigError::new(format!("{path}.name"), Problem::Empty));
        }
        if !valid_name(&cfg.name) {
            return Err(ConfigError::invalid(
                format!("{path}.name"),
                format!("'{}' must match [a-z0-9_-]+", cfg.name),
            ));
        }
        if cfg.issuer.is_empty() {
            return Err(ConfigError::new(format!("{path}.issuer"), Problem::Empty));
        }
        let aud_path = format!("{path}.audiences");
        if cfg.audiences.is_empty() {
            return Err(ConfigError::new(aud_path, Problem::Empty));
        }
        for (i, aud) in cfg.audiences.iter().enumerate() {
            if aud.is_empty() {
                return Err(ConfigError::new(format!("{aud_path}[{i}]"), Problem::Empty));
            }
            if cfg
                .audiences
                .get(..i)
                .is_some_and(|before| before.contains(aud))
            {
                return Err(ConfigError::new(
                    format!("{aud_path}[{i}]"),
                    Problem::Duplicate(aud.clone()),
                ));
            }
        }
        let algorithms = compile_algorithms(&cfg.algorithms, path)?;
        let clock_skew = check_range(
            cfg.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW),
            0,
            MAX_CLOCK_SKEW,
            format!("{path}.clock_skew_seconds"),
        )?;
        let max_lifetime = check_range(
            cfg.max_lifetime_seconds.unwrap_or(DEFAULT_MAX_LIFETIME),
            MIN_MAX_LIFETIME,
            MAX_MAX_LIFETIME,
            format!("{path}.max_lifetime_seconds"),
        )?;
        let sources = compile_sources(&cfg.from, path)?;

        let jwks_path = format!("{path}.jwks");
        let (keys, warnings) = match (&cfg.jwks, &cfg.remote_jwks) {
            (Some(jwks), None) => {
                let set = parse_jwks(jwks, &algorithms, &jwks_path)?;
                let warnings = set.warnings().to_vec();
                (KeySource::Inline(Arc::new(set)), warnings)
            }
            (None, Some(remote)) => {
                let rpath = format!("{path}.remote_jwks");
                let settings = keys::compile(remote, &cfg.issuer, &rpath)?;
                let live = Arc::new(LiveKeys::new());
                (KeySource::Remote(RemoteKeys { settings, live }), Vec::new())
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::invalid(
                    format!("{path}.remote_jwks"),
                    "set either jwks (inline keys) or remote_jwks, not both",
                ))
            }
            (None, None) => {
                return Err(ConfigError::invalid(
                    &jwks_path,
                    "required: inline keys (jwks) or a remote_jwks source",
                ))
            }
        };

        Ok(Provider {
            name: cfg.name.clone(),
            issuer: cfg.issuer.clone(),
            audiences: cfg.audiences.clone(),
            algorithms,
            keys,
            sources,
            clock_skew,
            max_lifetime,
            forward_token: cfg.forward_token,
            warnings,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }
    pub fn algorithms(&self) -> &[Alg] {
        &self.algorithms
    }
    /// Where to look for the token; header names are lowercase.
    pub fn sources(&self) -> &[TokenSource] {
        &self.sources
    }
    pub fn forward_token(&self) -> bool {
        self.forward_token
    }
    pub fn clock_skew_seconds(&self) -> u64 {
        self.clock_skew
    }
    pub fn max_lifetime_seconds(&self) -> u64 {
        self.max_lifetime
    }
    /// The key set currently used for verification; `None` for a remote
    /// source with no usable set (not fetched yet, or past its staleness bound).
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        match &self.keys {
            KeySource::Inline(set) => Some(set.clone()),
            KeySource::Remote(r) => r.live.current(),
        }
    }
    /// The remote key source, if the keys are fetched from the provider.
    pub fn remote(&self) -> Option<&RemoteKeys> {
        match &self.keys {
            KeySource::Inline(_) => None,
            KeySource::Remote(r) => Some(r),
        }
    }
    /// Non-fatal notes from compilation (e.g. JWKS keys that were skipped).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Full verification of a compact JWS against this provider at unix time
    /// `now` (seconds, from the host).
    pub fn verify(&self, token: &str, now: u64) -> Result<VerifiedToken, TokenError> {
        self.verify_with(token, now, None)
    }

    /// As `verify`, letting the host check RSA/ECDSA signatures natively.
    pub fn verify_with(
        &self,
        token: &str,
        now: u64,
        backend: Option<&dyn crate::host::SignatureBackend>,
    ) -> Result<VerifiedToken, TokenError> {
        let keys = self.keys().ok_or(TokenError::KeysUnavailable)?;
        let req = Requirements {
            backend,
            issuer: &self.issuer,
            audiences: &self.audiences,
            algorithms: &self.algorithms,
            keys: &keys,
            clock_skew: self.clock_skew,
            max_lifetime: self.max_lifetime,
        };
        let result = verify_compact(token, &req, now);
        if let (Err(TokenError::UnknownKid { .. }), KeySource::Remote(r)) = (&result, &self.keys) {
            // The IdP may have rotated: ask the root context for a refetch
            // (rate-limited across workers, see `keys::schedule`).
            r.live.note_unknown_kid(now);
        }
        result
    }
}

impl Provider {
    /// Version of the key set: the token cache drops entries verified under
    /// another generation, so a rotated-out key stops being honoured at once.
    /// Inline keys never change within a policy: always 0.
    pub fn key_generation(&self) -> u64 {
        match &self.keys {
            KeySource::Inline(_) => 0,
            KeySource::Remote(r) => r.live.generation(),
        }
    }
}

#[cfg(test)]
mod verify_tests;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::jwt::jwks::tests::ed_jwk;
    use jwt_simple::prelude::Ed25519KeyPair;
    use serde_json::json;

    fn base() -> ProviderConfig {
        let kp = Ed25519KeyPair::generate();
        ProviderConfig {
            name: "corp-sso".into(),
            issuer: "https://idp.example.com".into(),
            audiences: vec!["orders".into()],
            algorithms: vec!["EdDSA".into()],
            jwks: Some(json!({"keys": [ed_jwk(&kp, Some("k1"))]})),
            remote_jwks: None,
            from: None,
            clock_skew_seconds: None,
            max_lifetime_seconds: None,
            forward_token: false,
        }
    }

    #[test]
    fn defaults() {
        let p = Provider::compile(&base(), "providers[0]").unwrap();
        assert_eq!(p.name(), "corp-sso");
        assert_eq!(p.issuer(), "https://idp.example.com");
        assert_eq!(p.clock_skew_seconds(), 30);
        assert_eq!(p.max_lifetime_seconds(), 86_400);
        assert!(!p.forward_token());
        assert_eq!(
            p.sources(),
            &[TokenSource::Header {
                name: "authorization".into(),
                prefix: Some("Bearer ".into())
            }]
        );
        assert!(p.warnings().is_empty());
        assert_eq!(p.keys().unwrap().len(), 1);
        assert!(p.remote().is_none());
    }

    #[test]
    fn sources_are_normalised() {
        let mut cfg = base();
        cfg.from = Some(vec![
            TokenSource::Header {
                name: "X-Token".into(),
                prefix: None,
            },
            TokenSource::Query("access_token".into()),
            TokenSource::Cookie("id_token".into()),
        ]);
        let p = Provider::compile(&cfg, "providers[0]").unwrap();
        assert_eq!(
            p.sources()[0],
            TokenSource::Header {
                name: "x-token".into(),
                prefix: None
            }
        );
    }

    #[test]
    fn skipped_keys_become_warnings() {
        let mut cfg = base();
        let kp = Ed25519KeyPair::generate();
        let mut enc = ed_jwk(&kp, Some("enc"));
        enc["use"] = json!("enc");
        cfg.jwks = Some(json!({"keys": [enc, ed_jwk(&kp, Some("sig"))]}));
        let p = Provider::compile(&cfg, "providers[3]").unwrap();
        assert_eq!(p.warnings().len(), 1);
        assert!(
            p.warnings()[0].starts_with("providers[3].jwks.keys[0]: skipped"),
            "{:?}",
            p.warnings()
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        type Edit = fn(&mut ProviderConfig);
        let table: Vec<(Edit, &str)> = vec![
            (
                |c| c.name = "".into(),
                "providers[2].name: must not be empty",
            ),
            (
                |c| c.name = "Corp".into(),
                "providers[2].name: 'Corp' must match [a-z0-9_-]+",
            ),
            (
                |c| c.name = "a b".into(),
                "providers[2].name: 'a b' must match",
            ),
            (
                |c| c.issuer = "".into(),
                "providers[2].issuer: must not be empty",
            ),
            (
                |c| c.audiences = vec![],
                "providers[2].audiences: must not be empty",
            ),
            (
                |c| c.audiences = vec!["a".into(), "".into()],
                "providers[2].audiences[1]: must not be empty",
            ),
            (
                |c| c.audiences = vec!["a".into(), "a".into()],
                "providers[2].audiences[1]: duplicate name 'a'",
            ),
            (
                |c| c.algorithms = vec![],
                "providers[2].algorithms: must not be empty",
            ),
            (
                |c| c.algorithms = vec!["EdDSA".into(), "none".into()],
                "providers[2].algorithms[1]: 'none' is never accepted",
            ),
            (
                |c| c.algorithms = vec!["HS256".into()],
                "providers[2].algorithms[0]: 'HS256' is never accepted",
            ),
            (
                |c| c.algorithms = vec!["rs256".into()],
                "providers[2].algorithms[0]: unknown algorithm 'rs256'",
            ),
            (
                |c| c.algorithms = vec!["EdDSA".into(), "EdDSA".into()],
                "providers[2].algorithms[1]: duplicate name 'EdDSA'",
            ),
            (
                |c| c.jwks = None,
                "providers[2].jwks: required: inline keys (jwks) or a remote_jwks source",
            ),
            (
                |c| c.algorithms = vec!["RS256".into()],
                "providers[2].jwks.keys: no usable signing key",
            ),
            (
                |c| c.clock_skew_seconds = Some(301),
                "providers[2].clock_skew_seconds: 301 is out of range (allowed 0..=300)",
            ),
            (
                |c| c.max_lifetime_seconds = Some(0),
                "providers[2].max_lifetime_seconds: 0 is out of range (allowed 1..=31536000)",
            ),
            (
                |c| c.max_lifetime_seconds = Some(31_536_001),
                "providers[2].max_lifetime_seconds: 31536001 is out of range",
            ),
            (
                |c| c.from = Some(vec![]),
                "providers[2].from: must not be empty",
            ),
            (
                |c| {
                    c.from = Some(vec![TokenSource::Header {
                        name: "".into(),
                        prefix: None,
                    }])
                },
                "providers[2].from[0].header.name: must not be empty",
            ),
            (
                |c| {
                    c.from = Some(vec![TokenSource::Header {
                        name: "x token".into(),
                        prefix: None,
                    }])
                },
                "providers[2].from[0].header.name: 'x token' is not a valid HTTP header name",
            ),
            (
                |c| {
                    c.from = Some(vec![TokenSource::Header {
                        name: ":path".into(),
                        prefix: None,
                    }])
                },
                "providers[2].from[0].header.name: ':path' is not a valid",
            ),
            (
                |c| c.from = Some(vec![TokenSource::Query("".into())]),
                "providers[2].from[0].query: must not be empty",
            ),
            (
                |c| c.from = Some(vec![TokenSource::Query("a&b".into())]),
                "providers[2].from[0].query: 'a&b' is not a valid query parameter name",
            ),
            (
                |c| c.from = Some(vec![TokenSource::Cookie("".into())]),
                "providers[2].from[0].cookie: must not be empty",
            ),
            (
                |c| c.from = Some(vec![TokenSource::Cookie("a;b".into())]),
                "providers[2].from[0].cookie: 'a;b' is not a valid cookie name",
            ),
            (
                |c| {
                    c.from = Some(vec![
                        TokenSource::Cookie("t".into()),
                        TokenSource::Cookie("t".into()),
                    ])
                },
                "providers[2].from[1]: same token source listed twice",
            ),
            (
                |c| {
                    c.algorithms = vec!["RS256".into()];
                    c.jwks = Some(json!({"keys": [{"kty": "RSA", "e": "AQAB"}]}));
                },
                "providers[2].jwks.keys[0]: RSA key has no 'n'",
            ),
        ];
        for (edit, want) in table {
            let mut cfg = base();
            edit(&mut cfg);
            let got = Provider::compile(&cfg, "providers[2]")
                .unwrap_err()
                .to_string();
            assert!(got.starts_with(want), "got: {got}\nwant: {want}");
        }
    }
}
