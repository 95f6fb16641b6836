//! The request-handling logic of the filter, written against a small `Host`
//! trait instead of proxy-wasm so that it runs (and is tested) natively. The
//! wasm filter (`filter.rs`) only implements `Host` with real host calls.
//!
//! Host calls per request (V8 charges ~0.1-0.3 µs each): 1 header map read,
//! 1-2 properties (mTLS flag, then the URI SAN only with mTLS), 1 clock read,
//! 1 log, 1 metric, plus one write per header stripped or set, or 1 local reply.

use crate::audit;
use crate::engine::cache::{self, TokenCache};
use crate::config::Mode;
use crate::config::SignatureBackendMode;
use crate::decision::{Decision, Reason, TokenLocation};
use crate::engine::{cookie_items, decide_cached, split_pair, Request};
use crate::error::ConfigError;
use crate::policy::claims::lookup;
use crate::jwt::native::{self, SignatureBackend};
use crate::policy::Policy;
use std::cell::RefCell;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Critical,
}

/// Everything the filter needs from Envoy.
pub trait Host {
    /// All request headers, lowercase names, values as sent. A value that is
    /// not valid UTF-8 is replaced by "\0", which every check here rejects.
    fn request_headers(&self) -> Vec<(String, String)>;
    /// URI SAN of the peer certificate, only if the connection is mTLS.
    fn peer_uri_san(&self) -> Option<String>;
    /// Host clock, Unix milliseconds.
    fn now_millis(&self) -> u64;
    /// Set (`Some`) or remove (`None`) a request header (`:path` included).
    fn set_request_header(&mut self, name: &str, value: Option<&str>);
    fn send_local_response(&mut self, status: u16, headers: &[(&str, &str)], body: &str);
    fn log(&self, level: Level, msg: &str);
    fn define_counter(&mut self, name: &str) -> Option<u32>;
    fn increment_counter(&self, id: u32);
    /// The host's native signature verifier, if it has one.
    fn crypto(&self) -> Option<&dyn SignatureBackend> {
        None
    }
    /// Whether info-level lines are written at all. The audit event is only
    /// built when they are: Istio's default proxy log level is `warning`.
    fn info_enabled(&self) -> bool {
        true
    }
}

pub const METRIC_PREFIX: &str = "oam_authz.";

/// Counter ids, defined once per plugin instance.
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    allowed: Option<u32>,
    denied: HashMap<&'static str, u32>,
    audit_would_deny: HashMap<&'static str, u32>,
    config_errors: Option<u32>,
}

impl Metrics {
    pub fn define<H: Host>(host: &mut H) -> Metrics {
        let mut m = Metrics {
            allowed: host.define_counter(&format!("{METRIC_PREFIX}allowed")),
            config_errors: host.define_counter(&format!("{METRIC_PREFIX}config_errors")),
            ..Metrics::default()
        };
        for code in Reason::all_denial_codes() {
            if let Some(id) = host.define_counter(&format!("{METRIC_PREFIX}denied.{code}")) {
                m.denied.insert(code, id);
            }
            if let Some(id) =
                host.define_counter(&format!("{METRIC_PREFIX}audit_would_deny.{code}"))
            {
                m.audit_would_deny.insert(code, id);
            }
        }
        m
    }
}

/// A loaded plugin instance: the compiled policy and its counters.
#[derive(Debug)]
pub struct Loaded {
    pub policy: Policy,
    pub metrics: Metrics,
    /// Verified tokens of this VM (one VM per Envoy worker, single-threaded).
    pub cache: RefCell<TokenCache>,
    /// RSA/ECDSA signatures go to the host's native verifier.
    pub native_crypto: bool,
}

/// `on_configure`: compile the policy or refuse it with a critical log line
/// naming the field. The caller returns `false` to Envoy on `Err`.
pub fn configure<H: Host>(host: &mut H, config: Option<&[u8]>) -> Result<Loaded, ConfigError> {
    let metrics = Metrics::define(host);
    let result = match config {
        None => Err(ConfigError::invalid(
            "",
            "no plugin configuration was given",
        )),
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Policy::from_json(text),
            Err(_) => Err(ConfigError::invalid(
                "",
                "the plugin configuration is not UTF-8 text",
            )),
        },
    };
    let policy = match result {
        Ok(p) => p,
        Err(e) => return Err(reject(host, &metrics, e)),
    };
    for (i, p) in policy.providers.iter().enumerate() {
        for w in p.warnings() {
            host.log(Level::Warn, &format!("oam-authz: providers[{i}]: {w}"));
        }
    }
    let native_crypto = match policy.signature_backend {
        SignatureBackendMode::Wasm => false,
        mode => {
            let works = host.crypto().is_some_and(native::probe);
            if mode == SignatureBackendMode::Host && !works {
                let e = ConfigError::invalid(
                    "signature_backend",
                    "'host' needs Envoy's verify_signature foreign function, which this proxy does not offer or which failed its self-test; use 'auto' or 'wasm'",
                );
                return Err(reject(host, &metrics, e));
            }
            works
        }
    };
    host.log(
        Level::Info,
        &format!(
            "oam-authz: policy {} loaded: {} providers, {} roles, {} rules, mode {}, signatures {}",
            policy.version,
            policy.providers.len(),
            policy.roles.len(),
            policy.rules.len(),
            if policy.mode == Mode::Audit {
                "audit"
            } else {
                "enforce"
            },
            if native_crypto {
                "RS*/ES* native (Envoy verify_signature), EdDSA/PS* wasm"
            } else {
                "all wasm"
            },
        ),
    );
    Ok(Loaded {
        policy,
        metrics,
        cache: RefCell::new(TokenCache::new(cache::DEFAULT_CAPACITY)),
        native_crypto,
    })
}

fn reject<H: Host>(host: &mut H, metrics: &Metrics, e: ConfigError) -> ConfigError {
    if let Some(id) = metrics.config_errors {
        host.increment_counter(id);
    }
    host.log(
        Level::Critical,
        &format!("oam-authz: configuration rejected: {e}"),
    );
    e
}

/// What the filter tells Envoy after the request headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// A local response was sent; stop the filter chain.
    Stop,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `on_http_request_headers`.
pub fn on_request_headers<H: Host>(host: &mut H, loaded: &Loaded) -> Verdict {
    let policy = &loaded.policy;
    let headers = host.request_headers();

    // Identity headers we emit are client-settable: remove them first, on
    // every request, whatever the decision (exempt paths included).
    for name in &policy.strip_headers {
        if headers.iter().any(|(k, _)| k == name) {
            host.set_request_header(name, None);
        }
    }

    let peer = host.peer_uri_san();
    let now_ms = host.now_millis();
    let method = header(&headers, ":method").unwrap_or("");
    let path = header(&headers, ":path").unwrap_or("");
    let authority = header(&headers, ":authority").unwrap_or("");
    let request_id = header(&headers, "x-request-id").unwrap_or("");

    let req = Request {
        method,
        path,
        host: authority,
        headers: &headers,
        peer: peer.as_deref(),
        now: now_ms / 1000,
        crypto: if loaded.native_crypto {
            host.crypto()
        } else {
            None
        },
    };
    let mut d = match loaded.cache.try_borrow_mut() {
        Ok(mut c) => decide_cached(policy, &req, &mut c),
        // Unreachable (one request at a time per VM); never trap over a cache.
        Err(_) => decide_cached(policy, &req, &mut TokenCache::disabled()),
    };

    // The decision evaluated only the roles it needed. When roles are
    // forwarded, the upstream and the audit event get every held role (for
    // denials too, so the audit line reads the same either way).
    // Requests refused before authorization (bad path, bad token) hold no role.
    let authorized = !matches!(
        d.reason,
        Reason::PathNotCanonical(_) | Reason::MultipleTokens | Reason::InvalidToken(_)
    );
    if authorized && policy.forward.roles_header.is_some() {
        d.roles = crate::engine::held_roles(policy, &d.identity);
    }
    // Log the host as matched: lowercased, port removed.
    if host.info_enabled() {
        let host_name = crate::pattern::hostname::normalize_host(authority);
        let ev = audit::event(policy, &d, now_ms, request_id, method, &host_name, path);
        host.log(Level::Info, &audit::line(&ev));
    }

    let code = d.reason.code();
    let counter = if d.allowed() {
        loaded.metrics.allowed
    } else if policy.mode == Mode::Audit {
        loaded.metrics.audit_would_deny.get(code).copied()
    } else {
        loaded.metrics.denied.get(code).copied()
    };
    if let Some(id) = counter {
        host.increment_counter(id);
    }

    if d.allowed() || policy.mode == Mode::Audit {
        forward(host, policy, &d, &headers, path);
        Verdict::Continue
    } else {
        deny(host, &d, request_id);
        Verdict::Stop
    }
}

fn deny<H: Host>(host: &mut H, d: &Decision, request_id: &str) {
    let status = d.status();
    let error = match status {
        400 => "bad_request",
        401 => "unauthorized",
        503 => "unavailable",
        _ => "forbidden",
    };
    let body =
        serde_json::json!({ "error": error, "reason": d.reason.code(), "request_id": request_id })
            .to_string();
    let www = match &d.reason {
        Reason::TokenMissing => Some("Bearer realm=\"oam-authz\""),
        // jwks_unavailable (503): nothing is wrong with the token.
        Reason::InvalidToken(crate::jwt::TokenError::KeysUnavailable) => None,
        Reason::InvalidToken(_) => Some("Bearer realm=\"oam-authz\", error=\"invalid_token\""),
        Reason::MultipleTokens => Some("Bearer realm=\"oam-authz\", error=\"invalid_request\""),
        _ => None,
    };
    let mut hdrs: Vec<(&str, &str)> = vec![
        ("content-type", "application/json"),
        ("x-oam-authz-reason", d.reason.code()),
        ("cache-control", "no-store"),
    ];
    if let Some(w) = www {
        hdrs.push(("www-authenticate", w));
    }
    if status == 503 {
        hdrs.push(("retry-after", "1"));
    }
    host.send_local_response(status, &hdrs, &body);
}

/// Remove the token (unless its provider forwards it) and set identity headers.
fn forward<H: Host>(
    host: &mut H,
    policy: &Policy,
    d: &Decision,
    headers: &[(String, String)],
    path: &str,
) {
    let keep_token = d
        .identity
        .token
        .as_ref()
        .and_then(|t| policy.providers.get(t.provider))
        .is_some_and(|p| p.forward_token());
    if let (Some(loc), false) = (&d.token_location, keep_token) {
        match loc {
            TokenLocation::Header(name) => host.set_request_header(name, None),
            TokenLocation::Query(param) => {
                host.set_request_header(":path", Some(&remove_query_param(path, param)))
            }
            TokenLocation::Cookie(name) => {
                let rest = remove_cookie(headers, name);
                host.set_request_header("cookie", if rest.is_empty() { None } else { Some(&rest) });
            }
        }
    }
    let f = &policy.forward;
    if let (Some(h), Some(peer)) = (&f.principal_header, &d.identity.peer) {
        host.set_request_header(h, Some(&peer.to_string()));
    }
    if let Some(t) = &d.identity.token {
        if let (Some(h), Some(sub)) = (&f.subject_header, &t.token.subject) {
            host.set_request_header(h, Some(sub));
        }
        if let Some(h) = &f.issuer_header {
            host.set_request_header(h, Some(&t.token.issuer));
        }
        for (h, claim) in &f.claim_headers {
            let value = match lookup(&t.token.claims, claim) {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                    Some(v.to_string())
                }
                _ => None,
            };
            if let Some(v) = value.filter(|v| !v.chars().any(char::is_control)) {
                host.set_request_header(h, Some(&v));
            }
        }
    }
    if let Some(h) = &f.roles_header {
        if !d.roles.is_empty() {
            host.set_request_header(h, Some(&d.roles.join(",")));
        }
    }
}

fn remove_query_param(path: &str, param: &str) -> String {
    let Some((p, q)) = path.split_once('?') else {
        return path.to_string();
    };
    let kept: Vec<&str> = q
        .split('&')
        .filter(|pair| split_pair(pair).0 != param)
        .collect();
    if kept.is_empty() {
        p.to_string()
    } else {
        format!("{p}?{}", kept.join("&"))
    }
}

fn remove_cookie(headers: &[(String, String)], name: &str) -> String {
    cookie_items(headers)
        .filter(|c| !c.is_empty() && split_pair(c).0 != name)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
pub mod testing {
    //! A recording `Host` double for native tests of the shim.
    use super::*;
    use std::cell::RefCell;

    /// A local response: status, headers, body.
    pub type Sent = (u16, Vec<(String, String)>, String);

    #[derive(Debug, Default)]
    pub struct FakeHost {
        pub headers: Vec<(String, String)>,
        pub peer: Option<String>,
        pub now_ms: u64,
        pub sent: Option<Sent>,
        pub logs: RefCell<Vec<(Level, String)>>,
        pub counters: RefCell<Vec<(String, u64)>>,
        /// Log level above info (Istio's default `warning`).
        pub quiet: bool,
    }

    impl FakeHost {
        pub fn header(&self, name: &str) -> Vec<&str> {
            self.headers
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .collect()
        }
        pub fn counter(&self, name: &str) -> u64 {
            self.counters
                .borrow()
                .iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, v)| *v)
        }
    }

    impl Host for FakeHost {
        fn request_headers(&self) -> Vec<(String, String)> {
            self.headers.clone()
        }
        fn peer_uri_san(&self) -> Option<String> {
            self.peer.clone()
        }
        fn now_millis(&self) -> u64 {
            self.now_ms
        }
        fn set_request_header(&mut self, name: &str, value: Option<&str>) {
            self.headers.retain(|(k, _)| k != name);
            if let Some(v) = value {
                self.headers.push((name.to_string(), v.to_string()));
            }
        }
        fn send_local_response(&mut self, status: u16, headers: &[(&str, &str)], body: &str) {
            let hs = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            self.sent = Some((status, hs, body.to_string()));
        }
        fn log(&self, level: Level, msg: &str) {
            self.logs.borrow_mut().push((level, msg.to_string()));
        }
        fn define_counter(&mut self, name: &str) -> Option<u32> {
            let mut c = self.counters.borrow_mut();
            c.push((name.to_string(), 0));
            u32::try_from(c.len() - 1).ok()
        }
        fn info_enabled(&self) -> bool {
            !self.quiet
        }
        fn increment_counter(&self, id: u32) {
            if let Some(c) = self.counters.borrow_mut().get_mut(id as usize) {
                c.1 += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
