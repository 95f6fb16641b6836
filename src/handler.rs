//! The filter's request plumbing, written against the host traits of
//! `host.rs` instead of proxy-wasm so that it runs (and is tested)
//! natively. `wasm.rs` implements the traits with real host calls.
//!
//! Nothing here decides: the engine returns a final `Decision`, and this
//! module only reads the facts, logs the audit event, counts, and applies
//! the engine's edits or the decision's reply.
//!
//! Host calls per request (V8 charges ~0.1-0.3 µs each): 1 header map read,
//! 1-2 properties (see `peer.rs`), 1 clock read,
//! 1 log, 1 metric, plus one write per header stripped or set, or 1 local reply.

use crate::audit;
use crate::config::{Mode, SignatureBackendMode};
use crate::decision::Reason;
use crate::engine::cache::{self, TokenCache};
use crate::engine::{decide, forward, Request};
use crate::error::{Diagnostic, Diagnostics, FieldPath};
use crate::host::{Clock, Crypto, Level, Log, Metrics, PeerIdentity, RequestIo, METRIC_PREFIX};
use crate::jwt::native;
use crate::pattern::hostname::normalize_host;
use crate::peer;
use crate::policy::Policy;
use crate::request::token::Edit;
use std::cell::RefCell;
use std::collections::HashMap;

/// Counter ids, defined once per plugin instance.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    allowed: Option<u32>,
    denied: HashMap<&'static str, u32>,
    audit_would_deny: HashMap<&'static str, u32>,
    config_errors: Option<u32>,
}

impl Counters {
    pub fn define<H: Metrics>(host: &mut H) -> Counters {
        let mut m = Counters {
            allowed: host.define_counter(&format!("{METRIC_PREFIX}allowed")),
            config_errors: host.define_counter(&format!("{METRIC_PREFIX}config_errors")),
            ..Counters::default()
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
    pub counters: Counters,
    /// Verified tokens of this VM (one VM per Envoy worker, single-threaded).
    pub cache: RefCell<TokenCache>,
    /// RSA/ECDSA signatures go to the host's native verifier.
    pub native_crypto: bool,
}

/// `on_configure`: compile the policy or refuse it with a critical log line
/// naming the field. The caller returns `false` to Envoy on `Err`.
pub fn configure<H: Metrics + Log + Crypto>(
    host: &mut H,
    config: Option<&[u8]>,
) -> Result<Loaded, Diagnostics> {
    let counters = Counters::define(host);
    let result = match config {
        None => {
            Err(Diagnostic::invalid(FieldPath::root(), "no plugin configuration was given").into())
        }
        Some(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Policy::from_json(text),
            Err(_) => Err(Diagnostic::invalid(
                FieldPath::root(),
                "the plugin configuration is not UTF-8 text",
            )
            .into()),
        },
    };
    let policy = match result {
        Ok(p) => p,
        Err(e) => return Err(reject(host, &counters, e)),
    };
    for w in &policy.warnings {
        host.log(Level::Warn, &format!("oam-authz: warning: {w}"));
    }
    let native_crypto = match policy.signature_backend {
        SignatureBackendMode::Wasm => false,
        mode => {
            let works = host.crypto().is_some_and(native::probe);
            if mode == SignatureBackendMode::Host && !works {
                let e = Diagnostic::invalid(
                    FieldPath::root().field("signature_backend"),
                    "'host' needs Envoy's verify_signature foreign function, which this proxy does not offer or which failed its self-test; use 'auto' or 'wasm'",
                );
                return Err(reject(host, &counters, e.into()));
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
        counters,
        cache: RefCell::new(TokenCache::new(cache::DEFAULT_CAPACITY)),
        native_crypto,
    })
}

fn reject<H: Metrics + Log>(host: &mut H, counters: &Counters, e: Diagnostics) -> Diagnostics {
    if let Some(id) = counters.config_errors {
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

fn apply<H: RequestIo>(host: &mut H, edit: &Edit) {
    match edit {
        Edit::Remove(name) => host.set_request_header(name, None),
        Edit::Set(name, value) => host.set_request_header(name, Some(value)),
    }
}

/// `on_http_request_headers`.
pub fn on_request_headers<H>(host: &mut H, loaded: &Loaded) -> Verdict
where
    H: RequestIo + PeerIdentity + Clock + Log + Metrics + Crypto,
{
    let policy = &loaded.policy;
    let headers = host.request_headers();

    // Identity headers we emit are client-settable: remove them first, on
    // every request, whatever the decision (exempt paths included).
    for name in forward::spoofed(policy, &headers) {
        host.set_request_header(name, None);
    }

    let peer = peer::identity(policy.peer_identity, host);
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
    let d = match loaded.cache.try_borrow_mut() {
        Ok(mut c) => decide(policy, &req, &mut c, None),
        // Unreachable (one request at a time per VM); never trap over a cache.
        Err(_) => decide(policy, &req, &mut TokenCache::disabled(), None),
    };

    // Log the host as matched: lowercased, port removed.
    if host.info_enabled() {
        let host_name = normalize_host(authority);
        let ev = audit::event(policy, &d, now_ms, request_id, method, &host_name, path);
        host.log(Level::Info, &audit::line(&ev));
    }

    let code = d.reason.code();
    let counter = if d.allowed() {
        loaded.counters.allowed
    } else if policy.mode == Mode::Audit {
        loaded.counters.audit_would_deny.get(code).copied()
    } else {
        loaded.counters.denied.get(code).copied()
    };
    if let Some(id) = counter {
        host.increment_counter(id);
    }

    if d.allowed() || policy.mode == Mode::Audit {
        for edit in forward::upstream(policy, &d, &headers, path) {
            apply(host, &edit);
        }
        Verdict::Continue
    } else {
        let reply = d.reply(request_id);
        host.send_local_response(reply.status, &reply.headers, &reply.body);
        Verdict::Stop
    }
}

#[cfg(test)]
mod tests;
