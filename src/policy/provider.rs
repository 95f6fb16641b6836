//! A token issuer from the policy (`ProviderConfig`), validated and compiled.
//!
//! All semantic checks happen here, once, so the request path only does
//! lookups. Every problem is reported (not just the first), with the field
//! path an operator has to fix.

use super::sources;
use crate::config::{ProviderConfig, TokenSource};
use crate::error::{field, msg, Diagnostics, FieldPath, Problem};
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
    audience_claim: String,
}

fn check_range(d: &mut Diagnostics, value: u64, min: u64, max: u64, path: FieldPath) -> u64 {
    if value < min || value > max {
        d.error(path, Problem::range(value, min, max));
    }
    value
}

fn compile_algorithms(
    d: &mut Diagnostics,
    names: &[String],
    path: &FieldPath,
    issuer: &str,
) -> Vec<Alg> {
    let apath = path.field("algorithms");
    if names.is_empty() {
        d.invalid(
            apath,
            format!("required: the signing algorithms accepted from '{issuer}', e.g. [RS256] (the allow-list stops algorithm-confusion attacks)"),
        );
        return Vec::new();
    }
    let mut algs = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let ipath = apath.index(i);
        let alg = match Alg::from_name(name) {
            Ok(alg) => alg,
            Err(why) => {
                let msg = match why {
                    AlgRejection::None => "'none' is never accepted: it means an unsigned token".to_string(),
                    AlgRejection::Symmetric => format!(
                        "'{name}' is never accepted: shared-secret algorithms let anyone holding the key mint tokens"
                    ),
                    AlgRejection::Unknown => {
                        format!("unknown algorithm '{name}' (supported: {})", Alg::supported_list())
                    }
                };
                d.invalid(ipath, msg);
                continue;
            }
        };
        if algs.contains(&alg) {
            d.error(ipath, Problem::duplicate(name));
            continue;
        }
        if alg.is_pss() {
            d.warning(
                ipath,
                Problem::invalid(format!(
                    "{alg} is verified in software only (Envoy's verify_signature has no RSA-PSS): the default module refuses it at load; deploy the full build oam_authz_full.wasm"
                )),
            );
        }
        algs.push(alg);
    }
    algs
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Is `host` (from a URL authority, port removed) a loopback host?
fn loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host == "[::1]"
        || host.strip_prefix("127.").is_some_and(|rest| {
            rest.split('.').count() == 3 && rest.split('.').all(|o| o.parse::<u8>().is_ok())
        })
}

/// The issuer is compared with `iss` exactly, and every OpenID provider sends
/// an `https://` URL (OpenID Connect Discovery 1.0, section 3): anything else
/// would refuse every token with `token_issuer_unknown`. `http://` is for a
/// test IdP on loopback, or anywhere with `allow_http_issuer`.
fn check_issuer(d: &mut Diagnostics, cfg: &ProviderConfig, path: &FieldPath) {
    let ipath = path.field("issuer");
    let iss = cfg.issuer.as_str();
    if iss.is_empty() {
        d.error(ipath, Problem::Empty);
        return;
    }
    let (scheme, rest) = match iss.split_once("://") {
        Some((s, r)) if s == "https" || s == "http" => (s, r),
        _ => {
            let hint = if iss.contains("://") {
                String::new()
            } else {
                format!(" (did you mean 'https://{iss}'?)")
            };
            d.invalid(
                ipath,
                format!(
                    "'{iss}' is not an https:// URL{hint}: identity providers send 'iss' as a URL, compared exactly, so every token would be refused with token_issuer_unknown; write the issuer exactly as its tokens carry it (the 'issuer' of <issuer>/.well-known/openid-configuration)"
                ),
            );
            return;
        }
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.rsplit_once(':') {
        Some((h, port))
            if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') =>
        {
            h
        }
        _ => authority,
    };
    let bad = authority.is_empty()
        || authority.contains('@')
        || iss.contains(['?', '#'])
        || iss
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control());
    if bad {
        d.invalid(
            ipath,
            format!("'{iss}': an issuer is a URL with a host and no user, query, fragment or spaces, e.g. https://idp.example.com"),
        );
        return;
    }
    if scheme == "http" && !loopback_host(host) && !cfg.allow_http_issuer {
        d.invalid(
            ipath,
            msg!(
                format!("'{iss}' is a plain http:// URL: real identity providers are https:// (OpenID Connect Discovery 1.0, section 3); http:// is accepted for loopback hosts, or with '"),
                field("allow_http_issuer"),
                ": true' for a test environment"
            ),
        );
    }
}

/// Registered claims that can never be an audience.
const NOT_AUDIENCE_CLAIMS: [&str; 6] = ["iss", "sub", "exp", "nbf", "iat", "jti"];

/// `audience_claim`: a top-level claim name, `aud` by default.
fn audience_claim(d: &mut Diagnostics, cfg: &ProviderConfig, path: &FieldPath) -> String {
    let Some(claim) = &cfg.audience_claim else {
        return "aud".to_string();
    };
    let cpath = path.field("audience_claim");
    let ok = !claim.is_empty()
        && claim.len() <= 64
        && claim
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'));
    if !ok {
        d.invalid(
            cpath,
            format!("'{claim}': a top-level claim name (letters, digits, '_', '-', ':'), e.g. client_id"),
        );
    } else if NOT_AUDIENCE_CLAIMS.contains(&claim.as_str()) {
        d.invalid(
            cpath,
            format!("'{claim}' is a registered claim with another meaning; the audience is 'aud' (or, for Amazon Cognito access tokens, 'client_id')"),
        );
    }
    claim.clone()
}

fn check_audiences(d: &mut Diagnostics, cfg: &ProviderConfig, path: &FieldPath) {
    let aud_path = path.field("audiences");
    if cfg.audiences.is_empty() {
        d.invalid(
            aud_path,
            format!(
                "provider '{}' has no audience: without one, a token that {} minted for any other service would be accepted here; list the audience your callers request (the 'aud' claim)",
                cfg.name, cfg.issuer
            ),
        );
        return;
    }
    for (i, aud) in cfg.audiences.iter().enumerate() {
        if aud.is_empty() {
            d.error(aud_path.index(i), Problem::Empty);
        } else if cfg
            .audiences
            .get(..i)
            .is_some_and(|before| before.contains(aud))
        {
            d.error(aud_path.index(i), Problem::duplicate(aud));
        }
    }
}

/// Inline keys or a remote source: exactly one. `None` after an error.
fn compile_keys(
    d: &mut Diagnostics,
    cfg: &ProviderConfig,
    path: &FieldPath,
    algorithms: &[Alg],
) -> Option<KeySource> {
    let jwks_path = path.field("jwks");
    match (&cfg.jwks, &cfg.remote_jwks) {
        (Some(jwks), None) => {
            // Without a valid algorithm list no key could be judged usable.
            if algorithms.is_empty() {
                return None;
            }
            match parse_jwks(jwks, algorithms, "") {
                Ok(set) => {
                    for (at, why) in set.skipped() {
                        d.warning(
                            jwks_path.raw(at),
                            Problem::invalid(format!("skipped: {why}")),
                        );
                    }
                    Some(KeySource::Inline(Arc::new(set)))
                }
                Err(e) => {
                    d.push(e.under(&jwks_path));
                    None
                }
            }
        }
        (None, Some(remote)) => {
            let settings = keys::compile(d, remote, &cfg.issuer, &path.field("remote_jwks"))?;
            let live = Arc::new(LiveKeys::new());
            Some(KeySource::Remote(RemoteKeys { settings, live }))
        }
        (Some(_), Some(_)) => {
            d.invalid(
                path.field("remote_jwks"),
                msg!(
                    "set either ",
                    field("jwks"),
                    " (inline keys) or ",
                    field("remote_jwks"),
                    " (keys fetched at run time), not both"
                ),
            );
            None
        }
        (None, None) => {
            d.invalid(
                jwks_path,
                msg!(
                    format!(
                        "required: the public keys of '{}', either inline (",
                        cfg.issuer
                    ),
                    field("jwks"),
                    ": {keys: [...]}) or fetched by the filter at run time (",
                    field("remote_jwks"),
                    ": {uri: <JWKS URL>, cluster: <Envoy cluster of the IdP>})"
                ),
            );
            None
        }
    }
}

impl Provider {
    /// Compile one provider at `path` (e.g. `providers[2]`), adding every
    /// problem to `d`. `None` if it has errors.
    pub fn compile(
        cfg: &ProviderConfig,
        path: &FieldPath,
        d: &mut Diagnostics,
    ) -> Option<Provider> {
        let errors = d.error_count();
        if cfg.name.is_empty() {
            d.error(path.field("name"), Problem::Empty);
        } else if !valid_name(&cfg.name) {
            d.invalid(
                path.field("name"),
                format!("'{}' must match [a-z0-9_-]+", cfg.name),
            );
        }
        check_issuer(d, cfg, path);
        check_audiences(d, cfg, path);
        let audience_claim = audience_claim(d, cfg, path);
        let algorithms = compile_algorithms(d, &cfg.algorithms, path, &cfg.issuer);
        let clock_skew = check_range(
            d,
            cfg.clock_skew_seconds.unwrap_or(DEFAULT_CLOCK_SKEW),
            0,
            MAX_CLOCK_SKEW,
            path.field("clock_skew_seconds"),
        );
        let max_lifetime = check_range(
            d,
            cfg.max_lifetime_seconds.unwrap_or(DEFAULT_MAX_LIFETIME),
            MIN_MAX_LIFETIME,
            MAX_MAX_LIFETIME,
            path.field("max_lifetime_seconds"),
        );
        let sources = sources::compile(d, cfg.from.as_deref(), path);
        let keys = compile_keys(d, cfg, path, &algorithms);
        if d.error_count() > errors {
            return None;
        }
        Some(Provider {
            name: cfg.name.clone(),
            issuer: cfg.issuer.clone(),
            audiences: cfg.audiences.clone(),
            algorithms,
            keys: keys?,
            sources,
            clock_skew,
            max_lifetime,
            forward_token: cfg.forward_token,
            audience_claim,
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
    /// The claim the audiences are compared with (`aud` unless configured).
    pub fn audience_claim(&self) -> &str {
        &self.audience_claim
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
            audience_claim: &self.audience_claim,
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
    /// The claim checks of [`Provider::verify`] alone (issuer, audience,
    /// times, lifetime), for claims taken as signed by one of this
    /// provider's keys: what `oam-authz diff` runs on its example tokens.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn check_claims(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
        now: u64,
    ) -> Result<VerifiedToken, TokenError> {
        use crate::jwt::verify::{check_claims, ClaimRules};
        let rules = ClaimRules {
            issuer: &self.issuer,
            audiences: &self.audiences,
            audience_claim: &self.audience_claim,
            clock_skew: self.clock_skew,
            max_lifetime: self.max_lifetime,
        };
        let checked = check_claims(claims, &rules, now)?;
        Ok(VerifiedToken {
            issuer: checked.issuer,
            subject: checked.subject,
            expires_at: checked.expires_at,
            claims: claims.clone(),
        })
    }

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

    /// `providers[i]`: the provider and its warnings, or every error.
    pub(crate) fn compile_at(
        cfg: &ProviderConfig,
        i: usize,
    ) -> Result<(Provider, Diagnostics), Diagnostics> {
        let mut d = Diagnostics::new();
        let path = FieldPath::root().field("providers").index(i);
        match Provider::compile(cfg, &path, &mut d) {
            Some(p) => Ok((p, d)),
            None => Err(d),
        }
    }
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
            audience_claim: None,
            allow_http_issuer: false,
        }
    }

    #[test]
    fn defaults() {
        let (p, warnings) = compile_at(&base(), 0).unwrap();
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
        assert!(warnings.is_empty());
        assert_eq!(p.keys().unwrap().len(), 1);
        assert!(p.remote().is_none());
    }

    #[test]
    fn issuers_are_https_urls_or_loopback_http() {
        type Edit = fn(&mut ProviderConfig);
        let accepted: Vec<Edit> = vec![
            |c| c.issuer = "https://gitlab.example.com".into(),
            |c| c.issuer = "https://acme.auth0.com/".into(),
            |c| c.issuer = "https://login.microsoftonline.com/t/v2.0".into(),
            |c| c.issuer = "https://idp.example.com:8443/realms/x".into(),
            |c| c.issuer = "http://localhost:8080/realms/test".into(),
            |c| c.issuer = "http://127.0.0.1:5556/dex".into(),
            |c| c.issuer = "http://[::1]:9000".into(),
            |c| {
                c.issuer = "http://keycloak:8080/realms/test".into();
                c.allow_http_issuer = true;
            },
        ];
        for edit in accepted {
            let mut cfg = base();
            edit(&mut cfg);
            assert!(compile_at(&cfg, 0).is_ok(), "{}", cfg.issuer);
        }
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
        let (p, _) = compile_at(&cfg, 0).unwrap();
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
        let (_, warnings) = compile_at(&cfg, 3).unwrap();
        assert_eq!(warnings.len(), 1);
        let w = warnings.iter().next().unwrap();
        assert!(!w.is_error());
        assert!(
            w.to_string()
                .starts_with("providers[3].jwks.keys[0]: skipped"),
            "{w}"
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
                |c| c.issuer = "gitlab.acme.example".into(),
                "providers[2].issuer: 'gitlab.acme.example' is not an https:// URL (did you mean 'https://gitlab.acme.example'?): identity providers send 'iss' as a URL, compared exactly, so every token would be refused with token_issuer_unknown",
            ),
            (
                |c| c.issuer = "ftp://idp.example.com".into(),
                "providers[2].issuer: 'ftp://idp.example.com' is not an https:// URL: ",
            ),
            (
                |c| c.issuer = "http://idp.example.com".into(),
                "providers[2].issuer: 'http://idp.example.com' is a plain http:// URL: real identity providers are https:// (OpenID Connect Discovery 1.0, section 3); http:// is accepted for loopback hosts, or with 'allow_http_issuer: true' for a test environment",
            ),
            (
                |c| c.issuer = "http://127.0.0.1.evil.example".into(),
                "providers[2].issuer: 'http://127.0.0.1.evil.example' is a plain http:// URL",
            ),
            (
                |c| c.issuer = "https://".into(),
                "providers[2].issuer: 'https://': an issuer is a URL with a host",
            ),
            (
                |c| c.issuer = "https://user@idp.example.com".into(),
                "providers[2].issuer: 'https://user@idp.example.com': an issuer is a URL with a host and no user, query, fragment or spaces",
            ),
            (
                |c| c.issuer = "https://idp.example.com/?x=1".into(),
                "providers[2].issuer: 'https://idp.example.com/?x=1': an issuer is a URL",
            ),
            (
                |c| c.issuer = "https://idp.example.com ".into(),
                "providers[2].issuer: 'https://idp.example.com ': an issuer is a URL",
            ),
            (
                |c| c.audience_claim = Some("exp".into()),
                "providers[2].audience_claim: 'exp' is a registered claim with another meaning",
            ),
            (
                |c| c.audience_claim = Some("a.b".into()),
                "providers[2].audience_claim: 'a.b': a top-level claim name",
            ),
            (
                |c| c.audience_claim = Some("".into()),
                "providers[2].audience_claim: '': a top-level claim name",
            ),
            (
                |c| c.audiences = vec![],
                "providers[2].audiences: provider 'corp-sso' has no audience: without one, a token that https://idp.example.com minted",
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
                "providers[2].algorithms: required: the signing algorithms accepted from 'https://idp.example.com', e.g. [RS256]",
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
                "providers[2].jwks: required: the public keys of 'https://idp.example.com', either inline (jwks: {keys: [...]}) or fetched by the filter at run time (remote_jwks: {uri: <JWKS URL>, cluster: <Envoy cluster of the IdP>})",
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
            let got = compile_at(&cfg, 2).unwrap_err().to_string();
            assert!(got.starts_with(want), "got: {got}\nwant: {want}");
        }
    }
}
