//! The handler with a shadow policy, per-rule counters and the audit
//! event's replay facts, against the `FakeHost` double.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::type_complexity)]

use super::tests::{audit_events, request, run};
use super::*;
use crate::engine::tests::{fx, okta_token, policy_json, FRONTEND};
use crate::testing::FakeHost;
use serde_json::{json, Value};

const ORDERS: &str = "spiffe://cluster.local/ns/shop/sa/orders";

fn base() -> Value {
    let f = fx();
    serde_json::from_str(&policy_json(&f.gitlab, &f.okta, "enforce")).unwrap()
}

/// The base policy, shadowed by a copy where `admin` needs the `ops`
/// group, `orders-read` is gone and POSTs to `/static/*` are denied.
fn shadowed() -> (FakeHost, Loaded) {
    let mut s = base();
    s["policy_version"] = json!("test-2");
    s["roles"][4]["jwt"]["claims"][0] = json!({"claim": "groups", "contains": "ops"});
    s["rules"].as_array_mut().unwrap().remove(5);
    s["rules"].as_array_mut().unwrap().push(
        json!({"name": "no-static-post", "effect": "deny", "methods": ["POST"], "paths": ["/static/*"]}),
    );
    let mut cfg = base();
    cfg["shadow"] = s;
    let mut host = FakeHost::default();
    let l = configure(&mut host, Some(cfg.to_string().as_bytes())).unwrap();
    (host, l)
}

#[test]
fn shadow_changes_are_reported_and_counted_by_kind() {
    let (mut host, l) = shadowed();
    assert!(host.log.contains("; shadow test-2"), "{:?}", host.log.lines);
    let admins = format!("Bearer {}", okta_token(json!({"groups": ["admins"]})));
    let ops = format!("Bearer {}", okta_token(json!({"groups": ["ops"]})));
    // (method, path, peer, token, shadow object wanted: decision, status, reason, rule)
    let table: Vec<(&str, &str, Option<&str>, Option<&str>, Option<Value>)> = vec![
        (
            "GET",
            "/admin/x",
            None,
            Some(&admins),
            Some(
                json!({"decision": "deny", "status": 403, "reason": "role_required", "rule": "admin", "policy_version": "test-2"}),
            ),
        ),
        (
            "GET",
            "/admin/x",
            None,
            Some(&ops),
            Some(
                json!({"decision": "allow", "status": 200, "reason": "role_granted", "rule": "admin", "policy_version": "test-2"}),
            ),
        ),
        (
            "GET",
            "/orders/1",
            Some(FRONTEND),
            None,
            Some(
                json!({"decision": "deny", "status": 403, "reason": "no_matching_rule", "rule": null, "policy_version": "test-2"}),
            ),
        ),
        (
            "GET",
            "/orders/1",
            None,
            None,
            Some(
                json!({"decision": "deny", "status": 403, "reason": "no_matching_rule", "rule": null, "policy_version": "test-2"}),
            ),
        ),
        (
            "POST",
            "/static/x.png",
            Some(ORDERS),
            None,
            Some(
                json!({"decision": "deny", "status": 403, "reason": "denied_by_rule", "rule": "no-static-post", "policy_version": "test-2"}),
            ),
        ),
        ("GET", "/healthz", None, None, None),
        ("GET", "/static/x.png", Some(ORDERS), None, None),
    ];
    for (method, path, peer, token, want) in &table {
        let extra: Vec<(&str, &str)> = token.iter().map(|t| ("authorization", *t)).collect();
        request(&mut host, method, path, *peer, &extra);
        run(&mut host, &l);
        let ev = &audit_events(&host)[0];
        assert_eq!(ev.get("shadow"), want.as_ref(), "{method} {path}: {ev}");
    }
    let c = |n: &str| host.metrics.counter(&format!("oam_authz.{n}"));
    assert_eq!(
        (
            c("shadow.allow_to_deny"),
            c("shadow.deny_to_allow"),
            c("shadow.reason_changed")
        ),
        (3, 1, 1)
    );
    // What the shadow never changes: the response.
    assert_eq!(
        (
            c("allowed"),
            c("denied.role_required"),
            c("denied.token_missing")
        ),
        (5, 1, 1)
    );
    // Per-rule hits of both, names made metric-safe.
    assert_eq!(
        (
            c("rule_hits.admin"),
            c("rule_hits.orders_read"),
            c("rule_hits.shop_static")
        ),
        (2, 2, 2)
    );
    assert_eq!(c("rule_hits.health"), 1);
    assert_eq!(
        (
            c("shadow.rule_hits.admin"),
            c("shadow.rule_hits.no_static_post")
        ),
        (2, 1)
    );
    assert_eq!(c("shadow.rule_hits.shop_static"), 1);
    assert_eq!(
        c("rule_hits.no_debug"),
        0,
        "defined, never hit: a dead rule shows as 0"
    );
}

#[test]
fn events_record_what_a_replay_needs() {
    let mut host = FakeHost::default();
    let mut cfg = base();
    cfg["roles"][4]["jwt"]["claims"][0] = json!({"claim": "org.teams", "contains": "admins"});
    let l = configure(&mut host, Some(cfg.to_string().as_bytes())).unwrap();
    let tok = okta_token(
        json!({"org": {"teams": ["admins"], "secret": "x"}, "groups": ["g"], "scp": "a b"}),
    );
    let bearer = format!("Bearer {tok}");
    request(
        &mut host,
        "GET",
        "/admin/x",
        Some(FRONTEND),
        &[("authorization", &bearer)],
    );
    run(&mut host, &l);
    let ev = &audit_events(&host)[0];
    let digest = l.policy.providers[1].digest().to_string();
    assert_eq!(digest.len(), 16);
    let gitlab = l.policy.providers[0].digest().to_string();
    assert_eq!(
        ev["token"],
        json!({"from": "header:authorization Bearer", "provider": "okta", "digest": digest, "candidates": [gitlab, digest]})
    );
    assert_eq!(
        ev["token_sources"],
        json!([
            "header:authorization Bearer",
            "query:access_token",
            "cookie:okta_token"
        ])
    );
    // The claims roles consult (absent ones as null), aud; never more.
    assert_eq!(
        ev["claims"],
        json!({"namespace_path": null, "ref_protected": null, "org.teams": ["admins"], "scp": "a b",
               "realm_access.roles": null, "level": null, "mfa": null, "aud": "api://shop"})
    );
    assert!(ev.get("shadow").is_none(), "no shadow, no shadow object");

    // A refused token: where, and which provider refused it; no claims.
    let expired = format!(
        "Bearer {}",
        okta_token(json!({"exp": crate::engine::tests::NOW - 100}))
    );
    request(
        &mut host,
        "GET",
        "/admin/x",
        None,
        &[("authorization", &expired)],
    );
    run(&mut host, &l);
    let ev = &audit_events(&host)[0];
    assert_eq!(ev["reason"], "token_expired");
    assert_eq!(ev["token"]["provider"], "okta");
    assert_eq!(ev["claims"], Value::Null);
    // Two tokens: no single token to name.
    request(
        &mut host,
        "GET",
        &format!("/admin/x?access_token={tok}"),
        None,
        &[("authorization", &bearer)],
    );
    run(&mut host, &l);
    let ev = &audit_events(&host)[0];
    assert_eq!(
        (ev["reason"].as_str(), &ev["token"]),
        (Some("multiple_tokens"), &Value::Null)
    );
    // No token at all.
    request(&mut host, "GET", "/healthz", None, &[]);
    run(&mut host, &l);
    let ev = &audit_events(&host)[0];
    assert_eq!((&ev["token"], &ev["claims"]), (&Value::Null, &Value::Null));
    assert!(!format!("{:?}", host.log.lines.borrow()).contains(&tok));
}

#[test]
fn an_oversized_claim_is_left_out_of_the_event() {
    let mut host = FakeHost::default();
    let mut cfg = base();
    cfg["audit"] = json!({"claims": ["groups", "sub", "scp"]});
    let l = configure(&mut host, Some(cfg.to_string().as_bytes())).unwrap();
    let groups: Vec<String> = (0..200).map(|i| format!("group-{i:04}")).collect();
    let tok = okta_token(json!({"groups": groups, "scp": "orders.read"}));
    request(
        &mut host,
        "GET",
        "/orders/1",
        None,
        &[("authorization", &format!("Bearer {tok}"))],
    );
    run(&mut host, &l);
    let ev = &audit_events(&host)[0];
    assert_eq!(ev["claims"], json!({"scp": "orders.read"}), "{ev}");
    assert_eq!(ev["sub"], "alice@example.com");
}

#[test]
fn rule_counters_are_metric_safe_and_capped() {
    let mut host = FakeHost::default();
    let mut cfg = base();
    let mut rules: Vec<Value> = ["a-b", "a_b", "a.b", "x:y/z"]
        .iter()
        .map(|n| json!({"name": n, "public": true, "paths": [format!("/{}", n.replace(['/', ':'], ""))]}))
        .collect();
    rules
        .extend((0..MAX_RULE_COUNTERS).map(
            |i| json!({"name": format!("r{i}"), "public": true, "paths": [format!("/r{i}")]}),
        ));
    cfg["rules"] = json!(rules);
    cfg["roles"] = json!([]);
    let l = configure(&mut host, Some(cfg.to_string().as_bytes())).unwrap();
    let names: Vec<String> = host
        .metrics
        .counters
        .borrow()
        .iter()
        .filter(|(n, _)| n.starts_with("oam_authz.rule"))
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(
        names[..4],
        [
            "oam_authz.rule_hits.a_b",
            "oam_authz.rule_hits.a_b_1",
            "oam_authz.rule_hits.a_b_2",
            "oam_authz.rule_hits.x_y_z"
        ]
    );
    assert_eq!(names.len(), MAX_RULE_COUNTERS + 1);
    assert_eq!(names.last().unwrap(), "oam_authz.rules_over_cap_hits");
    for path in ["/r0", "/r251", "/r252", "/r253"] {
        request(&mut host, "GET", path, None, &[]);
        run(&mut host, &l);
    }
    let c = |n: &str| host.metrics.counter(&format!("oam_authz.{n}"));
    assert_eq!(
        (
            c("rule_hits.r0"),
            c("rule_hits.r251"),
            c("rules_over_cap_hits")
        ),
        (1, 1, 2)
    );
}

#[test]
fn a_shadow_provider_the_build_cannot_verify_is_refused_at_load() {
    let mut cfg = base();
    let mut s = base();
    s["providers"].as_array_mut().unwrap().push(json!({
        "name": "pss", "issuer": "https://pss.example.com", "audiences": ["a"], "algorithms": ["PS256"],
        "jwks": {"keys": [crate::jwt::jwks::tests::rsa_jwk(crate::jwt::jwks::tests::rsa_pair(), Some("p1"))]}}));
    cfg["shadow"] = s;
    let p = Policy::from_json(&cfg.to_string()).unwrap();
    let e = crypto_plan(&p, true, false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "shadow.providers[2].algorithms: PS256 needs the full module build (oam_authz_full.wasm): Envoy's verify_signature has no RSA-PSS, and this default build has no software RSA"
    );
}
