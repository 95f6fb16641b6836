//! Arbitrary bytes as a bearer token against a provider with RSA, EC and
//! Ed25519 keys: must return an error or a token, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oam_authz::config::ProviderConfig;
use oam_authz::jwt::Provider;
use std::sync::OnceLock;

fn provider() -> &'static Provider {
    static P: OnceLock<Provider> = OnceLock::new();
    P.get_or_init(|| {
        let cfg: ProviderConfig = serde_json::from_str(include_str!("provider.json")).unwrap_or_else(|e| panic!("{e}"));
        Provider::compile(&cfg, "providers[0]").unwrap_or_else(|e| panic!("{e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = provider().verify(token, 1_800_000_000);
        let _ = oam_authz::jwt::peek_issuer(token);
    }
});
