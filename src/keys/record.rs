//! The per-key-source record kept in proxy-wasm shared data, so that every
//! worker VM (and every policy generation after a hot reload) sees the same
//! last good JWKS, the same fetch schedule and the same rate limit.
//!
//! Encoding: one line of JSON (the schedule) then `\n` then the JWKS text
//! exactly as the IdP served it (empty until the first good fetch). A record
//! that does not decode is treated as absent and rewritten.

use crate::json::read::parse_object;
use crate::json::write::Object;
use crate::json::Value;

/// Bumped if the encoding ever changes; it is part of the shared-data key,
/// so two module versions running side by side never read each other's
/// records.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Version of `body`: bumped whenever a fetch returns a different JWKS.
    pub version: u64,
    /// Unix ms of the last successful fetch; 0 = never.
    pub fetched_at_ms: u64,
    /// Unix ms before which no scheduled fetch (refresh or retry) starts.
    pub next_attempt_ms: u64,
    /// Unix ms at which the last fetch started: the unknown-`kid` rate limit
    /// counts from here.
    pub last_attempt_ms: u64,
    /// Consecutive failed fetches (0 after a success).
    pub failures: u32,
    /// Worker holding the fetch lease (0 = none) and until when.
    pub lease_owner: u64,
    pub lease_until_ms: u64,
    /// `jwks_uri` found by OpenID discovery, reused until a fetch fails.
    pub jwks_uri: Option<String>,
    /// Why the last fetch failed, for logs.
    pub last_error: Option<String>,
    /// The last good JWKS text (not part of the JSON line).
    pub body: String,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut head = String::with_capacity(192);
        Object::new(&mut head)
            .u64("version", self.version)
            .u64("fetched_at_ms", self.fetched_at_ms)
            .u64("next_attempt_ms", self.next_attempt_ms)
            .u64("last_attempt_ms", self.last_attempt_ms)
            .u64("failures", u64::from(self.failures))
            .u64("lease_owner", self.lease_owner)
            .u64("lease_until_ms", self.lease_until_ms)
            .some_str("jwks_uri", self.jwks_uri.as_deref())
            .some_str("last_error", self.last_error.as_deref())
            .end();
        let mut out = Vec::with_capacity(head.len() + 1 + self.body.len());
        out.extend_from_slice(head.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(self.body.as_bytes());
        out
    }

    /// The schedule line only: what a worker reads on every tick.
    pub fn decode_head(bytes: &[u8]) -> Option<(Record, &[u8])> {
        let nl = bytes.iter().position(|b| *b == b'\n')?;
        let head = bytes.get(..nl)?;
        let rest = bytes.get(nl + 1..)?;
        Some((Record::from_head(head)?, rest))
    }

    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let (mut rec, body) = Record::decode_head(bytes)?;
        rec.body = String::from_utf8(body.to_vec()).ok()?;
        Some(rec)
    }

    /// The JSON line: exactly the fields `encode` writes, nothing else.
    fn from_head(head: &[u8]) -> Option<Record> {
        const FIELDS: [&str; 9] = [
            "version",
            "fetched_at_ms",
            "next_attempt_ms",
            "last_attempt_ms",
            "failures",
            "lease_owner",
            "lease_until_ms",
            "jwks_uri",
            "last_error",
        ];
        let m = parse_object(head, 2).ok()?;
        if m.keys().any(|k| !FIELDS.contains(&k.as_str())) {
            return None;
        }
        let num = |k: &str| m.get(k).and_then(Value::as_u64);
        let text = |k: &str| match m.get(k) {
            None => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => None,
        };
        Some(Record {
            version: num("version")?,
            fetched_at_ms: num("fetched_at_ms")?,
            next_attempt_ms: num("next_attempt_ms")?,
            last_attempt_ms: num("last_attempt_ms")?,
            failures: u32::try_from(num("failures")?).ok()?,
            lease_owner: num("lease_owner")?,
            lease_until_ms: num("lease_until_ms")?,
            jwks_uri: text("jwks_uri")?,
            last_error: text("last_error")?,
            body: String::new(),
        })
    }

    /// Is the lease held by anyone at `now`?
    pub fn leased(&self, now: u64) -> bool {
        self.lease_owner != 0 && now < self.lease_until_ms
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let rec = Record {
            version: 3,
            fetched_at_ms: 1_700_000_000_000,
            jwks_uri: Some("https://k/".into()),
            body: "{\"keys\":[]}\n\nwith newlines".into(),
            ..Record::default()
        };
        let bytes = rec.encode();
        assert_eq!(Record::decode(&bytes).unwrap(), rec);
        let (head, body) = Record::decode_head(&bytes).unwrap();
        assert_eq!(head.version, 3);
        assert!(head.body.is_empty());
        assert_eq!(body, rec.body.as_bytes());
    }

    #[test]
    fn garbage_is_absent() {
        for bad in [
            &b""[..],
            b"no newline",
            b"{}\n",
            b"{\"version\":1}\n",
            b"\xff\n",
        ] {
            assert!(Record::decode(bad).is_none(), "{bad:?}");
        }
        let mut bytes = Record::default().encode();
        bytes.extend_from_slice(b"\xff\xfe");
        assert!(Record::decode(&bytes).is_none(), "non-UTF-8 body");
    }
}
