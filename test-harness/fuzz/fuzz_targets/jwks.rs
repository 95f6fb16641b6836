//! Arbitrary JSON as an inline JWKS: a config error or a key set, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oam_authz::parsers::{parse_jwks, Alg};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = parse_jwks(&v, &Alg::ALL, "providers[0].jwks");
    }
});
