//! Arbitrary request paths and path patterns: canonicalization, pattern
//! parsing and matching never panic, and a canonical path never contains the
//! sequences the filter promises to refuse.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oam_authz::parsers::{canonical_path, normalize_host, PathPattern};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (pattern, path) = s.split_once('\n').unwrap_or((s, s));
    if let Ok(p) = canonical_path(path) {
        assert!(!p.contains("//") && !p.contains("/../") && !p.contains('\\'), "{p:?}");
        assert!(!p.to_ascii_lowercase().contains("%2f"), "{p:?}");
        if let Ok(pat) = PathPattern::parse(pattern) {
            let _ = pat.matches(p);
        }
    }
    let _ = normalize_host(s);
});
