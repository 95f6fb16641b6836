//! The key set a remote provider verifies with right now, shared between the
//! root context (which replaces it) and the request path (which reads it).
//!
//! A worker VM is single-threaded, so the lock is never contended; it is a
//! lock rather than a `RefCell` only so that a compiled `Policy` stays
//! `Send + Sync` for the CLI and native tests.

use crate::jwt::KeySet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

#[derive(Debug, Default)]
struct Current {
    set: Option<Arc<KeySet>>,
    /// Bumped on every change (new set, or dropped as stale): the token cache
    /// never serves an entry verified under another generation.
    generation: u64,
}

#[derive(Debug, Default)]
pub struct LiveKeys {
    current: RwLock<Current>,
    /// Unix seconds + 1 of the first unknown-`kid` token not yet answered by
    /// a fetch; 0 = none.
    kid_miss: AtomicU64,
}

impl LiveKeys {
    pub fn new() -> LiveKeys {
        LiveKeys::default()
    }

    /// The usable key set, or `None` before the first fetch and once the last
    /// good set is older than the staleness bound.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .set
            .clone()
    }

    pub fn generation(&self) -> u64 {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .generation
    }

    /// Install a new set (or none).
    pub fn replace(&self, set: Option<Arc<KeySet>>) {
        let mut cur = self.current.write().unwrap_or_else(PoisonError::into_inner);
        cur.set = set;
        cur.generation = cur.generation.wrapping_add(1);
    }

    /// The request path saw a token whose `kid` is not in the set.
    pub fn note_unknown_kid(&self, now_s: u64) {
        let _ = self.kid_miss.compare_exchange(
            0,
            now_s.saturating_add(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Unix ms from which a fetch answers the oldest pending unknown-`kid`
    /// miss. Rounded up to the next second: the request path only knows
    /// whole seconds, and an early fetch must never count as answering it.
    pub fn kid_wanted_since_ms(&self) -> Option<u64> {
        match self.kid_miss.load(Ordering::Relaxed) {
            0 => None,
            s => Some(s.saturating_mul(1000)),
        }
    }

    pub fn clear_kid_miss(&self) {
        self.kid_miss.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_and_kid_misses() {
        let live = LiveKeys::new();
        assert!(live.current().is_none());
        let g0 = live.generation();
        live.replace(Some(Arc::new(KeySet::default())));
        assert!(live.current().is_some());
        assert_ne!(live.generation(), g0);
        let g1 = live.generation();
        live.replace(None);
        assert!(live.current().is_none());
        assert_ne!(live.generation(), g1);

        assert_eq!(live.kid_wanted_since_ms(), None);
        live.note_unknown_kid(100);
        live.note_unknown_kid(105); // the oldest miss is kept
        assert_eq!(live.kid_wanted_since_ms(), Some(101_000));
        live.clear_kid_miss();
        assert_eq!(live.kid_wanted_since_ms(), None);
    }
}
