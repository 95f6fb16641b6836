//! When to fetch a remote JWKS, as pure functions of the shared [`Record`],
//! the time and a seeded PRNG: no host calls, so every branch is unit-tested
//! natively with a fake clock.
//!
//! - **Refresh**: after a success the next fetch is due after
//!   `refresh_seconds`, minus up to 10 % random jitter, so a fleet of proxies
//!   started together does not hit the IdP in lockstep; after the first
//!   fetch and after a recovery, minus up to 50 %, so a cohort that started
//!   or recovered together falls out of step at once. An early fetch (an
//!   unknown `kid`) keeps the refresh where it was.
//! - **Retry**: after a failure, exponential backoff from 1 s, doubling per
//!   consecutive failure, capped at `min(refresh, 60 s)`, with "equal jitter"
//!   (a random delay in `[d/2, d]`).
//! - **Unknown `kid`**: a token naming a `kid` we do not have asks for an
//!   early fetch, granted only if the last fetch *started* at least
//!   `min_refetch_interval_seconds` ago and the source is not failing (then
//!   the retry schedule rules). Because the record is shared by all workers,
//!   so is the limit: the IdP sees at most one refetch per interval from the
//!   whole proxy, however many random `kid`s arrive.
//! - **Unknown-`kid` spread**: a refetch for a `kid` first missed at `since`
//!   also waits a pseudo-random delay in `[0, min(interval / 2, 15 s)]`
//!   (none for intervals under 10 s), the same for every worker of a proxy
//!   (it is drawn from the shared record) and different across proxies. A key rotation makes every proxy of a mesh
//!   miss the new `kid` within seconds; without the spread they would all
//!   refetch in the same second (docs/operations.md "The IdP at mesh scale").
//! - **Lease**: one fetch at a time per source across workers. A worker takes
//!   the lease with a compare-and-swap on the record; a lease whose holder
//!   vanished (its VM was replaced by a reload) expires after the timeout
//!   plus a margin.

use super::record::Record;

/// Lease margin beyond the HTTP timeout(s) of one attempt.
pub const LEASE_MARGIN_MS: u64 = 2_000;
pub const BACKOFF_BASE_MS: u64 = 1_000;
pub const BACKOFF_CAP_MS: u64 = 60_000;
/// Longest spread of an unknown-`kid` refetch.
pub const KID_SPREAD_CAP_MS: u64 = 15_000;
/// Intervals below this get no spread.
pub const KID_SPREAD_FROM_MS: u64 = 10_000;

/// Timing of one key source, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub refresh_ms: u64,
    pub timeout_ms: u64,
    pub max_stale_ms: u64,
    pub min_refetch_ms: u64,
    /// Discovery adds a second request to an attempt.
    pub discovery: bool,
}

impl Timing {
    pub fn backoff_cap_ms(&self) -> u64 {
        self.refresh_ms.clamp(BACKOFF_BASE_MS, BACKOFF_CAP_MS)
    }

    /// Delay before retry number `failures` (1 = after the first failure),
    /// before jitter.
    pub fn backoff_ms(&self, failures: u32) -> u64 {
        let exp = failures.saturating_sub(1).min(20);
        BACKOFF_BASE_MS
            .saturating_mul(1u64 << exp)
            .min(self.backoff_cap_ms())
    }

    /// Longest delay of an unknown-`kid` refetch after the miss: half the
    /// rate-limit interval, at most `KID_SPREAD_CAP_MS`. None under
    /// `KID_SPREAD_FROM_MS`: so short an interval already bounds the IdP's
    /// load, and the pickup stays at the next tick.
    pub fn kid_spread_ms(&self) -> u64 {
        if self.min_refetch_ms < KID_SPREAD_FROM_MS {
            return 0;
        }
        (self.min_refetch_ms / 2).min(KID_SPREAD_CAP_MS)
    }

    fn lease_ms(&self) -> u64 {
        let calls = if self.discovery { 2 } else { 1 };
        self.timeout_ms.saturating_mul(calls) + LEASE_MARGIN_MS
    }
}

/// SplitMix64: tiny, seedable, good enough for jitter and worker ids (not
/// for anything secret).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..=max`.
    pub fn below_or_eq(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            Some(n) => self.next_u64() % n,
            None => self.next_u64(),
        }
    }
    /// A non-zero id.
    pub fn id(&mut self) -> u64 {
        self.next_u64().max(1)
    }
}

/// Why a fetch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// No key set was ever fetched.
    Initial,
    /// The refresh interval elapsed.
    Refresh,
    /// A previous attempt failed and its backoff elapsed.
    Retry,
    /// A token named a `kid` we do not have.
    UnknownKid,
}

/// Should worker `me` start a fetch at `now`? If so, the record to write
/// back (with compare-and-swap) to take the lease, and why.
///
/// `kid_wanted_since` is the earliest time (ms) a token with an unknown `kid`
/// was seen by this worker and not yet covered by a fetch.
pub fn plan(
    rec: &Record,
    now: u64,
    me: u64,
    kid_wanted_since: Option<u64>,
    t: &Timing,
) -> Option<(Record, Why)> {
    plan_with_spread(rec, now, me, kid_wanted_since, t, t.kid_spread_ms())
}

/// [`plan`] with an explicit unknown-`kid` spread (0: none), for the
/// mesh-scale simulation's comparison.
pub fn plan_with_spread(
    rec: &Record,
    now: u64,
    me: u64,
    kid_wanted_since: Option<u64>,
    t: &Timing,
    spread_ms: u64,
) -> Option<(Record, Why)> {
    if rec.leased(now) {
        return None;
    }
    let why = if now >= rec.next_attempt_ms {
        if rec.failures > 0 {
            Why::Retry
        } else if rec.fetched_at_ms == 0 {
            Why::Initial
        } else {
            Why::Refresh
        }
    } else if kid_wanted(rec, now, kid_wanted_since, t, spread_ms) {
        Why::UnknownKid
    } else {
        return None;
    };
    let mut next = rec.clone();
    next.lease_owner = me;
    next.lease_until_ms = now.saturating_add(t.lease_ms());
    next.last_attempt_ms = now;
    Some((next, why))
}

fn kid_wanted(rec: &Record, now: u64, since: Option<u64>, t: &Timing, spread_ms: u64) -> bool {
    let Some(since) = since else {
        return false;
    };
    !kid_covered(rec, since)
        && rec.failures == 0
        && now >= rec.last_attempt_ms.saturating_add(t.min_refetch_ms)
        // `since` is the miss rounded up to the next second; a spread fetch
        // starts at or after it, so it always answers the miss. Without a
        // spread the next tick fetches at once.
        && (spread_ms == 0 || now >= since.saturating_add(kid_delay(rec, since, spread_ms)))
}

/// The spread of a proxy's refetch for a miss at `since`: uniform in
/// `0..=spread_ms`. Drawn from the time of the proxy's last good fetch
/// (milliseconds, different across proxies, the same for all its workers),
/// so every worker waits the same and the fleet is spread evenly; a pure
/// function, the same on every tick.
pub fn kid_delay(rec: &Record, since: u64, spread_ms: u64) -> u64 {
    Rng::new(rec.fetched_at_ms ^ since.rotate_left(32)).below_or_eq(spread_ms)
}

/// Has a fetch started at or after `since`? Then it has (or will have)
/// answered the unknown-`kid` question and the wish can be dropped.
pub fn kid_covered(rec: &Record, since: u64) -> bool {
    rec.last_attempt_ms >= since
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A JWKS that parsed with at least one usable key (validated before
    /// this point: a malformed response is a `Failed`).
    Keys {
        body: String,
        /// Found by discovery on this attempt.
        jwks_uri: Option<String>,
    },
    Failed {
        error: String,
        /// Forget the discovered `jwks_uri` (it may have moved).
        rediscover: bool,
    },
}

/// Apply the outcome of worker `me`'s attempt to the current record. Returns
/// the record to write back. A failure never touches `body`, `version` or
/// `fetched_at_ms`: the last good key set stays, bounded by staleness.
pub fn complete(
    rec: &Record,
    now: u64,
    me: u64,
    outcome: &Outcome,
    t: &Timing,
    rng: &mut Rng,
) -> Record {
    let mut next = rec.clone();
    if next.lease_owner == me {
        next.lease_owner = 0;
        next.lease_until_ms = 0;
    }
    match outcome {
        Outcome::Keys { body, jwks_uri } => {
            if *body != next.body {
                next.version = next.version.saturating_add(1);
                next.body = body.clone();
            }
            next.fetched_at_ms = now;
            next.failures = 0;
            next.last_error = None;
            if jwks_uri.is_some() {
                next.jwks_uri = jwks_uri.clone();
            }
            // An early fetch (for an unknown `kid`) leaves the refresh where
            // it was: a rotation makes every proxy of a mesh fetch within
            // seconds, and re-basing each refresh on that moment would line
            // the whole fleet up, refresh after refresh.
            let early = rec.failures == 0 && rec.fetched_at_ms != 0 && rec.next_attempt_ms > now;
            if !early {
                // After a first fetch or a recovery the next refresh is drawn
                // from the whole second half of the interval: proxies that
                // start together (a rollout) or recover together (after an
                // IdP outage) would otherwise stay in step for many cycles,
                // 10 % of jitter a cycle being slow to spread them.
                let spread = if rec.fetched_at_ms == 0 || rec.failures > 0 {
                    t.refresh_ms / 2
                } else {
                    t.refresh_ms / 10
                };
                let jitter = rng.below_or_eq(spread);
                next.next_attempt_ms = now.saturating_add(t.refresh_ms - jitter);
            }
        }
        Outcome::Failed { error, rediscover } => {
            next.failures = next.failures.saturating_add(1);
            next.last_error = Some(error.clone());
            if *rediscover {
                next.jwks_uri = None;
            }
            let d = t.backoff_ms(next.failures);
            let delay = d / 2 + rng.below_or_eq(d - d / 2);
            next.next_attempt_ms = now.saturating_add(delay);
        }
    }
    next
}

/// May keys fetched at `fetched_at_ms` still be used at `now`?
pub fn fresh(fetched_at_ms: u64, now: u64, t: &Timing) -> bool {
    fetched_at_ms != 0 && now.saturating_sub(fetched_at_ms) <= t.max_stale_ms
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const T: Timing = Timing {
        refresh_ms: 300_000,
        timeout_ms: 5_000,
        max_stale_ms: 3_600_000,
        min_refetch_ms: 30_000,
        discovery: false,
    };
    const ME: u64 = 7;
    const OTHER: u64 = 9;
    const T0: u64 = 1_700_000_000_000;

    fn ok(body: &str) -> Outcome {
        Outcome::Keys {
            body: body.into(),
            jwks_uri: None,
        }
    }
    fn failed() -> Outcome {
        Outcome::Failed {
            error: "HTTP 500".into(),
            rediscover: false,
        }
    }

    #[test]
    fn first_fetch_is_immediate_and_takes_the_lease() {
        let (rec, why) = plan(&Record::default(), T0, ME, None, &T).unwrap();
        assert_eq!(why, Why::Initial);
        assert_eq!(rec.lease_owner, ME);
        assert_eq!(rec.lease_until_ms, T0 + 5_000 + LEASE_MARGIN_MS);
        assert_eq!(rec.last_attempt_ms, T0);
        // Nobody else starts while the lease runs, not even for a kid.
        assert!(plan(&rec, T0 + 1, OTHER, Some(T0), &T).is_none());
        // A vanished holder's lease expires.
        let (stolen, _) = plan(&rec, rec.lease_until_ms, OTHER, None, &T).unwrap();
        assert_eq!(stolen.lease_owner, OTHER);
        // Discovery doubles the lease (two requests per attempt).
        let d = Timing {
            discovery: true,
            ..T
        };
        let (rec, _) = plan(&Record::default(), T0, ME, None, &d).unwrap();
        assert_eq!(rec.lease_until_ms, T0 + 10_000 + LEASE_MARGIN_MS);
    }

    #[test]
    fn success_schedules_a_jittered_refresh() {
        let mut rng = Rng::new(1);
        let (leased, _) = plan(&Record::default(), T0, ME, None, &T).unwrap();
        let rec = complete(&leased, T0 + 40, ME, &ok("{k1}"), &T, &mut rng);
        assert_eq!(
            (rec.version, rec.fetched_at_ms, rec.failures),
            (1, T0 + 40, 0)
        );
        assert_eq!((rec.lease_owner, rec.lease_until_ms), (0, 0));
        assert_eq!(rec.body, "{k1}");
        // The first refresh: anywhere in the second half of the interval.
        let wait = rec.next_attempt_ms - (T0 + 40);
        assert!((150_000..=300_000).contains(&wait), "{wait}");
        assert!(plan(&rec, rec.next_attempt_ms - 1, ME, None, &T).is_none());
        let (_, why) = plan(&rec, rec.next_attempt_ms, ME, None, &T).unwrap();
        assert_eq!(why, Why::Refresh);
        // The same body again: fresher, same version (no re-parse, the token
        // cache stays valid).
        let again = complete(&rec, T0 + 500_000, ME, &ok("{k1}"), &T, &mut rng);
        assert_eq!((again.version, again.fetched_at_ms), (1, T0 + 500_000));
        // Later refreshes: within 10 % of the interval.
        let wait = again.next_attempt_ms - (T0 + 500_000);
        assert!((270_000..=300_000).contains(&wait), "{wait}");
        let rotated = complete(&again, T0 + 600_000, ME, &ok("{k2}"), &T, &mut rng);
        assert_eq!(rotated.version, 2);
    }

    #[test]
    fn jitter_spreads_refreshes() {
        let mut rng = Rng::new(42);
        let waits: std::collections::BTreeSet<u64> = (0..50)
            .map(|_| complete(&Record::default(), 0, ME, &ok("b"), &T, &mut rng).next_attempt_ms)
            .collect();
        assert!(waits.len() > 40, "jitter too coarse: {}", waits.len());
        // Seeded: the same seed gives the same schedule.
        let a = complete(&Record::default(), 0, ME, &ok("b"), &T, &mut Rng::new(5));
        let b = complete(&Record::default(), 0, ME, &ok("b"), &T, &mut Rng::new(5));
        assert_eq!(a.next_attempt_ms, b.next_attempt_ms);
    }

    #[test]
    fn failures_back_off_exponentially_with_jitter_and_keep_the_keys() {
        let mut rng = Rng::new(3);
        let good = complete(&Record::default(), T0, ME, &ok("{k1}"), &T, &mut rng);
        let mut rec = good.clone();
        let mut now = T0 + T.refresh_ms;
        let mut delays = Vec::new();
        for n in 1..=8u32 {
            let (leased, why) = plan(&rec, now, ME, None, &T).unwrap();
            assert_eq!(why, if n == 1 { Why::Refresh } else { Why::Retry });
            rec = complete(&leased, now, ME, &failed(), &T, &mut rng);
            assert_eq!(rec.failures, n);
            assert_eq!(
                (rec.version, rec.fetched_at_ms, rec.body.as_str()),
                (1, T0, "{k1}")
            );
            assert_eq!(rec.last_error.as_deref(), Some("HTTP 500"));
            let d = T.backoff_ms(n);
            let delay = rec.next_attempt_ms - now;
            assert!((d / 2..=d).contains(&delay), "n={n} d={d} delay={delay}");
            delays.push(d);
            assert!(plan(&rec, rec.next_attempt_ms - 1, ME, None, &T).is_none());
            now = rec.next_attempt_ms;
        }
        assert_eq!(
            delays,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]
        );
        // Recovery resets the failure count, and the next refresh is drawn
        // from the second half of the interval.
        let (leased, _) = plan(&rec, now, ME, None, &T).unwrap();
        let rec = complete(&leased, now, ME, &ok("{k1}"), &T, &mut rng);
        assert_eq!((rec.failures, rec.last_error.clone()), (0, None));
        assert!((150_000..=300_000).contains(&(rec.next_attempt_ms - now)));
        let waits: std::collections::BTreeSet<u64> = (0..200)
            .map(|_| complete(&leased, now, ME, &ok("{k1}"), &T, &mut rng).next_attempt_ms - now)
            .collect();
        assert!(*waits.iter().next().unwrap() < 160_000 && *waits.iter().last().unwrap() > 290_000);
    }

    #[test]
    fn backoff_cap_follows_a_short_refresh() {
        let t = Timing {
            refresh_ms: 3_000,
            ..T
        };
        assert_eq!(t.backoff_ms(1), 1_000);
        assert_eq!(t.backoff_ms(2), 2_000);
        assert_eq!(t.backoff_ms(3), 3_000);
        assert_eq!(t.backoff_ms(60), 3_000);
        let t = Timing {
            refresh_ms: 200,
            ..T
        };
        assert_eq!(t.backoff_ms(5), BACKOFF_BASE_MS);
    }

    #[test]
    fn unknown_kid_refetch_is_rate_limited_and_shared() {
        let mut rng = Rng::new(9);
        let rec = complete(&Record::default(), T0, ME, &ok("{k1}"), &T, &mut rng);
        let rec = Record {
            last_attempt_ms: T0,
            ..rec
        };
        // A kid miss right after a fetch: must wait for the interval.
        let miss = T0 + 1_000;
        assert!(plan(&rec, miss, ME, Some(miss), &T).is_none());
        assert!(plan(&rec, T0 + 29_999, OTHER, Some(miss), &T).is_none());
        let (leased, why) = plan(&rec, T0 + 30_000, OTHER, Some(miss), &T).unwrap();
        assert_eq!(why, Why::UnknownKid);
        // The attempt covers every miss seen before it started, in every worker.
        assert!(kid_covered(&leased, miss));
        assert!(!kid_covered(&leased, T0 + 30_001));
        let done = complete(&leased, T0 + 30_050, OTHER, &ok("{k1}"), &T, &mut rng);
        // A new miss right after: limited again, counted from the attempt start.
        assert!(plan(&done, T0 + 40_000, ME, Some(T0 + 40_000), &T).is_none());
        assert!(plan(&done, T0 + 60_000, ME, Some(T0 + 40_000), &T).is_some());
        // In a flood, attempts over 10 minutes stay within the rate.
        let mut rec = done;
        let mut fetches = 0;
        let mut now = T0 + 60_000;
        // A miss on every request: the worker keeps the oldest one not yet
        // covered by a fetch (as LiveKeys does).
        let mut since: Option<u64> = None;
        while now < T0 + 660_000 {
            let wanted = *since.get_or_insert(now);
            if let Some((leased, _)) = plan(&rec, now, ME, Some(wanted), &T) {
                fetches += 1;
                rec = complete(&leased, now + 20, ME, &ok("{k1}"), &T, &mut rng);
            }
            if since.is_some_and(|s| kid_covered(&rec, s)) {
                since = None;
            }
            now += 100;
        }
        // One per interval, plus the refreshes (a kid fetch does not move
        // them): two in these 10 minutes.
        let refreshes = (600_000 / T.refresh_ms) as usize;
        assert!(fetches <= 600_000 / 30_000 + 1 + refreshes, "{fetches}");
        assert!(fetches >= 600_000 / 30_000 - 1, "{fetches}");
    }

    #[test]
    fn unknown_kid_refetch_is_spread_across_proxies() {
        assert_eq!(T.kid_spread_ms(), 15_000);
        let short = Timing {
            min_refetch_ms: 2_000,
            ..T
        };
        assert_eq!(short.kid_spread_ms(), 0);
        let ten = Timing {
            min_refetch_ms: 10_000,
            ..T
        };
        assert_eq!(ten.kid_spread_ms(), 5_000);
        let mut rng = Rng::new(11);
        let rec = complete(&Record::default(), T0, ME, &ok("{k1}"), &T, &mut rng);
        // A miss long after the last fetch: not before the proxy's delay, at
        // it exactly, and the same for every worker.
        let since = T0 + 100_000;
        let d = kid_delay(&rec, since, T.kid_spread_ms());
        assert!(d <= 15_000);
        let base = since;
        for me in [ME, OTHER] {
            if d > 0 {
                assert!(plan(&rec, base + d - 1, me, Some(since), &T).is_none());
            }
            let (_, why) = plan(&rec, base + d, me, Some(since), &T).unwrap();
            assert_eq!(why, Why::UnknownKid);
        }
        // No spread: at once, even within the second of the miss.
        assert!(plan_with_spread(&rec, since - 900, ME, Some(since), &T, 0).is_some());
        // Across proxies (their last fetches at different milliseconds) the
        // delays cover the range.
        let delays: std::collections::BTreeSet<u64> = (0..300u64)
            .map(|i| {
                let r = Record {
                    fetched_at_ms: T0 + i * 37,
                    ..rec.clone()
                };
                kid_delay(&r, since, 15_000)
            })
            .collect();
        assert!(delays.len() > 250, "{}", delays.len());
        assert!(*delays.iter().next().unwrap() < 500);
        assert!(*delays.iter().last().unwrap() > 14_500);
        // The rate-limit interval still counts from the last attempt.
        let recent = Record {
            last_attempt_ms: since - 1_000,
            ..rec.clone()
        };
        assert!(plan(&recent, base + d, ME, Some(since), &T).is_none() || d >= 29_000);
        assert!(plan(&recent, since + 29_000 + d, ME, Some(since), &T).is_some());
    }

    #[test]
    fn an_early_fetch_keeps_the_refresh_schedule() {
        let mut rng = Rng::new(12);
        let rec = complete(&Record::default(), T0, ME, &ok("{k1}"), &T, &mut rng);
        let due = rec.next_attempt_ms;
        // A kid refetch 100 s later, with a new key: the set changes, the
        // refresh stays due when it was.
        let (leased, why) = plan(&rec, T0 + 100_000, ME, Some(T0 + 80_000), &T).unwrap();
        assert_eq!(why, Why::UnknownKid);
        let after = complete(&leased, T0 + 100_050, ME, &ok("{k1,k2}"), &T, &mut rng);
        assert_eq!((after.version, after.next_attempt_ms), (2, due));
        // The refresh itself re-bases as before.
        let (leased, why) = plan(&after, due, ME, None, &T).unwrap();
        assert_eq!(why, Why::Refresh);
        let later = complete(&leased, due + 40, ME, &ok("{k1,k2}"), &T, &mut rng);
        assert!(later.next_attempt_ms >= due + 40 + 270_000);
    }

    #[test]
    fn no_kid_refetch_while_failing() {
        let mut rng = Rng::new(2);
        let good = complete(&Record::default(), T0, ME, &ok("{k1}"), &T, &mut rng);
        let bad = complete(&good, T0 + 300_000, ME, &failed(), &T, &mut rng);
        let probe = bad.next_attempt_ms - 1;
        assert!(plan(&bad, probe, ME, Some(T0 + 300_001), &T).is_none());
    }

    #[test]
    fn discovery_uri_is_kept_until_a_failure_asks_to_forget_it() {
        let mut rng = Rng::new(4);
        let rec = complete(
            &Record::default(),
            T0,
            ME,
            &Outcome::Keys {
                body: "b".into(),
                jwks_uri: Some("https://k/keys".into()),
            },
            &T,
            &mut rng,
        );
        let kept = complete(&rec, T0 + 1, ME, &failed(), &T, &mut rng);
        assert_eq!(kept.jwks_uri.as_deref(), Some("https://k/keys"));
        let forgot = complete(
            &rec,
            T0 + 1,
            ME,
            &Outcome::Failed {
                error: "HTTP 404".into(),
                rediscover: true,
            },
            &T,
            &mut rng,
        );
        assert_eq!(forgot.jwks_uri, None);
    }

    #[test]
    fn a_stolen_lease_is_not_released_by_the_old_holder() {
        let mut rng = Rng::new(5);
        let (mine, _) = plan(&Record::default(), T0, ME, None, &T).unwrap();
        let (theirs, _) = plan(&mine, mine.lease_until_ms, OTHER, None, &T).unwrap();
        let after = complete(
            &theirs,
            theirs.last_attempt_ms + 1,
            ME,
            &failed(),
            &T,
            &mut rng,
        );
        assert_eq!(after.lease_owner, OTHER);
    }

    #[test]
    fn staleness_bound() {
        assert!(!fresh(0, T0, &T));
        assert!(fresh(T0, T0 + T.max_stale_ms, &T));
        assert!(!fresh(T0, T0 + T.max_stale_ms + 1, &T));
    }
}
