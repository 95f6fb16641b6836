//! Several fake workers sharing one fake shared-data store and one fake
//! clock, driving the real policy, shim and key manager natively.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::type_complexity
)]

use super::*;
use crate::handler::{self, Loaded, Verdict};
use crate::host::{Crypto, HttpCalls, SharedData};
use crate::jwt::jwks::tests::ed_jwk;
use crate::keys::TICK_MS;
use crate::testing::{impl_host, FakeClock, FakeLog, FakeMetrics, FakePeer, FakeRequest};
use jwt_simple::prelude::*;
use serde_json::json;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

const ISS: &str = "https://idp.example.com";
const T0: u64 = 1_700_000_000_000;
const REFRESH_MS: u64 = 60_000;
const STALE_MS: u64 = 300_000;
const REFETCH_MS: u64 = 10_000;

#[derive(Debug, Clone)]
struct Call {
    worker: usize,
    token: u32,
    cluster: String,
    url: String,
    timeout_ms: u64,
}

/// What every worker shares: the clock, shared data, the calls made.
#[derive(Default)]
struct World {
    clock: FakeClock,
    shared: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    next_cas: Cell<u32>,
    calls: RefCell<Vec<Call>>,
    next_token: Cell<u32>,
    /// Make `http_get` fail (unknown cluster).
    refuse_dispatch: Cell<bool>,
}

impl World {
    fn new() -> Rc<World> {
        let w = World::default();
        w.clock.set(T0);
        Rc::new(w)
    }
    fn advance(&self, ms: u64) {
        self.clock.advance(ms);
    }
    fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }
    fn record(&self, key: &str) -> Record {
        Record::decode(&self.shared.borrow()[key].0).unwrap()
    }
}

struct Worker {
    id: usize,
    world: Rc<World>,
    clock: FakeClock,
    log: FakeLog,
    metrics: FakeMetrics,
    request: FakeRequest,
    peer: FakePeer,
}

// The plugin tests below also send requests through the handler, so a
// worker is a request-path host as well as the key manager's.
impl_host!(Worker {
    clock: Clock,
    log: Log,
    metrics: Metrics,
    request: RequestIo,
    peer: PeerIdentity,
});
impl Crypto for Worker {}

impl Worker {
    fn new(world: &Rc<World>, id: usize) -> Worker {
        Worker {
            id,
            world: world.clone(),
            clock: world.clock.clone(),
            log: FakeLog::default(),
            metrics: FakeMetrics::default(),
            request: FakeRequest::default(),
            peer: FakePeer::default(),
        }
    }
    fn counter(&self, name: &str) -> u64 {
        self.metrics.counter(name)
    }
    fn gauge(&self, name: &str) -> u64 {
        self.metrics.gauge(name)
    }
    fn logged(&self, needle: &str) -> bool {
        self.log.contains(needle)
    }
}

impl SharedData for Worker {
    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        match self.world.shared.borrow().get(key) {
            Some((v, cas)) => (Some(v.clone()), Some(*cas)),
            None => (None, None),
        }
    }
    /// Envoy's semantics: a CAS that does not match fails; a missing key is
    /// created whatever the CAS.
    fn shared_set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        let mut map = self.world.shared.borrow_mut();
        if let (Some((_, current)), Some(cas)) = (map.get(key), cas) {
            if *current != cas {
                return false;
            }
        }
        let next = self.world.next_cas.get() + 1;
        self.world.next_cas.set(next);
        map.insert(key.into(), (value.to_vec(), next));
        true
    }
}

impl HttpCalls for Worker {
    fn http_get(
        &mut self,
        cluster: &str,
        authority: &str,
        path: &str,
        timeout_ms: u64,
    ) -> Result<u32, String> {
        if self.world.refuse_dispatch.get() {
            return Err("BadArgument".into());
        }
        let token = self.world.next_token.get() + 1;
        self.world.next_token.set(token);
        self.world.calls.borrow_mut().push(Call {
            worker: self.id,
            token,
            cluster: cluster.into(),
            url: format!("https://{authority}{path}"),
            timeout_ms,
        });
        Ok(token)
    }
}

/// A policy whose `/api` needs a token of the remote provider.
fn policy(remote: serde_json::Value) -> String {
    json!({
        "schema_version": 1,
        "policy_version": "keys@test",
        "trust_domain": "cluster.local",
        "providers": [{
            "name": "idp", "issuer": ISS, "audiences": ["api"], "algorithms": ["EdDSA"],
            "remote_jwks": remote,
        }],
        "roles": [{"name": "user", "jwt": {"provider": "idp"}}],
        "rules": [
            {"name": "api", "roles": ["user"], "paths": ["/api"]},
            {"name": "health", "public": true, "paths": ["/healthz"]},
        ],
    })
    .to_string()
}

fn remote() -> serde_json::Value {
    json!({
        "uri": "https://idp.example.com/keys", "cluster": "idp",
        "refresh_seconds": REFRESH_MS / 1000, "timeout_ms": 2000,
        "max_stale_seconds": STALE_MS / 1000,
        "min_refetch_interval_seconds": REFETCH_MS / 1000,
    })
}

struct Plugin {
    host: Worker,
    loaded: Loaded,
    keys: KeyManager,
}

impl Plugin {
    fn start(world: &Rc<World>, id: usize, cfg: &str) -> Plugin {
        let mut host = Worker::new(world, id);
        let loaded = handler::configure(&mut host, Some(cfg.as_bytes())).unwrap();
        let keys =
            KeyManager::new(&mut host, loaded.policy.remote_sources(), id as u64 + 1).unwrap();
        Plugin { host, loaded, keys }
    }
    fn tick(&mut self) {
        self.keys.tick(&mut self.host);
    }
    fn respond(&mut self, token: u32, status: Option<u16>, body: &str) {
        assert!(self.keys.owns(token));
        let resp = Response {
            status,
            body_size: body.len(),
            body: Some(body.as_bytes().to_vec()),
        };
        self.keys.on_response(&mut self.host, token, resp);
    }
    /// GET `path` with an optional bearer token: the status (200 = allowed).
    fn get(&mut self, path: &str, token: Option<&str>) -> (u16, String) {
        self.host.request.headers = vec![
            (":method".into(), "GET".into()),
            (":path".into(), path.into()),
            (":authority".into(), "api.example.com".into()),
        ];
        if let Some(t) = token {
            self.host
                .request
                .headers
                .push(("authorization".into(), format!("Bearer {t}")));
        }
        self.host.request.sent = None;
        let verdict = handler::on_request_headers(&mut self.host, &self.loaded);
        handler::flush(&mut self.host, &self.loaded);
        match verdict {
            Verdict::Continue => (200, String::new()),
            Verdict::Stop => {
                let (status, headers, _) = self.host.request.sent.clone().unwrap();
                let reason = headers
                    .iter()
                    .find(|(k, _)| k == "x-oam-authz-reason")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                (status, reason)
            }
        }
    }
    fn key(&self) -> String {
        self.loaded.policy.providers[0]
            .remote()
            .unwrap()
            .settings
            .shared_key
            .clone()
    }
}

fn kp(kid: &str) -> Ed25519KeyPair {
    Ed25519KeyPair::generate().with_key_id(kid)
}

fn jwks(keys: &[&Ed25519KeyPair]) -> String {
    let keys: Vec<_> = keys
        .iter()
        .map(|k| ed_jwk(k, k.key_id().as_deref()))
        .collect();
    json!({ "keys": keys }).to_string()
}

fn token(kp: &Ed25519KeyPair, now_ms: u64) -> String {
    let now = now_ms / 1000;
    let mut c = Claims::create(Duration::from_secs(3600))
        .with_issuer(ISS)
        .with_audience("api")
        .with_subject("alice");
    c.issued_at = Some(UnixTimeStamp::from_secs(now));
    c.invalid_before = None;
    c.expires_at = Some(UnixTimeStamp::from_secs(now + 3600));
    kp.sign(c).unwrap()
}

fn only_call(world: &World) -> Call {
    let calls = world.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    calls[0].clone()
}

#[test]
fn before_the_first_key_set_tokens_get_503_and_public_paths_pass() {
    let world = World::new();
    let mut a = Plugin::start(&world, 0, &policy(remote()));
    let k1 = kp("k1");
    let tok = token(&k1, T0);
    assert_eq!(a.get("/api", Some(&tok)), (503, "jwks_unavailable".into()));
    let (_, headers, body) = a.host.request.sent.clone().unwrap();
    assert!(body.contains(r#""error":"unavailable""#), "{body}");
    assert!(headers.iter().all(|(k, _)| k != "www-authenticate"));
    assert!(headers.iter().any(|(k, v)| k == "retry-after" && v == "1"));
    assert_eq!(a.host.counter("oam_authz.denied.jwks_unavailable"), 1);
    // Requests needing no token are unaffected; a missing token is still 401.
    assert_eq!(a.get("/healthz", None).0, 200);
    assert_eq!(a.get("/api", None), (401, "token_missing".into()));

    a.tick();
    let call = only_call(&world);
    assert_eq!(
        (call.cluster.as_str(), call.url.as_str(), call.timeout_ms),
        ("idp", "https://idp.example.com/keys", 2000)
    );
    world.advance(30);
    a.respond(call.token, Some(200), &jwks(&[&k1]));
    assert_eq!(a.get("/api", Some(&tok)).0, 200);
    assert_eq!(a.host.counter("oam_authz.jwks.idp.fetch_success"), 1);
    assert_eq!(a.host.gauge("oam_authz.jwks.idp.keys_loaded"), 1);
    assert!(a
        .host
        .logged("fetched JWKS version 1 from https://idp.example.com/keys: 1 usable keys"));
}

#[test]
fn one_fetch_serves_every_worker_and_a_reload() {
    let world = World::new();
    let cfg = policy(remote());
    let mut a = Plugin::start(&world, 0, &cfg);
    let mut b = Plugin::start(&world, 1, &cfg);
    // Both tick at the same instant: only one takes the lease.
    a.tick();
    b.tick();
    let call = only_call(&world);
    assert_eq!(call.worker, 0);
    let k1 = kp("k1");
    a.respond(call.token, Some(200), &jwks(&[&k1]));
    let tok = token(&k1, T0);
    // B has no keys until its next tick (at most 250 ms later)...
    assert_eq!(b.get("/api", Some(&tok)).0, 503);
    world.advance(TICK_MS);
    b.tick();
    assert_eq!(b.get("/api", Some(&tok)).0, 200);
    assert!(b.host.logged("key set version 1 in use (1 keys)"));
    assert_eq!(b.host.counter("oam_authz.jwks.idp.fetch_success"), 0);
    // ...and a reloaded policy (a fresh root context) has them at once.
    let mut c = Plugin::start(&world, 2, &cfg);
    assert_eq!(c.get("/api", Some(&tok)).0, 200);
    // Ticks until the refresh cause no more calls, in any worker.
    // (The first refresh is due in the second half of the interval.)
    for _ in 0..(REFRESH_MS / 2 / TICK_MS) {
        world.advance(TICK_MS);
        a.tick();
        b.tick();
        c.tick();
    }
    assert_eq!(world.calls().len(), 1);
}

#[test]
fn rotation_is_picked_up_at_the_refresh() {
    let world = World::new();
    let mut a = Plugin::start(&world, 0, &policy(remote()));
    let (k1, k2) = (kp("k1"), kp("k2"));
    a.tick();
    a.respond(only_call(&world).token, Some(200), &jwks(&[&k1]));
    let gen1 = a.loaded.policy.providers[0].key_generation();
    let mut n = 0;
    loop {
        world.advance(TICK_MS);
        a.tick();
        if world.calls().len() == 2 {
            break;
        }
        n += 1;
        assert!(
            n * TICK_MS <= REFRESH_MS,
            "no refresh within refresh_seconds"
        );
    }
    assert!(
        n * TICK_MS >= REFRESH_MS / 2 - TICK_MS,
        "refreshed early: {n}"
    );
    let call = world.calls()[1].clone();
    a.respond(call.token, Some(200), &jwks(&[&k2]));
    assert_eq!(a.get("/api", Some(&token(&k2, world.clock.get()))).0, 200);
    // k1 is gone from the set: its tokens fail, also if they were cached.
    assert_eq!(
        a.get("/api", Some(&token(&k1, world.clock.get()))),
        (401, "token_unknown_kid".into())
    );
    assert_ne!(a.loaded.policy.providers[0].key_generation(), gen1);
    assert_eq!(world.record(&a.key()).version, 2);
}

#[test]
fn unknown_kid_refetch_is_rate_limited_across_workers() {
    let world = World::new();
    let cfg = policy(remote());
    let mut a = Plugin::start(&world, 0, &cfg);
    let mut b = Plugin::start(&world, 1, &cfg);
    let k1 = kp("k1");
    a.tick();
    a.respond(only_call(&world).token, Some(200), &jwks(&[&k1]));
    b.tick();
    // The IdP rotates in k2; tokens signed with it arrive right away.
    let k2 = kp("k2");
    world.advance(1_000);
    let tok2 = token(&k2, world.clock.get());
    assert_eq!(
        b.get("/api", Some(&tok2)),
        (401, "token_unknown_kid".into())
    );
    // A flood of random kids on both workers for 60 s.
    let mut accepted_at = None;
    let start = world.clock.get();
    while world.clock.get() < start + 60_000 {
        for p in [&mut a, &mut b] {
            let junk = token(
                &kp(&format!("rnd-{}", world.clock.get())),
                world.clock.get(),
            );
            assert_eq!(p.get("/api", Some(&junk)).0, 401);
            p.tick();
        }
        // The IdP answers every call at once, now with k1 and k2.
        for call in world.calls() {
            for p in [&mut a, &mut b] {
                if p.keys.owns(call.token) {
                    p.respond(call.token, Some(200), &jwks(&[&k1, &k2]));
                }
            }
        }
        if accepted_at.is_none() && b.get("/api", Some(&tok2)).0 == 200 {
            accepted_at = Some(world.clock.get() - start);
        }
        world.advance(TICK_MS);
    }
    let calls = world.calls().len() - 1;
    // One refetch per min_refetch_interval at most, from both workers
    // together (60 s / 10 s), plus the refresh at 54..60 s.
    assert!(
        calls <= 60_000 / REFETCH_MS as usize + 1,
        "{calls} IdP calls"
    );
    assert!(calls >= 5, "{calls} IdP calls: the refetch never ran");
    // The first refetch waits out the interval since the initial fetch (1 s ago).
    let took = accepted_at.unwrap();
    assert!(took <= REFETCH_MS + TICK_MS, "k2 accepted after {took} ms");
    assert!(
        a.host.counter("oam_authz.jwks.idp.unknown_kid_refetch")
            + b.host.counter("oam_authz.jwks.idp.unknown_kid_refetch")
            >= 5
    );
}

#[test]
fn failures_keep_the_last_good_keys_until_the_staleness_bound() {
    let world = World::new();
    let mut a = Plugin::start(&world, 0, &policy(remote()));
    let k1 = kp("k1");
    a.tick();
    a.respond(only_call(&world).token, Some(200), &jwks(&[&k1]));
    let fetched = world.clock.get();
    let version = world.record(&a.key()).version;
    let bad: [(Option<u16>, String); 7] = [
        (Some(500), "oops".into()),
        (None, String::new()),
        (Some(200), "<html>not json</html>".into()),
        (Some(200), r#"{"keys": "nope"}"#.into()),
        (Some(200), r#"{"keys": []}"#.into()),
        // Only unusable keys (wrong family, encryption key): nothing to verify with.
        (Some(200), r#"{"keys": [{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"OKP","crv":"Ed25519","use":"enc","x":"AA"}]}"#.into()),
        (Some(200), format!(r#"{{"keys": [{}, {}]}}"#, ed_jwk(&k1, Some("d")), ed_jwk(&k1, Some("d")))),
    ];
    let mut i = 0;
    let mut failures = 0;
    while world.clock.get() <= fetched + STALE_MS {
        assert_eq!(a.get("/api", Some(&token(&k1, world.clock.get()))).0, 200);
        world.advance(TICK_MS);
        a.tick();
        if let Some(call) = world.calls().iter().find(|c| a.keys.owns(c.token)) {
            let (status, body) = &bad[i % bad.len()];
            i += 1;
            a.respond(call.token, *status, body);
            failures += 1;
            let rec = world.record(&a.key());
            assert_eq!((rec.version, rec.fetched_at_ms), (version, fetched));
        }
    }
    assert!(failures >= bad.len(), "{failures}");
    assert_eq!(
        a.host.counter("oam_authz.jwks.idp.fetch_failure"),
        failures as u64
    );
    // Past the bound (at the next tick): 503, and a warning says why.
    world.advance(TICK_MS);
    a.tick();
    assert_eq!(
        a.get("/api", Some(&token(&k1, world.clock.get()))),
        (503, "jwks_unavailable".into())
    );
    assert!(a.host.logged("over max_stale_seconds (300)"));
    assert_eq!(a.host.gauge("oam_authz.jwks.idp.keys_loaded"), 0);
    assert!(a.host.gauge("oam_authz.jwks.idp.key_set_age_seconds") >= 300);
    // The IdP comes back with the same keys: in use again (same version).
    loop {
        world.advance(TICK_MS);
        a.tick();
        if let Some(call) = world.calls().iter().find(|c| a.keys.owns(c.token)) {
            a.respond(call.token, Some(200), &jwks(&[&k1]));
            break;
        }
    }
    assert_eq!(a.get("/api", Some(&token(&k1, world.clock.get()))).0, 200);
    assert_eq!(world.record(&a.key()).version, version);
}

#[test]
fn backoff_spaces_out_retries() {
    let world = World::new();
    let mut a = Plugin::start(&world, 0, &policy(remote()));
    let mut starts = Vec::new();
    while world.clock.get() < T0 + 120_000 {
        a.tick();
        if let Some(call) = world.calls().iter().find(|c| a.keys.owns(c.token)) {
            starts.push(world.clock.get() - T0);
            a.respond(call.token, Some(503), "down");
        }
        world.advance(TICK_MS);
    }
    let gaps: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // 1 s, 2 s, 4 s, ... (each jittered into [d/2, d], rounded up to a tick),
    // capped at min(refresh, 60 s).
    for (n, gap) in gaps.iter().enumerate() {
        let d = 1_000u64 << n.min(6);
        let d = d.min(60_000);
        assert!(
            *gap >= d / 2 && *gap <= d + TICK_MS,
            "gap {n}: {gap} (d={d}) {gaps:?}"
        );
    }
    assert!(gaps.len() >= 6 && gaps.len() <= 9, "{gaps:?}");
    assert!(a.host.logged(
        "JWKS fetch failed (1 in a row): https://idp.example.com/keys: HTTP 503; no usable key set"
    ));
}

#[test]
fn dispatch_errors_and_lost_callbacks_count_as_failures() {
    let world = World::new();
    let mut a = Plugin::start(&world, 0, &policy(remote()));
    world.refuse_dispatch.set(true);
    a.tick();
    assert_eq!(a.host.counter("oam_authz.jwks.idp.fetch_failure"), 1);
    assert!(a
        .host
        .logged("cannot call https://idp.example.com/keys through cluster 'idp': BadArgument"));
    world.refuse_dispatch.set(false);
    // A call whose answer never comes: the watchdog fails it after the
    // timeout plus a margin, and the next attempt follows the backoff.
    world.advance(2_000);
    a.tick();
    assert_eq!(world.calls().len(), 1);
    world.advance(2_000 + WATCHDOG_MARGIN_MS + 1);
    a.tick();
    assert_eq!(a.host.counter("oam_authz.jwks.idp.fetch_failure"), 2);
    assert!(a
        .host
        .logged("no answer from https://idp.example.com/keys within the timeout"));
}

#[test]
fn a_vanished_lease_holder_is_replaced() {
    let world = World::new();
    let cfg = policy(remote());
    let mut a = Plugin::start(&world, 0, &cfg);
    let mut b = Plugin::start(&world, 1, &cfg);
    a.tick();
    let _lost = only_call(&world);
    drop(a); // its VM went away with a hot reload
    b.tick();
    assert_eq!(world.calls().len(), 1);
    // Lease: timeout 2 s + 2 s margin.
    world.advance(4_000);
    b.tick();
    let calls = world.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].worker, 1);
    b.respond(calls[1].token, Some(200), &jwks(&[&kp("k1")]));
    assert_eq!(b.host.counter("oam_authz.jwks.idp.fetch_success"), 1);
}

#[test]
fn discovery_finds_the_jwks_and_forgets_it_on_failure() {
    let world = World::new();
    let mut r = remote();
    r["uri"] = json!(null);
    r.as_object_mut().unwrap().remove("uri");
    r["discovery"] = json!(true);
    let mut a = Plugin::start(&world, 0, &policy(r));
    a.tick();
    let d = only_call(&world);
    assert_eq!(
        d.url,
        "https://idp.example.com/.well-known/openid-configuration"
    );
    let doc = json!({"issuer": ISS, "jwks_uri": "https://keys.example.com/v1/keys"}).to_string();
    a.respond(d.token, Some(200), &doc);
    let calls = world.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].url, "https://keys.example.com/v1/keys");
    let k1 = kp("k1");
    a.respond(calls[1].token, Some(200), &jwks(&[&k1]));
    assert_eq!(a.get("/api", Some(&token(&k1, world.clock.get()))).0, 200);
    let rec = world.record(&a.key());
    assert_eq!(
        rec.jwks_uri.as_deref(),
        Some("https://keys.example.com/v1/keys")
    );
    // The refresh goes straight to the known jwks_uri.
    world.advance(REFRESH_MS);
    a.tick();
    let calls = world.calls();
    assert_eq!(calls[2].url, "https://keys.example.com/v1/keys");
    a.respond(calls[2].token, Some(404), "moved");
    assert_eq!(world.record(&a.key()).jwks_uri, None);
    // The retry rediscovers.
    world.advance(1_000);
    a.tick();
    assert_eq!(
        world.calls()[3].url,
        "https://idp.example.com/.well-known/openid-configuration"
    );
    // A document for another issuer is refused.
    let evil =
        json!({"issuer": "https://evil.example.com", "jwks_uri": "https://evil/keys"}).to_string();
    a.respond(world.calls()[3].token, Some(200), &evil);
    assert_eq!(world.calls().len(), 4);
    assert!(a.host.logged("is for issuer \"https://evil.example.com\""));
    assert_eq!(a.get("/api", Some(&token(&k1, world.clock.get()))).0, 200);
}

#[test]
fn skipped_keys_are_logged_and_oversized_bodies_refused() {
    let world = World::new();
    let mut a = Plugin::start(&world, 0, &policy(remote()));
    let k1 = kp("k1");
    let mut enc = ed_jwk(&k1, Some("enc"));
    enc["use"] = json!("enc");
    let mut broken = ed_jwk(&k1, Some("broken"));
    broken["x"] = json!("AAAA");
    // 32 bytes, but not the encoding of a curve point (y = 2).
    let mut off_curve = ed_jwk(&k1, Some("off-curve"));
    off_curve["x"] = json!("AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let body = json!({"keys": [enc, broken, {"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"}, off_curve, ed_jwk(&k1, Some("k1"))]}).to_string();
    a.tick();
    a.respond(only_call(&world).token, Some(200), &body);
    assert!(a.host.logged("1 usable keys, 4 skipped"));
    assert!(a
        .host
        .logged("jwks.keys[3]: skipped: unusable: Ed25519 key rejected"));
    assert_eq!(a.host.counter("oam_authz.jwks.idp.keys_skipped"), 4);
    assert!(a.host.logged("jwks.keys[0]: skipped: \"use\" is \"enc\""));
    assert!(a
        .host
        .logged("jwks.keys[1]: skipped: unusable: .x must decode to 32 bytes"));
    assert_eq!(a.get("/api", Some(&token(&k1, world.clock.get()))).0, 200);

    world.advance(REFRESH_MS);
    a.tick();
    let call = world.calls()[1].clone();
    let resp = Response {
        status: Some(200),
        body_size: MAX_JWKS_BYTES + 1,
        body: None,
    };
    a.keys.on_response(&mut a.host, call.token, resp);
    assert!(a.host.logged("over the 262144-byte cap"));
    assert_eq!(a.get("/api", Some(&token(&k1, world.clock.get()))).0, 200);
    // The same set fetched again is not counted again.
    let before = world.calls().len();
    world.advance(REFRESH_MS);
    a.tick();
    assert_eq!(world.calls().len(), before + 1);
    let again = world.calls().last().unwrap().token;
    a.respond(again, Some(200), &body);
    assert_eq!(a.host.counter("oam_authz.jwks.idp.fetch_success"), 2);
    assert_eq!(a.host.counter("oam_authz.jwks.idp.keys_skipped"), 4);
}

#[test]
fn a_corrupt_shared_record_is_rewritten() {
    let world = World::new();
    let mut a = Plugin::start(&world, 0, &policy(remote()));
    let key = a.key();
    world
        .shared
        .borrow_mut()
        .insert(key.clone(), (b"garbage".to_vec(), 99));
    a.tick();
    assert_eq!(world.calls().len(), 1);
    assert!(Record::decode(&world.shared.borrow()[&key].0).is_some());
}

#[test]
fn no_manager_without_remote_providers() {
    let world = World::new();
    let mut host = Worker::new(&world, 0);
    let cfg = json!({"schema_version": 1, "trust_domain": "cluster.local",
        "rules": [{"name": "h", "public": true, "paths": ["/healthz"]}]})
    .to_string();
    let loaded = handler::configure(&mut host, Some(cfg.as_bytes())).unwrap();
    assert!(KeyManager::new(&mut host, loaded.policy.remote_sources(), 1).is_none());
}

#[test]
fn policy_errors_for_key_sources() {
    let world = World::new();
    let mut host = Worker::new(&world, 0);
    let mut both = serde_json::from_str::<serde_json::Value>(&policy(remote())).unwrap();
    both["providers"][0]["jwks"] = json!({"keys": [ed_jwk(&kp("k"), Some("k"))]});
    let err = handler::configure(&mut host, Some(both.to_string().as_bytes())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "providers[0].remote_jwks: set either jwks (inline keys) or remote_jwks (keys fetched at run time), not both"
    );
    let mut typo = serde_json::from_str::<serde_json::Value>(&policy(remote())).unwrap();
    typo["providers"][0]["remote_jwks"]["refresh"] = json!(5);
    let err = handler::configure(&mut host, Some(typo.to_string().as_bytes())).unwrap_err();
    assert!(err.to_string().contains("unknown field `refresh`"), "{err}");
}

#[test]
fn a_set_without_keys_for_our_algorithms_withdraws_the_old_keys() {
    let world = World::new();
    let mut a = Plugin::start(&world, 0, &policy(remote()));
    let k1 = kp("k1");
    a.tick();
    a.respond(only_call(&world).token, Some(200), &jwks(&[&k1]));
    assert_eq!(a.get("/api", Some(&token(&k1, world.clock.get()))).0, 200);
    // The IdP moves to ES256 only; this provider allows only EdDSA. The set
    // is well-formed (shared as version 2), but k1 is no longer published.
    let ec = ES256KeyPair::generate();
    let es_only =
        json!({"keys": [crate::jwt::jwks::tests::es256_jwk(&ec, Some("e1"))]}).to_string();
    world.advance(REFRESH_MS);
    a.tick();
    a.respond(world.calls()[1].token, Some(200), &es_only);
    assert_eq!(world.record(&a.key()).version, 2);
    assert_eq!(
        a.get("/api", Some(&token(&k1, world.clock.get()))),
        (503, "jwks_unavailable".into())
    );
    assert!(a
        .host
        .logged("JWKS version 2 has no key this provider can use"));
    assert_eq!(a.host.counter("oam_authz.jwks.idp.fetch_success"), 2);
    // Logged once, not on every tick.
    world.advance(TICK_MS);
    a.tick();
    let n = a
        .host
        .log
        .lines
        .borrow()
        .iter()
        .filter(|(_, l)| l.contains("has no key this provider can use"))
        .count();
    assert_eq!(n, 1);
}
