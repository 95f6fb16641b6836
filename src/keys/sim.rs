//! The IdP at mesh scale, simulated (docs/operations.md "The IdP at mesh
//! scale"): thousands of sidecars, each with its workers and its shared
//! record, driven through the real schedule (`plan`, `complete`,
//! `kid_covered`) in virtual time, 250 ms ticks. Sidecars already running
//! when the simulation starts have the steady-state phase of their refresh;
//! a rollout starts more during the first minute; the IdP rotates its key
//! (and starts signing with the new one at once, the worst case) and later
//! goes down for ten minutes. The IdP's requests per second, the time each
//! sidecar takes to accept new-key tokens and the recovery are measured.
//!
//! `cargo test --lib keys::sim` runs a small mesh; `make sim-idp` the
//! full one (`full_mesh_figures`, ignored by default), whose figures are in
//! the docs.

use super::record::Record;
use super::schedule::{complete, kid_covered, plan_with_spread, Outcome, Rng, Timing};

const TICK_MS: u64 = 250;
/// Virtual epoch: the schedule treats 0 as "never".
const T0: u64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
pub struct Scenario {
    pub sidecars: usize,
    pub workers: usize,
    /// Share of sidecars already running at the start; the rest start
    /// uniformly during `rollout_ms`.
    pub running_share: f64,
    pub rollout_ms: u64,
    /// When the IdP publishes a new key and signs with it.
    pub rotation_at_ms: u64,
    /// Mean time between token-carrying requests at one sidecar: how soon
    /// it meets the new `kid`.
    pub token_gap_ms: f64,
    /// The IdP refuses every request in `[start, start + len)`.
    pub outage: (u64, u64),
    pub horizon_ms: u64,
    pub fetch_ms: u64,
    /// Apply the schedule's unknown-`kid` spread (false: none).
    pub spread: bool,
    pub timing: Timing,
    pub seed: u64,
}

impl Scenario {
    /// The mesh of the docs: 10,000 sidecars with Istio's 2 workers, the
    /// defaults of `remote_jwks`.
    pub fn mesh(sidecars: usize) -> Scenario {
        Scenario {
            sidecars,
            workers: 2,
            running_share: 0.8,
            rollout_ms: 60_000,
            rotation_at_ms: 20 * 60_000,
            token_gap_ms: 2_000.0,
            outage: (40 * 60_000, 10 * 60_000),
            horizon_ms: 60 * 60_000,
            fetch_ms: 80,
            spread: true,
            timing: Timing {
                refresh_ms: 300_000,
                timeout_ms: 5_000,
                max_stale_ms: 86_400_000,
                min_refetch_ms: 30_000,
                discovery: false,
            },
            seed: 13,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub peak_rps: u64,
    pub mean_rps: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// IdP requests per second over the whole run.
    pub total: Window,
    /// Steady refresh (after the rollout, before the rotation).
    pub steady: Window,
    /// The rollout's first fetches.
    pub rollout: Window,
    /// The two minutes after the rotation.
    pub rotation: Window,
    /// During the outage (failed requests).
    pub outage: Window,
    /// The two minutes after the IdP is back.
    pub recovery: Window,
    /// Time from the rotation until a sidecar accepts new-key tokens.
    pub accept_p50_ms: u64,
    pub accept_p99_ms: u64,
    pub accept_max_ms: u64,
    /// Time from the end of the outage until every sidecar has fetched.
    pub recovered_all_ms: u64,
    /// Sidecars whose key set went stale (withdrawn) at any moment.
    pub stale: usize,
    pub requests: u64,
}

struct Worker {
    me: u64,
    /// The oldest unknown-`kid` miss not yet covered by a fetch.
    kid_since: Option<u64>,
}

struct Sidecar {
    start: u64,
    rec: Record,
    workers: Vec<Worker>,
    /// (completes at, worker index) of the fetch in flight.
    inflight: Option<(u64, usize)>,
    rng: Rng,
    /// When it first sees a token signed with the new key.
    first_new_token: u64,
    accepted_at: Option<u64>,
    recovered_at: Option<u64>,
}

fn exp_sample(rng: &mut Rng, mean: f64) -> u64 {
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (-(1.0 - u).ln() * mean) as u64
}

fn sidecars(s: &Scenario, rng: &mut Rng) -> Vec<Sidecar> {
    (0..s.sidecars)
        .map(|i| {
            let running = (i as f64) < s.sidecars as f64 * s.running_share;
            let mut rec = Record::default();
            let start = if running {
                // Steady state: the last fetch was a uniform time ago.
                let ago = rng.below_or_eq(s.timing.refresh_ms - s.timing.refresh_ms / 20);
                rec.version = 1;
                rec.body = "k1".into();
                rec.fetched_at_ms = T0 - ago;
                rec.last_attempt_ms = rec.fetched_at_ms;
                let jitter = rng.below_or_eq(s.timing.refresh_ms / 10);
                rec.next_attempt_ms = rec.fetched_at_ms + s.timing.refresh_ms - jitter;
                T0
            } else {
                T0 + rng.below_or_eq(s.rollout_ms)
            };
            let workers = (0..s.workers)
                .map(|_| Worker {
                    me: rng.id(),
                    kid_since: None,
                })
                .collect();
            let first_new_token = T0 + s.rotation_at_ms + exp_sample(rng, s.token_gap_ms);
            Sidecar {
                start,
                rec,
                workers,
                inflight: None,
                rng: Rng::new(rng.next_u64()),
                first_new_token,
                accepted_at: None,
                recovered_at: None,
            }
        })
        .collect()
}

struct Idp<'a> {
    s: &'a Scenario,
    per_second: Vec<u64>,
}

impl Idp<'_> {
    fn up(&self, now: u64) -> bool {
        let (start, len) = self.s.outage;
        !(T0 + start..T0 + start + len).contains(&now)
    }
    fn body(&self, now: u64) -> &'static str {
        if now >= T0 + self.s.rotation_at_ms {
            "k1k2"
        } else {
            "k1"
        }
    }
    fn count(&mut self, now: u64) {
        let sec = ((now - T0) / 1000) as usize;
        if let Some(c) = self.per_second.get_mut(sec) {
            *c += 1;
        }
    }
    fn window(&self, from_ms: u64, len_ms: u64) -> Window {
        let lo = (from_ms / 1000) as usize;
        let hi = (((from_ms + len_ms) / 1000) as usize).min(self.per_second.len());
        let w = self.per_second.get(lo..hi).unwrap_or(&[]);
        Window {
            peak_rps: w.iter().copied().max().unwrap_or(0),
            mean_rps: w.iter().sum::<u64>() as f64 / w.len().max(1) as f64,
        }
    }
}

/// One tick of one sidecar at `now`: finish its fetch, note misses, plan.
fn step(s: &Scenario, c: &mut Sidecar, now: u64, idp: &mut Idp) {
    let t = &s.timing;
    if let Some((done, w)) = c.inflight {
        if now >= done {
            let me = c.workers.get(w).map_or(0, |w| w.me);
            let outcome = if idp.up(done - s.fetch_ms) {
                Outcome::Keys {
                    body: idp.body(done - s.fetch_ms).into(),
                    jwks_uri: None,
                }
            } else {
                Outcome::Failed {
                    error: "HTTP 503".into(),
                    rediscover: false,
                }
            };
            c.rec = complete(&c.rec, done, me, &outcome, t, &mut c.rng);
            c.inflight = None;
            let outage_end = T0 + s.outage.0 + s.outage.1;
            if c.rec.body == "k1k2" && c.accepted_at.is_none() {
                c.accepted_at = Some(done);
            }
            if c.rec.failures == 0 && done >= outage_end && c.recovered_at.is_none() {
                c.recovered_at = Some(done);
            }
        }
    }
    let new_kid = now >= c.first_new_token && c.rec.body != "k1k2";
    for i in 0..c.workers.len() {
        let Some(w) = c.workers.get_mut(i) else {
            continue;
        };
        if new_kid && w.kid_since.is_none() {
            // LiveKeys rounds the miss up to the next whole second.
            w.kid_since = Some((now / 1000 + 1) * 1000);
        }
        if w.kid_since.is_some_and(|since| kid_covered(&c.rec, since)) {
            w.kid_since = None;
        }
        if c.inflight.is_some() {
            continue;
        }
        let spread = if s.spread { t.kid_spread_ms() } else { 0 };
        if let Some((leased, _)) = plan_with_spread(&c.rec, now, w.me, w.kid_since, t, spread) {
            c.rec = leased;
            c.inflight = Some((now + s.fetch_ms, i));
            idp.count(now);
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

/// Run a scenario to its horizon.
pub fn run(s: &Scenario) -> Figures {
    let mut rng = Rng::new(s.seed);
    let mut mesh = sidecars(s, &mut rng);
    let mut idp = Idp {
        s,
        per_second: vec![0; (s.horizon_ms / 1000) as usize],
    };
    let mut stale = vec![false; mesh.len()];
    // Each sidecar ticks on its own phase within the 250 ms period.
    let phases: Vec<u64> = mesh.iter().map(|_| rng.below_or_eq(TICK_MS - 1)).collect();
    let mut base = T0;
    while base < T0 + s.horizon_ms {
        for (i, c) in mesh.iter_mut().enumerate() {
            let now = base + phases.get(i).copied().unwrap_or(0);
            if now < c.start {
                continue;
            }
            step(s, c, now, &mut idp);
            if c.rec.fetched_at_ms != 0 && now - c.rec.fetched_at_ms > s.timing.max_stale_ms {
                if let Some(x) = stale.get_mut(i) {
                    *x = true;
                }
            }
        }
        base += TICK_MS;
    }
    let rotation = T0 + s.rotation_at_ms;
    let mut accept: Vec<u64> = mesh
        .iter()
        .map(|c| {
            c.accepted_at
                .map_or(u64::MAX, |a| a.saturating_sub(rotation))
        })
        .collect();
    accept.sort_unstable();
    let outage_end = s.outage.0 + s.outage.1;
    let recovered_all_ms = mesh
        .iter()
        .map(|c| c.recovered_at.map_or(u64::MAX, |r| r - (T0 + outage_end)))
        .max()
        .unwrap_or(0);
    if std::env::var("SIM_DEBUG").is_ok() {
        let mut top: Vec<(u64, usize)> = idp.per_second.iter().copied().zip(0..).collect();
        top.sort_unstable_by(|a, b| b.cmp(a));
        eprintln!("top seconds: {:?}", top.get(..12));
    }
    let after_rollout = s.rollout_ms + 60_000;
    Figures {
        total: idp.window(0, s.horizon_ms),
        steady: idp.window(after_rollout, s.rotation_at_ms - after_rollout),
        rollout: idp.window(0, s.rollout_ms),
        rotation: idp.window(s.rotation_at_ms, 120_000),
        outage: idp.window(s.outage.0, s.outage.1),
        recovery: idp.window(outage_end, 120_000),
        accept_p50_ms: percentile(&accept, 0.5),
        accept_p99_ms: percentile(&accept, 0.99),
        accept_max_ms: accept.last().copied().unwrap_or(0),
        recovered_all_ms,
        stale: stale.iter().filter(|x| **x).count(),
        requests: idp.per_second.iter().sum(),
    }
}

/// The figures as the table in docs/operations.md.
pub fn table(label: &str, f: &Figures) -> String {
    let w = |x: &Window| format!("{} / {:.1}", x.peak_rps, x.mean_rps);
    format!(
        "| {label} | {} | {} | {} | {} | {} | {} | {:.1} / {:.1} / {:.1} s | {:.0} s |",
        w(&f.total),
        w(&f.rollout),
        w(&f.steady),
        w(&f.rotation),
        w(&f.outage),
        w(&f.recovery),
        f.accept_p50_ms as f64 / 1000.0,
        f.accept_p99_ms as f64 / 1000.0,
        f.accept_max_ms as f64 / 1000.0,
        f.recovered_all_ms as f64 / 1000.0,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HEADER: &str = "| scenario | whole hour (peak / mean rps) | rollout | steady refresh | rotation (2 min) | outage (10 min) | recovery (2 min) | new key accepted (p50 / p99 / slowest) | every sidecar fetched after the outage |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|";

    #[test]
    fn small_mesh_spreads_the_rotation_herd_and_recovers() {
        let mut s = Scenario::mesh(600);
        s.horizon_ms = 56 * 60_000;
        let spread = run(&s);
        let herd = run(&Scenario {
            spread: false,
            ..s.clone()
        });
        println!(
            "{HEADER}\n{}\n{}",
            table("600, spread", &spread),
            table("600, no spread", &herd)
        );
        // Steady state: one fetch per sidecar per ~285 s, no herd.
        let per_refresh = 600.0 / 285.0;
        assert!(
            (spread.steady.mean_rps - per_refresh).abs() < 0.5,
            "{spread:?}"
        );
        // The rotation: without the spread the refetches bunch up within
        // seconds; with it the peak is cut several times, at the price of
        // the spread (15 s at most) in the time to accept new-key tokens. The
        // slowest sidecars are those that fetched just before the rotation:
        // they wait out min_refetch_interval (30 s) either way.
        assert!(
            herd.rotation.peak_rps >= 3 * spread.rotation.peak_rps,
            "{herd:?} vs {spread:?}"
        );
        assert!(
            spread.accept_p50_ms <= herd.accept_p50_ms + 15_000,
            "{spread:?}"
        );
        assert!(
            spread.accept_max_ms <= herd.accept_max_ms + 15_000,
            "{spread:?}"
        );
        assert!(herd.accept_max_ms <= 30_000 + 2_000, "{herd:?}");
        // The outage: backoff up to 60 s, so the IdP sees about one request
        // per sidecar per 45 s, and everyone is back within a minute and a bit.
        assert!(spread.outage.mean_rps < 600.0 / 30.0, "{spread:?}");
        assert!(spread.recovered_all_ms <= 62_000, "{spread:?}");
        assert_eq!(spread.stale, 0);
        // Seeded: the same scenario gives the same figures.
        assert_eq!(run(&s), spread);
    }

    /// `make sim-idp`: the full mesh of docs/operations.md "The IdP at mesh scale".
    #[test]
    #[ignore]
    fn full_mesh_figures() {
        let s = Scenario::mesh(10_000);
        println!("{HEADER}");
        for (label, sc) in [
            ("10,000 sidecars, kid spread (default)", s.clone()),
            (
                "10,000 sidecars, no kid spread",
                Scenario {
                    spread: false,
                    ..s.clone()
                },
            ),
            (
                "10,000 sidecars, tokens every 30 s",
                Scenario {
                    token_gap_ms: 30_000.0,
                    ..s.clone()
                },
            ),
        ] {
            println!("{}", table(label, &run(&sc)));
        }
    }
}
