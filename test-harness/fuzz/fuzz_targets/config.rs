//! Arbitrary text as the plugin configuration (what on_configure receives).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = oam_authz::Policy::from_json(text);
    }
});
