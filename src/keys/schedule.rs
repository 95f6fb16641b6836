//! When to fetch a remote JWKS, as pure functions of the shared [`Record`],
//! the time and a seeded PRNG: no host calls, so every branch is unit-tested
//! natively with a fake clock.
//!
//! - **Refresh**: after a success the next fetch is due after
//!   `refresh_seconds`, minus up to 10 % random jitter, so a fleet of proxies
//!   started together does not hit the IdP in lockstep.
//! - **Retry**: after a failure, exponential backoff from 1 s, doubling per
//!   consecutive failure, capped at `min(refresh, 60 s)`, with "equal jitter"
//!   (a random delay in `[d/2, d]`).
//! - **Unknown `kid`**: a token naming a `kid` we do not have asks for an
//!   early fetch, granted only if the last fetch *started* at least
//!   `min_refetch_interval_seconds` ago and the source is not failing (then
//!   the retry schedule rules). Because the record is shared by all workers,
//!   so is the limit: the IdP sees at most one refetch per interval from the
//!   whole proxy, however many random `kid`s arrive.
//! - **Lease**: one fetch at a time per source across workers. A worker takes
//!   the lease with a compare-and-swap on the record; a lease whose holder
//!   vanished (its VM was replaced by a reload) expires after the timeout
//!   plus a margin.

use super::record::Record;

/// Lease margin beyond the HTTP timeout(s) of one attempt.
pub const LEASE_MARGIN_MS: u64 = 2_000;
pub const BACKOFF_BASE_MS: u64 = 1_000;
pub const BACKOFF_CAP_MS: u64 = 60_000;

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
    } else if kid_wanted(rec, now, kid_wanted_since, t) {
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

fn kid_wanted(rec: &Record, now: u64, since: Option<u64>, t: &Timing) -> bool {
    let Some(since) = since else {
        return false;
    };
    !kid_covered(rec, since)
        && rec.failures == 0
        && now >= rec.last_attempt_ms.saturating_add(t.min_refetch_ms)
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
            let jitter = rng.below_or_eq(t.refresh_ms / 10);
            next.next_attempt_ms = now.saturating_add(t.refresh_ms - jitter);
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
        let wait = rec.next_attempt_ms - (T0 + 40);
        assert!((270_000..=300_000).contains(&wait), "{wait}");
        assert!(plan(&rec, rec.next_attempt_ms - 1, ME, None, &T).is_none());
        let (_, why) = plan(&rec, rec.next_attempt_ms, ME, None, &T).unwrap();
        assert_eq!(why, Why::Refresh);
        // The same body again: fresher, same version (no re-parse, the token
        // cache stays valid).
        let again = complete(&rec, T0 + 500_000, ME, &ok("{k1}"), &T, &mut rng);
        assert_eq!((again.version, again.fetched_at_ms), (1, T0 + 500_000));
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
        // Recovery resets the failure count.
        let (leased, _) = plan(&rec, now, ME, None, &T).unwrap();
        let rec = complete(&leased, now, ME, &ok("{k1}"), &T, &mut rng);
        assert_eq!((rec.failures, rec.last_error.clone()), (0, None));
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
        while now < T0 + 660_000 {
            if let Some((leased, _)) = plan(&rec, now, ME, Some(now), &T) {
                fetches += 1;
                rec = complete(&leased, now + 20, ME, &ok("{k1}"), &T, &mut rng);
            }
            now += 100;
        }
        assert!(fetches <= 600_000 / 30_000 + 1, "{fetches}");
        assert!(fetches >= 600_000 / 30_000 - 1, "{fetches}");
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
