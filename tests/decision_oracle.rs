//! The `decision` fuzz target's oracle
//! (test-harness/fuzz/fuzz_targets/decision_oracle.rs)
//! on fixed inputs: each case has the verdict written by hand, and the oracle
//! and the engine must both give it. A fuzz finding is only as good as the
//! oracle, so the oracle is checked here, in `make test`, on stable.

#![allow(clippy::panic, clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "../test-harness/fuzz/fuzz_targets/decision_oracle.rs"]
mod oracle;

use oam_authz::{decide, Headers, Policy, Request, TokenCache};
use oracle::{Caller, Verdict, NOW};
use serde_json::{json, Value};

fn config() -> Value {
    json!({
        "schema_version": 1, "trust_domain": "cluster.local", "trust_domain_aliases": ["old.example.com"],
        "providers": [{"name": "p0", "issuer": "https://idp0.example.com", "audiences": ["api://a0"],
                       "algorithms": ["EdDSA"], "jwks": oracle::jwks(0)}],
        "roles": [
            {"name": "shop", "principals": ["ns/shop/*"]},
            {"name": "partner", "principals": ["spiffe://partner.example/*"]},
            {"name": "admin", "jwt": {"provider": "p0", "claims": [{"claim": "grp", "contains": "admins"},
                                                                  {"claim": "ctx.lvl", "one_of": [3, 4]}]}},
            {"name": "ci", "principals": ["ns/ci/sa/deployer"],
             "jwt": {"provider": "p0", "claims": [{"claim": "ref", "prefix": "release/"}]}}
        ],
        "rules": [
            {"name": "no-debug", "effect": "deny", "paths": ["/debug/{**}"]},
            {"name": "no-partner-writes", "effect": "deny", "roles": ["partner"], "methods": ["POST"]},
            {"name": "health", "public": true, "methods": ["GET"], "paths": ["/healthz"]},
            {"name": "items", "roles": ["shop", "partner"], "paths": ["/api/{*}/items", "*.png"], "hosts": ["*.example.com"]},
            {"name": "admin", "roles": ["admin"], "paths": ["/admin/*"]},
            {"name": "deploy", "roles": ["ci"], "methods": ["POST"], "paths": ["/deploy"]}
        ]
    })
}

fn token(claims: Value) -> String {
    let mut c = json!({"iss": "https://idp0.example.com", "aud": "api://a0", "iat": NOW - 60, "exp": NOW + 600});
    c.as_object_mut()
        .unwrap()
        .extend(claims.as_object().unwrap().clone());
    oracle::sign(
        &oracle::test_key(0).sk,
        &json!({"alg": "EdDSA", "kid": "k0"}),
        &c,
    )
}

#[test]
fn oracle_and_engine_agree_on_fixed_cases() {
    let cfg = config();
    let policy = Policy::from_json(&cfg.to_string()).unwrap();
    let shop = "spiffe://old.example.com/ns/shop/sa/web";
    let partner = "spiffe://partner.example/ns/x/sa/y";
    let deployer = "spiffe://cluster.local/ns/ci/sa/deployer";
    let admin = token(json!({"grp": ["dev", "admins"], "ctx": {"lvl": 4}}));
    let not_admin = token(json!({"grp": ["admins"], "ctx": {"lvl": "4"}}));
    let release = token(json!({"ref": "release/1.2"}));
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        &'static str,
        Option<usize>,
    );
    let cases: Vec<Case> = vec![
        ("GET", "/healthz", "api", None, None, "public_rule", Some(2)),
        (
            "GET",
            "/healthz?x=1",
            "api",
            None,
            None,
            "public_rule",
            Some(2),
        ),
        (
            "POST",
            "/healthz",
            "api",
            None,
            None,
            "no_matching_rule",
            None,
        ),
        (
            "GET",
            "/debug/x",
            "api",
            Some(shop),
            None,
            "denied_by_rule",
            Some(0),
        ),
        (
            "GET",
            "/debug/",
            "api",
            None,
            None,
            "no_matching_rule",
            None,
        ),
        (
            "GET",
            "/api/v1/items",
            "API.Example.com.:8443",
            Some(shop),
            None,
            "role_granted",
            Some(3),
        ),
        (
            "GET",
            "/api/v1/items",
            "example.com",
            Some(shop),
            None,
            "no_matching_rule",
            None,
        ),
        (
            "GET",
            "/api/v1/v2/items",
            "a.example.com",
            Some(shop),
            None,
            "no_matching_rule",
            None,
        ),
        (
            "GET",
            "/x/y.png",
            "a.example.com",
            Some(partner),
            None,
            "role_granted",
            Some(3),
        ),
        (
            "POST",
            "/x/y.png",
            "a.example.com",
            Some(partner),
            None,
            "denied_by_rule",
            Some(1),
        ),
        (
            "GET",
            "/x/y.png",
            "a.example.com",
            Some(deployer),
            None,
            "role_required",
            Some(3),
        ),
        (
            "GET",
            "/admin/users",
            "api",
            None,
            None,
            "token_missing",
            Some(4),
        ),
        (
            "GET",
            "/admin/users",
            "api",
            None,
            Some(&admin),
            "role_granted",
            Some(4),
        ),
        (
            "GET",
            "/admin/users",
            "api",
            None,
            Some(&not_admin),
            "role_required",
            Some(4),
        ),
        (
            "POST",
            "/deploy",
            "api",
            Some(deployer),
            Some(&release),
            "role_granted",
            Some(5),
        ),
        (
            "POST",
            "/deploy",
            "api",
            Some(shop),
            Some(&release),
            "role_required",
            Some(5),
        ),
        (
            "POST",
            "/deploy",
            "api",
            Some(deployer),
            None,
            "token_missing",
            Some(5),
        ),
    ];
    for (method, path, host, peer, tok, code, rule) in cases {
        let headers: Vec<(String, String)> = tok
            .iter()
            .map(|t| ("authorization".to_string(), format!("Bearer {t}")))
            .collect();
        let headers = Headers::from_pairs(&headers);
        let req = Request {
            method,
            path,
            host,
            headers: &headers,
            peer,
            now: NOW,
            crypto: None,
        };
        let d = decide(&policy, &req, &mut TokenCache::disabled(), None);
        let caller = Caller {
            peer: d.identity.peer.as_ref().map(|p| p.as_str()),
            token: d
                .identity
                .token
                .as_ref()
                .map(|t| (t.provider, &t.token.claims)),
        };
        let canonical = oracle::operation_path(&cfg, path).unwrap();
        let want = oracle::authorize(
            &cfg,
            method,
            &oracle::operation_host(host),
            canonical,
            caller,
        );
        let case = format!(
            "{method} {host}{path} peer={peer:?} token={}",
            tok.is_some()
        );
        assert_eq!(want, Verdict { code, rule }, "oracle: {case}");
        assert_eq!((d.reason.code(), d.rule), (code, rule), "engine: {case}");
        let held = oracle::held_roles(&cfg, caller);
        assert!(d.roles.iter().all(|r| held.contains(r)), "roles: {case}");
        assert_eq!(
            code == "role_granted",
            !d.roles.is_empty() && d.allowed(),
            "roles: {case}"
        );
    }
}

#[test]
fn path_tricks_and_peer_ids() {
    for trick in [
        "//a",
        "/a/./b",
        "/a/../b",
        "/a/%2e%2e/b",
        "/a%2Fb",
        "/a\\b",
        "/a;x",
        "/a#f",
        "/a/..?q",
    ] {
        assert!(oracle::hides_a_trick(trick), "{trick}");
        assert_eq!(oracle::operation_path(&config(), trick), None, "{trick}");
    }
    for fine in ["/", "/a/", "/a/b.png?x=//", "/a%20b"] {
        assert!(!oracle::hides_a_trick(fine), "{fine}");
        assert!(oracle::operation_path(&config(), fine).is_some(), "{fine}");
    }
    assert_eq!(
        oracle::spiffe_parts("spiffe://td/ns/sa/sa/x"),
        Some(("td", "sa", "x"))
    );
    for odd in [
        "spiffe://td/ns/a/sa/b/",
        "spiffe://Td/ns/a/sa/b",
        "spiffe://td/ns/a/sa/b,spiffe://td/ns/c/sa/d",
        "spiffe://td/ns//sa/b",
    ] {
        assert_eq!(oracle::spiffe_parts(odd), None, "{odd}");
    }
    let cfg = config();
    let shop = ("old.example.com", "shop", "web");
    assert!(oracle::principal_matches(
        "spiffe://cluster.local/ns/shop/*",
        &["cluster.local", "old.example.com"],
        shop
    ));
    assert!(!oracle::principal_matches(
        "spiffe://partner.example/*",
        &["cluster.local"],
        shop
    ));
    assert!(oracle::holds(
        &cfg,
        &cfg["roles"][0],
        Caller {
            peer: Some("spiffe://cluster.local/ns/shop/sa/a"),
            token: None
        }
    ));
}
