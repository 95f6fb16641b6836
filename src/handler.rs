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
use crate::decision::{Change, Decision, Reason, ShadowDecision};
use crate::engine::cache::{self, TokenCache};
use crate::engine::{decide, decide_with_shadow, forward, Request};
use crate::error::{Diagnostic, Diagnostics, FieldPath};
use crate::host::{Clock, Crypto, Level, Log, Metrics, PeerIdentity, RequestIo, METRIC_PREFIX};
use crate::jwt::{native, SOFTWARE_CRYPTO};
use crate::pattern::hostname::normalize_host;
use crate::peer;
use crate::policy::shadow::Verifier;
use crate::policy::{Policy, MAX_RULE_COUNTERS};
use crate::request::token::Edit;
use std::cell::RefCell;
use tally::Tally;

/// The filter's counters, defined once per plugin instance. Each has a
/// slot (its index in `ids`), which the VM's [`Tally`] counts in.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// Host counter id of each slot (`None`: the host refused to define it).
    ids: Vec<Option<u32>>,
    allowed: usize,
    /// One per denial code, in `Reason::denial_index` order.
    denied: Vec<usize>,
    audit_would_deny: Vec<usize>,
    /// One per `Change`, in `Change::ALL` order.
    shadow_changes: Vec<usize>,
    /// Per rule of the policy, and of its shadow.
    rule_hits: Vec<usize>,
    shadow_rule_hits: Vec<usize>,
    config_errors: Option<u32>,
}

impl Counters {
    pub fn define<H: Metrics>(host: &mut H) -> Counters {
        let mut m = Counters {
            config_errors: host.define_counter(&format!("{METRIC_PREFIX}config_errors")),
            ..Counters::default()
        };
        m.allowed = m.slot(host, format!("{METRIC_PREFIX}allowed"));
        for code in Reason::all_denial_codes() {
            let d = m.slot(host, format!("{METRIC_PREFIX}denied.{code}"));
            m.denied.push(d);
            let a = m.slot(host, format!("{METRIC_PREFIX}audit_would_deny.{code}"));
            m.audit_would_deny.push(a);
        }
        for c in Change::ALL {
            let s = m.slot(host, format!("{METRIC_PREFIX}shadow.{}", c.code()));
            m.shadow_changes.push(s);
        }
        m
    }

    /// A hit counter per rule of `policy` and of its shadow, up to
    /// `MAX_RULE_COUNTERS` each (docs/operations.md "Per-rule counters").
    pub fn define_rules<H: Metrics>(&mut self, host: &mut H, policy: &Policy) {
        self.rule_hits = self.rules(host, &policy.rules, "rule_hits", "rules_over_cap_hits");
        if let Some(s) = &policy.shadow {
            self.shadow_rule_hits = self.rules(
                host,
                &s.policy.rules,
                "shadow.rule_hits",
                "shadow.rules_over_cap_hits",
            );
        }
    }

    fn rules<H: Metrics>(
        &mut self,
        host: &mut H,
        rules: &[crate::policy::Rule],
        prefix: &str,
        over_cap: &str,
    ) -> Vec<usize> {
        let mut slots = Vec::with_capacity(rules.len());
        let mut names: Vec<String> = Vec::new();
        for (i, r) in rules.iter().take(MAX_RULE_COUNTERS).enumerate() {
            let name = metric_name(&r.name, i, &names);
            slots.push(self.slot(host, format!("{METRIC_PREFIX}{prefix}.{name}")));
            names.push(name);
        }
        if rules.len() > MAX_RULE_COUNTERS {
            let rest = self.slot(host, format!("{METRIC_PREFIX}{over_cap}"));
            slots.resize(rules.len(), rest);
        }
        slots
    }

    fn slot<H: Metrics>(&mut self, host: &mut H, name: String) -> usize {
        self.ids.push(host.define_counter(&name));
        self.ids.len() - 1
    }

    /// The counter a decision counts in.
    fn of(&self, reason: &Reason, mode: Mode) -> Option<usize> {
        match (reason.denial_index(), mode) {
            (None, _) => Some(self.allowed),
            (Some(i), Mode::Enforce) => self.denied.get(i).copied(),
            (Some(i), Mode::Audit) => self.audit_would_deny.get(i).copied(),
        }
    }
}

/// A metric-safe name for rule `i` (Prometheus keeps `[A-Za-z0-9_]`:
/// every other character becomes `_`); one `taken` by an earlier rule
/// gets `_<i>`.
fn metric_name(rule: &str, i: usize, taken: &[String]) -> String {
    let mut n = String::with_capacity(rule.len() + 4);
    for c in rule.chars() {
        n.push(if c.is_ascii_alphanumeric() { c } else { '_' });
    }
    if taken.contains(&n) {
        n.push('_');
        n.push_str(&i.to_string());
    }
    n
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
    let mut counters = Counters::define(host);
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
    counters.define_rules(host, &policy);
    host.log(
        Level::Info,
        &format!(
            "oam-authz: policy {} loaded: {} providers, {} roles, {} rules, mode {}, signatures {}{}",
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
            match &policy.shadow {
                Some(s) => format!("; shadow {}", s.policy.version),
                None => String::new(),
            },
        ),
    );
    let info = host.info_enabled();
    let tally = Tally::new(info, counters.ids.clone());
    Ok(Loaded {
        policy,
        counters,
        cache: RefCell::new(TokenCache::new(cache::DEFAULT_CAPACITY)),
        native_crypto,
        tally: RefCell::new(tally),
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
        algorithms_served(FieldPath::root().field("providers").index(i), p, host_works)?;
    }
    // The shadow verifies the tokens of its own providers itself.
    if let Some(s) = &policy.shadow {
        for (j, p) in s.policy.providers.iter().enumerate() {
            if s.verifiers.get(j) == Some(&Verifier::Own) {
                let path = FieldPath::root().field("shadow").field("providers");
                algorithms_served(path.index(j), p, host_works)?;
            }
        }
    }
    Ok(())
}

/// `crypto_plan` for one provider (at `path`) of the default build.
fn algorithms_served(
    path: FieldPath,
    p: &crate::policy::provider::Provider,
    host_works: bool,
) -> Result<(), Diagnostic> {
    let apath = path.field("algorithms");
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
    let (d, shadow) = match loaded.cache.try_borrow_mut() {
        Ok(mut c) => decide_all(policy, &req, &mut c),
        // Unreachable (one request at a time per VM); never trap over a cache.
        Err(_) => decide_all(policy, &req, &mut TokenCache::disabled()),
    };

    if let Ok(mut t) = loaded.tally.try_borrow_mut() {
        let changed = record(&mut t, &loaded.counters, policy.mode, &d, shadow.as_ref());
        if t.info() {
            // The host as matched: lowercased, port removed.
            let host_name = normalize_host(authority);
            let ev = audit::event(
                policy, &d, changed, now_ms, request_id, method, &host_name, path,
            );
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

/// The enforced decision and, with a shadow policy, the shadow's.
fn decide_all(
    policy: &Policy,
    req: &Request<'_>,
    cache: &mut TokenCache,
) -> (Decision, Option<ShadowDecision>) {
    match &policy.shadow {
        None => (decide(policy, req, cache, None), None),
        Some(s) => {
            let (d, sd) = decide_with_shadow(policy, s, req, cache);
            (d, Some(sd))
        }
    }
}

/// Count the decision, its rule and the shadow's; the shadow decision
/// when it differs (for the audit event).
fn record<'s>(
    t: &mut Tally,
    counters: &Counters,
    mode: Mode,
    d: &Decision,
    shadow: Option<&'s ShadowDecision>,
) -> Option<&'s ShadowDecision> {
    t.count(counters.of(&d.reason, mode));
    t.count(d.rule.and_then(|r| counters.rule_hits.get(r).copied()));
    let s = shadow?;
    t.count(
        s.rule
            .and_then(|r| counters.shadow_rule_hits.get(r).copied()),
    );
    let change = Change::of(&d.reason, s)?;
    t.count(counters.shadow_changes.get(change.index()).copied());
    Some(s)
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
mod shadow_tests;
#[cfg(test)]
mod tests;
