//! Arbitrary bytes as a bearer token against a policy whose provider has
//! RSA, EC and Ed25519 keys, through the whole decision: must decide (an
//! error or a token), never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oam_authz::{decide, Headers, Policy, Request, TokenCache};
use std::sync::OnceLock;

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let provider: serde_json::Value =
            serde_json::from_str(include_str!("provider.json")).unwrap_or_else(|e| panic!("{e}"));
        let cfg = serde_json::json!({
            "schema_version": 1, "trust_domain": "cluster.local",
            "providers": [provider],
            "roles": [{"name": "user", "jwt": {"provider": provider["name"]}}],
            "rules": [{"name": "api", "roles": ["user"]}],
        });
        Policy::from_json(&cfg.to_string()).unwrap_or_else(|e| panic!("{e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let headers = Headers::from_pairs(&[("authorization", format!("Bearer {token}"))]);
        let req = Request {
            method: "GET",
            path: "/api",
            host: "api",
            headers: &headers,
            peer: None,
            now: 1_800_000_000,
            crypto: None,
        };
        let _ = decide(policy(), &req, &mut TokenCache::disabled(), None);
        let _ = oam_authz::parsers::peek_issuer(token);
    }
});
