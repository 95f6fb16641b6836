//! A bounded cache of verified tokens, per filter VM (one per Envoy worker).
//!
//! A pure-wasm RS256/ES256 check costs 0.8-1.9 ms; a hit here costs a hash
//! and a byte comparison. Design:
//! - direct-mapped with two ways: O(1), no allocation on lookup, and a flood
//!   of distinct tokens can only evict, never grow memory;
//! - a cheap non-cryptographic hash picks the slot and a full comparison of
//!   the token bytes decides the hit, so collisions cost a miss, never a
//!   wrong identity (no SHA-256 on the hot path);
//! - an entry is valid only while `now < exp` of its token, and only for the
//!   key-set generation it was verified under.

use crate::jwt::VerifiedToken;
use std::sync::Arc;

#[derive(Debug, Clone)]
struct Entry {
    hash: u64,
    provider: usize,
    generation: u64,
    token: Box<str>,
    verified: Arc<VerifiedToken>,
}

#[derive(Debug, Default)]
pub struct TokenCache {
    slots: Vec<Option<Entry>>,
    hits: u64,
    misses: u64,
}

/// Default number of cached tokens per VM.
pub const DEFAULT_CAPACITY: usize = 1024;

impl TokenCache {
    /// `capacity` is rounded up to an even number of slots (two ways).
    pub fn new(capacity: usize) -> TokenCache {
        let n = capacity.div_ceil(2) * 2;
        TokenCache {
            slots: vec![None; n],
            hits: 0,
            misses: 0,
        }
    }

    /// A cache that never holds anything (CLI, tests).
    pub fn disabled() -> TokenCache {
        TokenCache::default()
    }

    pub fn hits(&self) -> u64 {
        self.hits
    }
    pub fn misses(&self) -> u64 {
        self.misses
    }

    fn set_of(&self, hash: u64) -> Option<usize> {
        let sets = self.slots.len() / 2;
        if sets == 0 {
            return None;
        }
        Some((hash % sets as u64) as usize * 2)
    }

    /// Look `token` up. `current` says, for the provider an entry was verified
    /// by, whether that provider may serve this request and its key-set
    /// generation now; an entry from another generation is dropped.
    pub fn get(
        &mut self,
        token: &str,
        now: u64,
        current: &dyn Fn(usize) -> Option<u64>,
    ) -> Option<(usize, Arc<VerifiedToken>)> {
        let hash = hash_token(token.as_bytes());
        let Some(base) = self.set_of(hash) else {
            self.misses += 1;
            return None;
        };
        for i in base..base + 2 {
            let Some(slot) = self.slots.get_mut(i) else {
                continue;
            };
            let Some(e) = slot else { continue };
            if e.hash == hash && *e.token == *token {
                match current(e.provider) {
                    Some(g) if g == e.generation && now < e.verified.expires_at => {
                        self.hits += 1;
                        return Some((e.provider, e.verified.clone()));
                    }
                    // Provider not serving this location: leave the entry alone.
                    None => {}
                    Some(_) => *slot = None,
                }
            }
        }
        self.misses += 1;
        None
    }

    pub fn put(
        &mut self,
        provider: usize,
        generation: u64,
        token: &str,
        verified: Arc<VerifiedToken>,
    ) {
        let hash = hash_token(token.as_bytes());
        let Some(base) = self.set_of(hash) else {
            return;
        };
        let entry = Entry {
            hash,
            provider,
            generation,
            token: token.into(),
            verified,
        };
        // Prefer an empty way; otherwise evict the way whose token expires first.
        let victim = match (self.slots.get(base), self.slots.get(base + 1)) {
            (Some(None), _) => base,
            (_, Some(None)) => base + 1,
            (Some(Some(a)), Some(Some(b))) if b.verified.expires_at < a.verified.expires_at => {
                base + 1
            }
            _ => base,
        };
        if let Some(slot) = self.slots.get_mut(victim) {
            *slot = Some(entry);
        }
    }

    pub fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = None);
    }

    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// 64-bit multiply-xorshift over 8-byte words (FxHash-like). Not keyed and
/// not collision resistant: the full comparison in `get` is what is trusted.
pub fn hash_token(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let mut w = [0u8; 8];
    let rem = chunks.remainder();
    w.get_mut(..rem.len())
        .into_iter()
        .for_each(|d| d.copy_from_slice(rem));
    h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    h ^ (h >> 32)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn vt(exp: u64) -> Arc<VerifiedToken> {
        Arc::new(VerifiedToken {
            issuer: "i".into(),
            subject: Some("s".into()),
            expires_at: exp,
            claims: Map::new(),
        })
    }

    #[test]
    fn hit_miss_expiry_generation_provider() {
        let gen1 = |p: usize| (p == 0).then_some(1);
        let mut c = TokenCache::new(8);
        assert!(c.get("tok", 100, &gen1).is_none());
        c.put(0, 1, "tok", vt(200));
        assert_eq!(c.get("tok", 100, &gen1).map(|(p, _)| p), Some(0));
        assert!(c.get("tok", 199, &gen1).is_some());
        assert!(
            c.get("tok", 100, &|p| (p == 1).then_some(1)).is_none(),
            "provider not allowed here"
        );
        assert!(c.get("tok2", 100, &gen1).is_none(), "other token");
        assert!(c.get("tok", 100, &|_| Some(2)).is_none(), "key set changed");
        assert_eq!(c.len(), 0, "stale-generation entries are dropped");
        c.put(0, 1, "tok", vt(200));
        assert!(c.get("tok", 200, &gen1).is_none(), "never past exp");
        assert_eq!(c.len(), 0, "expired entries are dropped");
        assert_eq!((c.hits(), c.misses()), (2, 5));
    }

    #[test]
    fn bounded_under_a_flood() {
        let mut c = TokenCache::new(16);
        for i in 0..10_000 {
            c.put(0, 1, &format!("token-{i}"), vt(1_000));
        }
        assert!(c.len() <= 16);
        // The newest entry is always retrievable right after insertion.
        c.put(0, 1, "fresh", vt(1_000));
        assert!(c.get("fresh", 10, &|_| Some(1)).is_some());
    }

    #[test]
    fn disabled_cache_never_hits() {
        let mut c = TokenCache::disabled();
        c.put(0, 1, "t", vt(100));
        assert!(c.get("t", 1, &|_| Some(1)).is_none());
    }

    #[test]
    fn same_hash_different_token_is_a_miss() {
        // Force a collision by planting an entry with the hash of another token.
        let mut c = TokenCache::new(2);
        c.put(0, 1, "a", vt(100));
        let h = hash_token(b"b");
        if let Some(Some(e)) = c.slots.get_mut(0) {
            e.hash = h;
        }
        if let Some(Some(e)) = c.slots.get_mut(1) {
            e.hash = h;
        }
        assert!(c.get("b", 1, &|_| Some(1)).is_none());
    }

    #[test]
    fn hash_spreads_short_and_long_inputs() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..5000 {
            assert!(seen.insert(hash_token(format!("eyJ.{i}.sig").as_bytes())));
        }
        assert_ne!(hash_token(b""), hash_token(b"\0"));
    }
}
