//! The request headers as the host hands them over: one buffer in the
//! proxy-wasm map encoding, read in place. No copy or allocation per header
//! (the request path reads every header once and keeps none of them).

use std::ops::Range;

/// Request headers: names lowercase (as Envoy hands them to filters). A
/// value that is not valid UTF-8 reads as "\0", which every check here
/// rejects, so such a header can neither carry a token nor crash a parser.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    /// Every name and value, validated once (invalid UTF-8 became "\0").
    text: String,
    pairs: Vec<(Range<usize>, Range<usize>)>,
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(bytes)).ok()
}

impl Headers {
    /// The proxy-wasm encoding: `count`, then `count` pairs of (name length,
    /// value length), then each name and value followed by a NUL (all
    /// integers u32 little-endian). A malformed buffer reads as no headers.
    pub fn from_proxy_wasm(buf: Vec<u8>) -> Headers {
        let Some(raw) = Headers::parse(&buf) else {
            return Headers::default();
        };
        // One pass of validation here, so every later read is a plain slice.
        let mut h = Headers {
            text: String::with_capacity(buf.len()),
            pairs: Vec::with_capacity(raw.len()),
        };
        let piece = |r: Range<usize>| {
            buf.get(r)
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or("\0")
        };
        for (k, v) in raw {
            h.push(piece(k), piece(v));
        }
        h
    }

    fn push(&mut self, k: &str, v: &str) {
        let k0 = self.text.len();
        self.text.push_str(k);
        let v0 = self.text.len();
        self.text.push_str(v);
        self.pairs.push((k0..v0, v0..self.text.len()));
    }

    fn parse(b: &[u8]) -> Option<Vec<(Range<usize>, Range<usize>)>> {
        let count = u32_at(b, 0)?;
        // Each header takes at least 8 bytes of lengths and 2 NULs.
        if count > b.len() / 10 {
            return None;
        }
        let mut at = 4 + count * 8;
        let mut pairs = Vec::with_capacity(count);
        for i in 0..count {
            let klen = u32_at(b, 4 + i * 8)?;
            let vlen = u32_at(b, 8 + i * 8)?;
            let k = at..at.checked_add(klen)?;
            let v = k.end + 1..(k.end + 1).checked_add(vlen)?;
            if b.get(k.end) != Some(&0) || b.get(v.end) != Some(&0) {
                return None;
            }
            at = v.end + 1;
            pairs.push((k, v));
        }
        Some(pairs)
    }

    /// Headers from (name, value) pairs (tests, the CLI).
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(list: &[(K, V)]) -> Headers {
        let mut h = Headers::default();
        for (k, v) in list {
            h.push(k.as_ref(), v.as_ref());
        }
        h
    }

    fn text(&self, r: &Range<usize>) -> &str {
        self.text.get(r.clone()).unwrap_or("\0")
    }

    /// Every (name, value), in order; repeated names appear repeatedly.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.pairs
            .iter()
            .map(move |(k, v)| (self.text(k), self.text(v)))
    }

    /// The first value of `name` (exact, lowercase).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|(k, _)| k == name)
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn encode(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend((k.len() as u32).to_le_bytes());
            out.extend((v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend_from_slice(k);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    #[test]
    fn reads_the_proxy_wasm_encoding() {
        let buf = encode(&[
            (b":path", b"/a"),
            (b"x", b""),
            (b"x", b"\xff\xfe"),
            (b"authorization", b"Bearer t"),
        ]);
        let h = Headers::from_proxy_wasm(buf);
        let all: Vec<(&str, &str)> = h.iter().collect();
        assert_eq!(
            all,
            [
                (":path", "/a"),
                ("x", ""),
                ("x", "\0"),
                ("authorization", "Bearer t")
            ]
        );
        assert_eq!(h.get("x"), Some(""));
        assert!(h.contains("authorization") && !h.contains("cookie"));
        let same = Headers::from_pairs(&all);
        assert_eq!(same.iter().collect::<Vec<_>>(), all);
    }

    #[test]
    fn malformed_buffers_read_as_empty() {
        let good = encode(&[(b"a", b"b")]);
        let mut no_nul = good.clone();
        let n = no_nul.len();
        no_nul[n - 1] = b'x';
        let mut huge_count = good.clone();
        huge_count[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut long_len = good.clone();
        long_len[4..8].copy_from_slice(&1000u32.to_le_bytes());
        for bad in [
            vec![],
            vec![1, 0],
            no_nul,
            huge_count,
            long_len,
            good[..good.len() - 1].to_vec(),
        ] {
            assert!(Headers::from_proxy_wasm(bad.clone()).is_empty(), "{bad:?}");
        }
        assert_eq!(Headers::from_proxy_wasm(good).len(), 1);
        assert!(Headers::from_proxy_wasm(0u32.to_le_bytes().to_vec()).is_empty());
    }
}
