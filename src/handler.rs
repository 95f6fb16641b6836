//! The filter's request plumbing, written against the host traits of
//! `host.rs` instead of proxy-wasm so that it runs (and is tested)
//! natively. `wasm.rs` implements the traits with real host calls.
//!
//! Nothing here decides: the engine returns a final `Decision`, and this
//! module only reads the facts, records the audit event and the counts, and
//! applies the engine's edits or the decision's reply.
//!
//! Host calls per request (each crossing costs ~0.1-0.3 µs in V8, and a
//! read that returns data crosses twice, to allocate): 1 header map read,
//! 1 property on a sidecar's mTLS connection (the URI SAN; more without one,
//! see `peer.rs`), 1 clock read, plus one write per header stripped or set,
//! or 1 local reply. Counters and audit lines are kept per VM and handed to
//! the host once per tick ([`flush`]): one log call and one counter update
//! per reason seen, whatever the request rate.

mod tally;

use crate::audit;
use crate::config::{Mode, SignatureBackendMode};
use crate::decision::Reason;
use crate::engine::cache::{self, TokenCache};
use crate::engine::{decide, forward, Request};
use crate::error::{Diagnostic, Diagnostics, FieldPath};
use crate::host::{Clock, Crypto, Level, Log, Metrics, PeerIdentity, RequestIo, METRIC_PREFIX};
use crate::jwt::{native, SOFTWARE_CRYPTO};
use crate::pattern::hostname::normalize_host;
use crate::peer;
use crate::policy::Policy;
use crate::request::token::Edit;
use std::cell::RefCell;
use tally::Tally;

/// Counter ids, defined once per plugin instance: `allowed`, then one
/// `denied.<code>` and one `audit_would_deny.<code>` per denial code, in
/// `Reason::denial_index` order.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    allowed: Option<u32>,
    denied: Vec<Option<u32>>,
    audit_would_deny: Vec<Option<u32>>,
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
            m.denied
                .push(host.define_counter(&format!("{METRIC_PREFIX}denied.{code}")));
            m.audit_would_deny
                .push(host.define_counter(&format!("{METRIC_PREFIX}audit_would_deny.{code}")));
        }
        m
    }

    /// The counter a decision counts in.
    fn of(&self, reason: &Reason, mode: Mode) -> Option<u32> {
        match (reason.denial_index(), mode) {
            (None, _) => self.allowed,
            (Some(i), Mode::Enforce) => self.denied.get(i).copied().flatten(),
            (Some(i), Mode::Audit) => self.audit_would_deny.get(i).copied().flatten(),
        }
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
    /// Counts and audit lines not yet handed to the host.
    tally: RefCell<Tally>,
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
    let host_works = policy.signature_backend != SignatureBackendMode::Wasm
        && host.crypto().is_some_and(native::probe);
    if let Err(e) = crypto_plan(&policy, host_works, SOFTWARE_CRYPTO) {
        return Err(reject(host, &counters, e.into()));
    }
    let native_crypto = host_works;
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
    let info = host.info_enabled();
    Ok(Loaded {
        policy,
        counters,
        cache: RefCell::new(TokenCache::new(cache::DEFAULT_CAPACITY)),
        native_crypto,
        tally: RefCell::new(Tally::new(info)),
    })
}

fn reject<H: Metrics + Log>(host: &mut H, counters: &Counters, e: Diagnostics) -> Diagnostics {
    if let Some(id) = counters.config_errors {
        host.add_counter(id, 1);
    }
    host.log(
        Level::Critical,
        &format!("oam-authz: configuration rejected: {e}"),
    );
    e
}

/// Whether every signature the policy accepts can be checked here: by the
/// host's verifier (`host_works`: offered, self-tested, not turned off with
/// `signature_backend: wasm`), or by this build's software verifier
/// (`software`: natively and in the full module build). Ed25519 is always
/// checked in wasm; RSA-PSS only in software (Envoy's verifier has no PSS).
fn crypto_plan(policy: &Policy, host_works: bool, software: bool) -> Result<(), Diagnostic> {
    let path = FieldPath::root().field("signature_backend");
    match policy.signature_backend {
        SignatureBackendMode::Host if !host_works => {
            return Err(Diagnostic::invalid(
                path,
                "'host' needs Envoy's verify_signature foreign function, which this proxy does not offer or which failed its self-test; use 'auto' or 'wasm'",
            ))
        }
        SignatureBackendMode::Wasm if !software => {
            return Err(Diagnostic::invalid(
                path,
                "'wasm' needs the full module build (oam_authz_full.wasm): this default build verifies RSA and ECDSA with Envoy's verify_signature only",
            ))
        }
        _ => {}
    }
    if software {
        return Ok(());
    }
    for (i, p) in policy.providers.iter().enumerate() {
        let apath = FieldPath::root()
            .field("providers")
            .index(i)
            .field("algorithms");
        if let Some(pss) = p.algorithms().iter().find(|a| a.is_pss()) {
            return Err(Diagnostic::invalid(
                apath,
                format!("{pss} needs the full module build (oam_authz_full.wasm): Envoy's verify_signature has no RSA-PSS, and this default build has no software RSA"),
            ));
        }
        if !host_works {
            if let Some(alg) = p.algorithms().iter().find(|a| !a.is_eddsa()) {
                return Err(Diagnostic::invalid(
                    apath,
                    format!("{alg} needs Envoy's verify_signature, which this proxy does not offer or which failed its self-test; use a proxy that has it, or the full module build (oam_authz_full.wasm)"),
                ));
            }
        }
    }
    Ok(())
}

/// What the filter tells Envoy after the request headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// A local response was sent; stop the filter chain.
    Stop,
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
    let method = headers.get(":method").unwrap_or("");
    let path = headers.get(":path").unwrap_or("");
    let authority = headers.get(":authority").unwrap_or("");
    let request_id = headers.get("x-request-id").unwrap_or("");

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

    if let Ok(mut t) = loaded.tally.try_borrow_mut() {
        t.count(loaded.counters.of(&d.reason, policy.mode));
        if t.info() {
            // The host as matched: lowercased, port removed.
            let host_name = normalize_host(authority);
            let ev = audit::event(policy, &d, now_ms, request_id, method, &host_name, path);
            if t.audit_with(|out| audit::write(out, &ev)) {
                // Over the bound: hand the lines over now, not at the tick.
                t.flush_audit(host);
            }
        }
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

/// Hand the VM's pending counts and audit lines to the host (on every tick,
/// and before a policy is replaced), and re-read the host's log level.
pub fn flush<H: Metrics + Log>(host: &mut H, loaded: &Loaded) {
    if let Ok(mut t) = loaded.tally.try_borrow_mut() {
        t.flush(host);
        t.set_info(host.info_enabled());
    }
}

#[cfg(test)]
mod tests;
