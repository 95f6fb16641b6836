//! Per root context: keeps each remote provider's key set current.
//!
//! On every tick, for each remote source: read the shared record, install
//! its key set if the version changed (parsing the JWKS once per version per
//! worker), withhold it once older than `max_stale_seconds`, and, if the
//! schedule says a fetch is due and the lease can be taken, start one. The
//! answer (`on_response`) is validated here, in the fetching worker, before
//! it is written back: a malformed response never replaces a good key set.
//!
//! Everything goes through [`KeyHost`], so several "workers" sharing one
//! fake store are tested natively below.

use super::discovery;
use super::live::LiveKeys;
use super::record::Record;
use super::schedule::{self, Outcome, Rng, Why};
use super::url::{self, HttpUrl};
use super::RemoteKeys;
use super::{RemoteSettings, Target, MAX_JWKS_BYTES};
use crate::host::{Clock, HttpCalls, Level, Log, Metrics, SharedData, METRIC_PREFIX};
use crate::json::read as json;
use crate::jwt::jwks::parse_jwks_remote;
use crate::jwt::{Alg, KeySet};
use std::sync::Arc;

/// What the key manager needs from the host. The answer to
/// [`HttpCalls::http_get`] comes back through [`KeyManager::on_response`].
pub trait KeyHost: SharedData + HttpCalls + Metrics + Log + Clock {}

impl<T: SharedData + HttpCalls + Metrics + Log + Clock> KeyHost for T {}

/// A provider whose keys are fetched, as the key manager needs to know it.
#[derive(Debug, Clone, Copy)]
pub struct SourceSpec<'a> {
    /// Index of the provider in the policy (for log lines).
    pub index: usize,
    pub name: &'a str,
    pub issuer: &'a str,
    pub algorithms: &'a [Alg],
    pub remote: &'a RemoteKeys,
}

/// An HTTP answer as the host saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `None`: no response (timeout, reset, connection refused).
    pub status: Option<u16>,
    /// The body size Envoy reported (may exceed what was read).
    pub body_size: usize,
    /// The body, read only when `body_size` is within the cap.
    pub body: Option<Vec<u8>>,
}

/// Envoy answers a call it could not complete within the timeout itself; this
/// is only a backstop if that answer never arrives.
const WATCHDOG_MARGIN_MS: u64 = 5_000;
/// Attempts at writing a result back under concurrent updates.
const CAS_RETRIES: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Discovery,
    Jwks { discovered: Option<String> },
}

#[derive(Debug)]
struct Inflight {
    token: u32,
    stage: Stage,
    why: Why,
    url: HttpUrl,
    deadline_ms: u64,
}

#[derive(Debug, Default)]
struct SourceMetrics {
    fetch_success: Option<u32>,
    fetch_failure: Option<u32>,
    unknown_kid_refetch: Option<u32>,
    keys_skipped: Option<u32>,
    keys_loaded: Option<u32>,
    key_set_age: Option<u32>,
}

#[derive(Debug)]
struct Source {
    index: usize,
    name: String,
    issuer: String,
    algorithms: Vec<Alg>,
    settings: RemoteSettings,
    live: Arc<LiveKeys>,
    /// The last shared version parsed here, and its keys.
    parsed: Option<(u64, Arc<KeySet>)>,
    /// A shared version whose JWKS did not parse here (logged once).
    unusable_version: Option<u64>,
    /// The version installed in `live` (`None`: no keys installed).
    installed: Option<u64>,
    inflight: Option<Inflight>,
    metrics: SourceMetrics,
}

impl Source {
    fn label(&self) -> String {
        format!("oam-authz: providers[{}] '{}'", self.index, self.name)
    }
}

/// One per root context with at least one `remote_jwks` provider.
#[derive(Debug)]
pub struct KeyManager {
    me: u64,
    rng: Rng,
    sources: Vec<Source>,
}

impl KeyManager {
    /// `None` when no provider has a remote key source. Installs whatever
    /// key sets the shared records already hold (a hot reload starts with
    /// keys) but writes nothing: this also runs in Envoy's throw-away
    /// configuration-check VM.
    pub fn new<'a, H: KeyHost>(
        host: &mut H,
        specs: impl IntoIterator<Item = SourceSpec<'a>>,
        seed: u64,
    ) -> Option<KeyManager> {
        let mut rng = Rng::new(seed);
        let me = rng.id();
        let mut sources = Vec::new();
        for spec in specs {
            let (index, remote) = (spec.index, spec.remote);
            let name = spec.name.to_string();
            let metric = |what: &str| format!("{METRIC_PREFIX}jwks.{name}.{what}");
            let metrics = SourceMetrics {
                fetch_success: host.define_counter(&metric("fetch_success")),
                fetch_failure: host.define_counter(&metric("fetch_failure")),
                unknown_kid_refetch: host.define_counter(&metric("unknown_kid_refetch")),
                keys_skipped: host.define_counter(&metric("keys_skipped")),
                keys_loaded: host.define_gauge(&metric("keys_loaded")),
                key_set_age: host.define_gauge(&metric("key_set_age_seconds")),
            };
            sources.push(Source {
                index,
                name,
                issuer: spec.issuer.to_string(),
                algorithms: spec.algorithms.to_vec(),
                settings: remote.settings.clone(),
                live: remote.live.clone(),
                parsed: None,
                unusable_version: None,
                installed: None,
                inflight: None,
                metrics,
            });
        }
        if sources.is_empty() {
            return None;
        }
        let mut m = KeyManager { me, rng, sources };
        let now = host.now_millis();
        for s in &mut m.sources {
            if let (Some(bytes), _) = host.shared_get(&s.settings.shared_key) {
                if let Some(rec) = Record::decode(&bytes) {
                    sync(host, s, &rec, now);
                }
            }
        }
        Some(m)
    }

    /// Periodic work: install new key sets, enforce staleness, start fetches.
    pub fn tick<H: KeyHost>(&mut self, host: &mut H) {
        let now = host.now_millis();
        let me = self.me;
        for i in 0..self.sources.len() {
            let Some(s) = self.sources.get_mut(i) else {
                continue;
            };
            let Some((rec, cas)) = read_or_init(host, &s.settings.shared_key) else {
                continue;
            };
            sync(host, s, &rec, now);
            if let Some(f) = &s.inflight {
                if now <= f.deadline_ms {
                    continue;
                }
                let error = format!("no answer from {} within the timeout", f.url);
                s.inflight = None;
                self.finish(
                    host,
                    i,
                    now,
                    Outcome::Failed {
                        error,
                        rediscover: false,
                    },
                    None,
                );
                continue;
            }
            let Some(s) = self.sources.get_mut(i) else {
                continue;
            };
            if let Some(since) = s.live.kid_wanted_since_ms() {
                if schedule::kid_covered(&rec, since) {
                    s.live.clear_kid_miss();
                }
            }
            let wanted = s.live.kid_wanted_since_ms();
            let Some((leased, why)) = schedule::plan(&rec, now, me, wanted, &s.settings.timing)
            else {
                continue;
            };
            if !host.shared_set(&s.settings.shared_key, &leased.encode(), cas) {
                continue; // another worker moved first
            }
            if why == Why::UnknownKid {
                if let Some(id) = s.metrics.unknown_kid_refetch {
                    host.add_counter(id, 1);
                }
                host.log(
                    Level::Info,
                    &format!(
                        "{}: a token named an unknown kid; refetching the JWKS",
                        s.label()
                    ),
                );
            }
            let (stage, url) = match &s.settings.target {
                Target::Jwks(u) => (Stage::Jwks { discovered: None }, u.clone()),
                Target::Discovery(d) => match leased.jwks_uri.as_deref().map(url::parse) {
                    Some(Ok(u)) => (Stage::Jwks { discovered: None }, u),
                    _ => (Stage::Discovery, d.clone()),
                },
            };
            self.start(host, i, stage, url, why, now);
        }
    }

    fn start<H: KeyHost>(
        &mut self,
        host: &mut H,
        i: usize,
        stage: Stage,
        url: HttpUrl,
        why: Why,
        now: u64,
    ) {
        let Some(s) = self.sources.get_mut(i) else {
            return;
        };
        let timeout = s.settings.timing.timeout_ms;
        match host.http_get(&s.settings.cluster, &url.authority, &url.path, timeout) {
            Ok(token) => {
                s.inflight = Some(Inflight {
                    token,
                    stage,
                    why,
                    url,
                    deadline_ms: now.saturating_add(timeout + WATCHDOG_MARGIN_MS),
                });
            }
            Err(e) => {
                let error = format!(
                    "cannot call {url} through cluster '{}': {e}",
                    s.settings.cluster
                );
                self.finish(
                    host,
                    i,
                    now,
                    Outcome::Failed {
                        error,
                        rediscover: false,
                    },
                    None,
                );
            }
        }
    }

    /// Is `token` one of ours? (The root context may have other callouts.)
    pub fn owns(&self, token: u32) -> bool {
        self.sources
            .iter()
            .any(|s| s.inflight.as_ref().is_some_and(|f| f.token == token))
    }

    /// The answer to a call started by [`KeyHost::http_get`].
    pub fn on_response<H: KeyHost>(&mut self, host: &mut H, token: u32, resp: Response) {
        let Some(i) = self
            .sources
            .iter()
            .position(|s| s.inflight.as_ref().is_some_and(|f| f.token == token))
        else {
            return;
        };
        let now = host.now_millis();
        let Some(s) = self.sources.get_mut(i) else {
            return;
        };
        let Some(f) = s.inflight.take() else { return };
        let body = match check_response(&f.url, &resp) {
            Ok(body) => body,
            Err(error) => {
                let rediscover = matches!(s.settings.target, Target::Discovery(_));
                self.finish(host, i, now, Outcome::Failed { error, rediscover }, None);
                return;
            }
        };
        match f.stage {
            Stage::Discovery => match discovery::jwks_uri(body, &s.issuer) {
                Ok(jwks) => {
                    let discovered = Some(jwks.to_string());
                    self.start(host, i, Stage::Jwks { discovered }, jwks, f.why, now);
                }
                Err(error) => {
                    let error = format!("{}: {error}", f.url);
                    self.finish(
                        host,
                        i,
                        now,
                        Outcome::Failed {
                            error,
                            rediscover: true,
                        },
                        None,
                    );
                }
            },
            // Accepted if usable with ANY supported algorithm: the record is
            // shared by every policy naming this source, whatever algorithms
            // each allows; each worker then parses it with its own.
            Stage::Jwks { discovered } => match validate_jwks(body, &Alg::ALL) {
                Ok((text, set)) => {
                    for w in set.warning_lines() {
                        host.log(Level::Warn, &format!("{}: {}: {w}", s.label(), f.url));
                    }
                    let outcome = Outcome::Keys {
                        body: text,
                        jwks_uri: discovered,
                    };
                    self.finish(host, i, now, outcome, Some(set.skipped().len()));
                }
                Err(error) => {
                    let error = format!("{}: malformed JWKS: {error}", f.url);
                    let rediscover = matches!(s.settings.target, Target::Discovery(_));
                    self.finish(host, i, now, Outcome::Failed { error, rediscover }, None);
                }
            },
        }
    }

    /// Write an attempt's outcome back to the shared record (retrying on
    /// concurrent updates), count it, log it and install the result here.
    fn finish<H: KeyHost>(
        &mut self,
        host: &mut H,
        i: usize,
        now: u64,
        outcome: Outcome,
        skipped: Option<usize>,
    ) {
        let me = self.me;
        let Some(s) = self.sources.get_mut(i) else {
            return;
        };
        let key = s.settings.shared_key.clone();
        let mut written: Option<(Record, Record)> = None;
        for _ in 0..CAS_RETRIES {
            let (bytes, cas) = host.shared_get(&key);
            let before = bytes
                .as_deref()
                .and_then(Record::decode)
                .unwrap_or_default();
            let after = schedule::complete(
                &before,
                now,
                me,
                &outcome,
                &s.settings.timing,
                &mut self.rng,
            );
            if host.shared_set(&key, &after.encode(), cas) {
                written = Some((before, after));
                break;
            }
        }
        let Some((before, after)) = written else {
            host.log(
                Level::Warn,
                &format!(
                    "{}: could not record the JWKS fetch result in shared data",
                    s.label()
                ),
            );
            return;
        };
        sync(host, s, &after, now);
        report(host, s, &outcome, &before, &after, now, skipped);
    }
}

/// Count and log the outcome of an attempt, as written to the record.
fn report<H: KeyHost>(
    host: &mut H,
    s: &Source,
    outcome: &Outcome,
    before: &Record,
    after: &Record,
    now: u64,
    skipped: Option<usize>,
) {
    match outcome {
        Outcome::Keys { .. } => {
            if let Some(id) = s.metrics.fetch_success {
                host.add_counter(id, 1);
            }
            if after.version != before.version {
                // Once per new version: one bad key at the IdP is skipped,
                // logged (by the caller) and counted, never an outage.
                if let (Some(id), Some(n)) = (s.metrics.keys_skipped, skipped) {
                    host.add_counter(id, n as u64);
                }
                let usable = match &s.parsed {
                    Some((v, set)) if *v == after.version => set.len(),
                    _ => 0,
                };
                host.log(
                    Level::Info,
                    &format!(
                        "{}: fetched JWKS version {} from {}: {usable} usable keys, {} skipped",
                        s.label(),
                        after.version,
                        s.settings.url(),
                        skipped.unwrap_or(0)
                    ),
                );
            }
        }
        Outcome::Failed { error, .. } => {
            if let Some(id) = s.metrics.fetch_failure {
                host.add_counter(id, 1);
            }
            let keys = if schedule::fresh(after.fetched_at_ms, now, &s.settings.timing) {
                format!(
                    "keeping the last good key set (fetched {} s ago)",
                    now.saturating_sub(after.fetched_at_ms) / 1000
                )
            } else {
                "no usable key set: its tokens get 503 jwks_unavailable".to_string()
            };
            host.log(
                Level::Warn,
                &format!(
                    "{}: JWKS fetch failed ({} in a row): {error}; {keys}; next attempt in {} ms",
                    s.label(),
                    after.failures,
                    after.next_attempt_ms.saturating_sub(now)
                ),
            );
        }
    }
}

/// Read a source's record; create an empty one if absent or undecodable.
fn read_or_init<H: KeyHost>(host: &mut H, key: &str) -> Option<(Record, Option<u32>)> {
    let (bytes, cas) = host.shared_get(key);
    if let Some(rec) = bytes.as_deref().and_then(Record::decode) {
        return Some((rec, cas));
    }
    // Without CAS two workers may both create it: harmless, both write the
    // same empty record. The lease is only ever taken with CAS.
    if !host.shared_set(key, &Record::default().encode(), cas) {
        return None;
    }
    let (bytes, cas) = host.shared_get(key);
    bytes
        .as_deref()
        .and_then(Record::decode)
        .map(|rec| (rec, cas))
}

/// Bring this worker's key set in line with the shared record.
fn sync<H: KeyHost>(host: &mut H, s: &mut Source, rec: &Record, now: u64) {
    let parsed_version = s.parsed.as_ref().map(|(v, _)| *v);
    if !rec.body.is_empty()
        && parsed_version != Some(rec.version)
        && s.unusable_version != Some(rec.version)
    {
        match validate_jwks(rec.body.as_bytes(), &s.algorithms) {
            Ok((_, set)) => s.parsed = Some((rec.version, Arc::new(set))),
            Err(e) => {
                // A well-formed set (it was validated before it was shared)
                // with no key this provider may use: the IdP no longer
                // publishes the keys we trusted, so neither do we.
                s.unusable_version = Some(rec.version);
                s.parsed = None;
                host.log(
                    Level::Warn,
                    &format!(
                        "{}: JWKS version {} has no key this provider can use ({e}); its tokens get 503 jwks_unavailable",
                        s.label(),
                        rec.version
                    ),
                );
            }
        }
    }
    let timing = &s.settings.timing;
    let fresh = schedule::fresh(rec.fetched_at_ms, now, timing);
    let want = match (&s.parsed, fresh) {
        (Some((v, set)), true) => Some((*v, set.clone())),
        _ => None,
    };
    let want_version = want.as_ref().map(|(v, _)| *v);
    if want_version != s.installed {
        match (&want, s.installed) {
            (Some((v, set)), None) => host.log(
                Level::Info,
                &format!("{}: key set version {v} in use ({} keys)", s.label(), set.len()),
            ),
            (Some((v, set)), Some(old)) => host.log(
                Level::Info,
                &format!(
                    "{}: key set version {v} replaces version {old} ({} keys)",
                    s.label(),
                    set.len()
                ),
            ),
            (None, Some(_)) => host.log(
                Level::Warn,
                &format!(
                    "{}: the last good key set is {} s old, over max_stale_seconds ({}): its tokens get 503 jwks_unavailable until a fetch succeeds",
                    s.label(),
                    now.saturating_sub(rec.fetched_at_ms) / 1000,
                    timing.max_stale_ms / 1000
                ),
            ),
            (None, None) => {}
        }
        s.live.replace(want.map(|(_, set)| set));
        s.installed = want_version;
    }
    if let Some(id) = s.metrics.keys_loaded {
        host.set_gauge(id, s.live.current().map_or(0, |k| k.len() as u64));
    }
    if let Some(id) = s.metrics.key_set_age {
        let age = if rec.fetched_at_ms == 0 {
            0
        } else {
            now.saturating_sub(rec.fetched_at_ms) / 1000
        };
        host.set_gauge(id, age);
    }
}

fn check_response<'a>(url: &HttpUrl, resp: &'a Response) -> Result<&'a [u8], String> {
    match resp.status {
        None => {
            return Err(format!(
                "{url}: no response (timeout, reset or connection refused)"
            ))
        }
        Some(200) => {}
        Some(code) => return Err(format!("{url}: HTTP {code}")),
    }
    if resp.body_size > MAX_JWKS_BYTES {
        return Err(format!(
            "{url}: response of {} bytes is over the {MAX_JWKS_BYTES}-byte cap",
            resp.body_size
        ));
    }
    Ok(resp.body.as_deref().unwrap_or_default())
}

/// A JWKS response as text plus its usable keys, or why it is refused.
fn validate_jwks(body: &[u8], algorithms: &[Alg]) -> Result<(String, KeySet), String> {
    if body.len() > MAX_JWKS_BYTES {
        return Err(format!("over the {MAX_JWKS_BYTES}-byte cap"));
    }
    let text = std::str::from_utf8(body).map_err(|_| "not UTF-8 text".to_string())?;
    let doc = json::parse_object(body, 8).map_err(|e| e.to_string())?;
    let set = parse_jwks_remote(&serde_json::Value::Object(doc), algorithms, "jwks")
        .map_err(|e| e.to_string())?;
    Ok((text.to_string(), set))
}

#[cfg(test)]
mod tests;
