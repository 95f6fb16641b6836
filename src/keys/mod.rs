//! Remote JWKS: keys fetched by the filter from the identity provider,
//! refreshed on a timer, shared by all worker VMs, bounded in staleness.
//!
//! Layers, from the pure core out:
//! - [`url`], [`discovery`]: parsing what we fetch (OpenID discovery).
//! - [`record`]: the per-source record in proxy-wasm shared data.
//! - [`schedule`]: when to fetch (refresh, backoff with jitter, unknown-`kid`
//!   rate limit, the cross-worker lease), as pure functions of the record,
//!   the time and a seeded PRNG.
//! - [`live`]: the key set the request path verifies with.
//! - [`manager`]: per root context, drives the above through the
//!   [`manager::KeyHost`] trait (shared data, `dispatch_http_call`, metrics),
//!   so it is unit-tested natively with several fake workers.
//!
//! Worker sharing: Envoy runs one VM per worker thread. Each VM's root
//! context reads the shared record on every tick (250 ms); one worker at a
//! time holds a lease (compare-and-swap) and fetches; its result is written
//! back to the record, and every worker re-parses the JWKS only when the
//! record's version changes. So the IdP sees one fetch per refresh whatever
//! the number of workers, no worker lags another by more than one tick, and
//! a hot-reloaded policy starts with the keys already fetched.

pub mod discovery;
pub mod live;
pub mod manager;
pub mod record;
pub mod schedule;
// The IdP at mesh scale: a native simulation of the schedule (tests only).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod sim;
pub mod url;

use crate::config::RemoteJwksConfig;
use crate::error::{field, msg, Diagnostics, FieldPath, Problem};
use live::LiveKeys;
use schedule::Timing;
use std::sync::Arc;
use url::HttpUrl;

pub const DEFAULT_REFRESH_SECONDS: u64 = 300;
pub const MAX_REFRESH_SECONDS: u64 = 86_400;
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
pub const MIN_TIMEOUT_MS: u64 = 100;
pub const MAX_TIMEOUT_MS: u64 = 60_000;
pub const DEFAULT_MAX_STALE_SECONDS: u64 = 86_400;
pub const MAX_MAX_STALE_SECONDS: u64 = 7 * 86_400;
pub const DEFAULT_MIN_REFETCH_SECONDS: u64 = 30;
pub const MAX_MIN_REFETCH_SECONDS: u64 = 3_600;
/// Largest JWKS response we read.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// How often each worker's root context looks at the shared record.
pub const TICK_MS: u64 = 250;

/// What the first request of an attempt fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The JWKS itself.
    Jwks(HttpUrl),
    /// An OpenID discovery document naming the JWKS (`jwks_uri`).
    Discovery(HttpUrl),
}

/// A compiled `remote_jwks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSettings {
    pub cluster: String,
    pub target: Target,
    pub timing: Timing,
    /// Shared-data key of this source's record. Providers with the same
    /// issuer, cluster and URL share one record (and one fetch), also across
    /// policy reloads that change anything else about them.
    pub shared_key: String,
}

impl RemoteSettings {
    pub fn url(&self) -> &HttpUrl {
        match &self.target {
            Target::Jwks(u) | Target::Discovery(u) => u,
        }
    }
}

/// A provider's remote key source: its settings and the key set in use.
#[derive(Debug, Clone)]
pub struct RemoteKeys {
    pub settings: RemoteSettings,
    pub live: Arc<LiveKeys>,
}

fn range(d: &mut Diagnostics, value: u64, min: u64, max: u64, path: FieldPath) -> u64 {
    if value < min || value > max {
        d.error(path, Problem::range(value, min, max));
    }
    value
}

/// What to fetch first: the JWKS, or the discovery document naming it.
fn compile_target(
    d: &mut Diagnostics,
    cfg: &RemoteJwksConfig,
    issuer: &str,
    path: &FieldPath,
) -> Option<Target> {
    match (&cfg.uri, cfg.discovery) {
        (Some(u), discovery) => match url::parse(u) {
            Ok(url) if discovery => Some(Target::Discovery(url)),
            Ok(url) => Some(Target::Jwks(url)),
            Err(e) => {
                d.invalid(path.field("uri"), e);
                None
            }
        },
        (None, true) => match discovery::discovery_url(issuer) {
            Ok(url) => Some(Target::Discovery(url)),
            Err(e) => {
                d.invalid(
                    path.field("uri"),
                    format!("required: the discovery URL cannot be derived from the issuer ({e})"),
                );
                None
            }
        },
        (None, false) => {
            d.invalid(
                path.field("uri"),
                msg!(
                    "required (the JWKS URL), unless ",
                    field("discovery"),
                    " is true"
                ),
            );
            None
        }
    }
}

/// Refresh, timeout, staleness and refetch bounds (`discovery` is set by
/// the caller from the target).
fn compile_timing(d: &mut Diagnostics, cfg: &RemoteJwksConfig, path: &FieldPath) -> Timing {
    let refresh = range(
        d,
        cfg.refresh_seconds.unwrap_or(DEFAULT_REFRESH_SECONDS),
        1,
        MAX_REFRESH_SECONDS,
        path.field("refresh_seconds"),
    );
    let timeout_ms = range(
        d,
        cfg.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
        MIN_TIMEOUT_MS,
        MAX_TIMEOUT_MS,
        path.field("timeout_ms"),
    );
    let max_stale = cfg
        .max_stale_seconds
        .unwrap_or(DEFAULT_MAX_STALE_SECONDS.max(refresh));
    if max_stale < refresh || max_stale > MAX_MAX_STALE_SECONDS {
        d.error(
            path.field("max_stale_seconds"),
            Problem::OutOfRange {
                value: max_stale,
                min: refresh,
                max: MAX_MAX_STALE_SECONDS,
                note: Some(msg!("it must be at least ", field("refresh_seconds"))),
            },
        );
    }
    let min_refetch = range(
        d,
        cfg.min_refetch_interval_seconds
            .unwrap_or(DEFAULT_MIN_REFETCH_SECONDS),
        1,
        MAX_MIN_REFETCH_SECONDS,
        path.field("min_refetch_interval_seconds"),
    );
    Timing {
        refresh_ms: refresh * 1000,
        timeout_ms,
        max_stale_ms: max_stale * 1000,
        min_refetch_ms: min_refetch * 1000,
        discovery: false,
    }
}

/// Validate a provider's `remote_jwks` at `path` (e.g.
/// `providers[0].remote_jwks`), adding every problem to `d`.
pub fn compile(
    d: &mut Diagnostics,
    cfg: &RemoteJwksConfig,
    issuer: &str,
    path: &FieldPath,
) -> Option<RemoteSettings> {
    let errors = d.error_count();
    if cfg.cluster.is_empty() {
        d.error(path.field("cluster"), Problem::Empty);
    } else if cfg.cluster.chars().any(char::is_control) {
        // '|' is allowed: Istio names clusters `outbound|443||idp.example.com`.
        d.invalid(path.field("cluster"), "must not contain control characters");
    }
    let target = compile_target(d, cfg, issuer, path);
    let timing = compile_timing(d, cfg, path);
    let target = target?;
    if d.error_count() > errors {
        return None;
    }
    let discovery = matches!(target, Target::Discovery(_));
    // Fields are length-prefixed, so no value (a cluster name with '|', an
    // issuer URL) can make two different sources share a record.
    let url = match &target {
        Target::Jwks(u) | Target::Discovery(u) => u.to_string(),
    };
    let field = |v: &str| format!("{}:{v}", v.len());
    let shared_key = format!(
        "oam-authz.jwks.v{}|{}|{}|{}|{}",
        record::FORMAT,
        field(issuer),
        field(&cfg.cluster),
        if discovery { "discovery" } else { "jwks" },
        field(&url),
    );
    Some(RemoteSettings {
        cluster: cfg.cluster.clone(),
        target,
        timing: Timing {
            discovery,
            ..timing
        },
        shared_key,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `compile` as a Result, for the table below.
    fn run(
        c: &RemoteJwksConfig,
        issuer: &str,
        path: &FieldPath,
    ) -> Result<RemoteSettings, Diagnostics> {
        let mut d = Diagnostics::new();
        compile(&mut d, c, issuer, path).ok_or(d)
    }

    fn p() -> FieldPath {
        FieldPath::root().field("p")
    }

    fn remote_path() -> FieldPath {
        FieldPath::root()
            .field("providers")
            .index(1)
            .field("remote_jwks")
    }

    fn cfg() -> RemoteJwksConfig {
        RemoteJwksConfig {
            uri: Some("https://idp.example.com/keys".into()),
            cluster: "idp".into(),
            refresh_seconds: None,
            timeout_ms: None,
            max_stale_seconds: None,
            min_refetch_interval_seconds: None,
            discovery: false,
        }
    }
    const ISS: &str = "https://idp.example.com";

    #[test]
    fn defaults() {
        let s = run(&cfg(), ISS, &p()).unwrap();
        assert_eq!(s.cluster, "idp");
        assert_eq!(
            s.target,
            Target::Jwks(url::parse("https://idp.example.com/keys").unwrap())
        );
        assert_eq!(
            s.timing,
            Timing {
                refresh_ms: 300_000,
                timeout_ms: 5_000,
                max_stale_ms: 86_400_000,
                min_refetch_ms: 30_000,
                discovery: false
            }
        );
        assert_eq!(
            s.shared_key,
            "oam-authz.jwks.v1|23:https://idp.example.com|3:idp|jwks|28:https://idp.example.com/keys"
        );
        // Istio's cluster names contain '|'; they cannot collide with another source.
        let mut c = cfg();
        c.cluster = "outbound|443||idp.example.com".into();
        let istio = run(&c, ISS, &p()).unwrap();
        assert!(istio
            .shared_key
            .contains("|29:outbound|443||idp.example.com|"));
        c.cluster = "a|b".into();
        let mut d = cfg();
        d.cluster = "a".into();
        assert_ne!(
            run(&c, ISS, &p()).unwrap().shared_key,
            run(&d, ISS, &p()).unwrap().shared_key
        );
        let mut c = cfg();
        c.uri = None;
        c.discovery = true;
        let s = run(&c, ISS, &p()).unwrap();
        assert_eq!(s.url().path, "/.well-known/openid-configuration");
        assert!(s.timing.discovery);
        // A long refresh raises the default staleness bound with it.
        let mut c = cfg();
        c.refresh_seconds = Some(86_400);
        assert_eq!(run(&c, ISS, &p()).unwrap().timing.max_stale_ms, 86_400_000);
    }

    #[test]
    fn errors_name_the_field() {
        type Edit = fn(&mut RemoteJwksConfig);
        let table: Vec<(Edit, &str)> = vec![
            (|c| c.cluster = String::new(), "providers[1].remote_jwks.cluster: must not be empty"),
            (|c| c.uri = None, "providers[1].remote_jwks.uri: required (the JWKS URL), unless discovery is true"),
            (|c| c.uri = Some("idp/keys".into()), "providers[1].remote_jwks.uri: 'idp/keys' is not an absolute http(s) URL"),
            (|c| c.refresh_seconds = Some(0), "providers[1].remote_jwks.refresh_seconds: 0 is out of range (allowed 1..=86400)"),
            (|c| c.timeout_ms = Some(50), "providers[1].remote_jwks.timeout_ms: 50 is out of range (allowed 100..=60000)"),
            (
                |c| {
                    c.refresh_seconds = Some(600);
                    c.max_stale_seconds = Some(300);
                },
                "providers[1].remote_jwks.max_stale_seconds: 300 is out of range (allowed 600..=604800) (it must be at least refresh_seconds)",
            ),
            (
                |c| c.min_refetch_interval_seconds = Some(0),
                "providers[1].remote_jwks.min_refetch_interval_seconds: 0 is out of range (allowed 1..=3600)",
            ),
        ];
        for (edit, want) in table {
            let mut c = cfg();
            edit(&mut c);
            let got = run(&c, ISS, &remote_path()).unwrap_err().to_string();
            assert_eq!(got, want);
        }
        let mut c = cfg();
        c.uri = None;
        c.discovery = true;
        let got = run(&c, "urn:not-a-url", &p().field("remote_jwks"))
            .unwrap_err()
            .to_string();
        assert!(
            got.starts_with("p.remote_jwks.uri: required: the discovery URL cannot be derived"),
            "{got}"
        );
    }
}
