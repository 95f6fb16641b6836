//! Table-driven tests of the whole decision procedure: a real policy, real
//! signed tokens (Ed25519, signed over hand-written JSON) and SPIFFE peers.
//! They run natively and, via `make test-wasm`, inside V8.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crate::config::Mode;
use crate::engine::trace::{Condition, TokenCheck};
use crate::jwt::TokenError;
use crate::policy::Policy;
use crate::request::headers::Headers;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use std::sync::OnceLock;

pub(crate) const NOW: u64 = 1_800_000_000;
pub(crate) const GITLAB: &str = "https://gitlab.example.com";
pub(crate) const OKTA: &str = "https://example.okta.com/oauth2/default";

pub(crate) struct Fx {
    pub(crate) gitlab: Ed25519KeyPair,
    pub(crate) okta: Ed25519KeyPair,
    pub(crate) policy: Policy,
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn jwk(kp: &Ed25519KeyPair, kid: &str) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig", "x": b64(&kp.public_key().to_bytes())})
}

pub(crate) fn policy_json(gitlab: &Ed25519KeyPair, okta: &Ed25519KeyPair, mode: &str) -> String {
    json!({
        "schema_version": 1,
        "policy_version": "test-1",
        "mode": mode,
        "trust_domain": "cluster.local",
        "trust_domain_aliases": ["old.example.com"],
        "providers": [
            {"name": "gitlab", "issuer": GITLAB, "audiences": ["https://deploy.example.com"],
             "algorithms": ["EdDSA"], "jwks": {"keys": [jwk(gitlab, "gl1")]}, "max_lifetime_seconds": 3600},
            {"name": "okta", "issuer": OKTA, "audiences": ["api://shop"], "algorithms": ["EdDSA"],
             "jwks": {"keys": [jwk(okta, "ok1")]},
             "from": [{"header": {"name": "authorization", "prefix": "Bearer "}}, {"query": "access_token"}, {"cookie": "okta_token"}]}
        ],
        "roles": [
            {"name": "frontend", "principals": ["ns/shop/sa/frontend"]},
            {"name": "shop-ns", "principals": ["ns/shop/*"]},
            {"name": "partner", "principals": ["spiffe://partner.example/*"]},
            {"name": "release", "principals": ["ns/ci/sa/deployer"],
             "jwt": {"provider": "gitlab", "claims": [
                 {"claim": "namespace_path", "equals": "platform"},
                 {"claim": "ref_protected", "equals": "true"}]}},
            {"name": "admin", "jwt": {"provider": "okta", "claims": [{"claim": "groups", "contains": "admins"}]}},
            {"name": "reader", "jwt": {"provider": "okta", "claims": [{"claim": "scp", "scope_contains": "orders.read"}]}},
            {"name": "realm", "jwt": {"provider": "okta", "claims": [
                {"claim": "realm_access.roles", "contains": "auditor"},
                {"claim": "level", "one_of": [3, 4]},
                {"claim": "mfa", "equals": true}]}}
        ],
        "rules": [
            {"name": "no-debug", "effect": "deny", "paths": ["/debug/{**}"]},
            {"name": "no-partner-writes", "effect": "deny", "roles": ["partner"], "methods": ["POST", "PUT", "DELETE"]},
            {"name": "health", "public": true, "methods": ["GET"], "paths": ["/healthz"]},
            {"name": "deploy", "roles": ["release"], "methods": ["POST"], "paths": ["/deploy"]},
            {"name": "admin", "roles": ["admin"], "paths": ["/admin/{**}"], "hosts": ["api.example.com"]},
            {"name": "orders-read", "roles": ["reader", "frontend"], "methods": ["GET"], "paths": ["/orders/{*}", "/orders"]},
            {"name": "audit-log", "roles": ["realm"], "methods": ["GET"], "paths": ["/audit*"]},
            {"name": "shop-static", "roles": ["shop-ns", "partner"], "paths": ["/static/*", "*.png"]}
        ],
        "forward": {"principal_header": "x-oam-principal", "subject_header": "x-oam-subject",
                    "roles_header": "x-oam-roles", "claim_headers": {"x-oam-project": "project_path"}}
    })
    .to_string()
}

pub(crate) fn fx() -> &'static Fx {
    static FX: OnceLock<Fx> = OnceLock::new();
    FX.get_or_init(|| {
        let gitlab = Ed25519KeyPair::generate();
        let okta = Ed25519KeyPair::generate();
        let policy = Policy::from_json(&policy_json(&gitlab, &okta, "enforce")).unwrap();
        Fx {
            gitlab,
            okta,
            policy,
        }
    })
}

pub(crate) fn sign(kp: &Ed25519KeyPair, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}).to_string();
    let input = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = kp.key_pair().as_ref().sk.sign(input.as_bytes(), None);
    format!("{input}.{}", b64(&sig[..]))
}

pub(crate) fn gitlab_token(patch: Value) -> String {
    let mut c = json!({"iss": GITLAB, "aud": "https://deploy.example.com", "sub": "project_path:platform/app:ref_type:branch:ref:main",
        "iat": NOW - 60, "exp": NOW + 600, "namespace_path": "platform", "project_path": "platform/app",
        "ref_protected": "true", "ref": "main"});
    merge(&mut c, patch);
    sign(&fx().gitlab, "gl1", &c)
}

pub(crate) fn okta_token(patch: Value) -> String {
    let mut c = json!({"iss": OKTA, "aud": "api://shop", "sub": "alice@example.com", "iat": NOW - 60, "exp": NOW + 600});
    merge(&mut c, patch);
    sign(&fx().okta, "ok1", &c)
}

fn merge(c: &mut Value, patch: Value) {
    for (k, v) in patch.as_object().cloned().unwrap_or_default() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(&k);
        } else {
            c[k] = v;
        }
    }
}

pub(crate) const FRONTEND: &str = "spiffe://cluster.local/ns/shop/sa/frontend";
const FRONTEND_ALIAS: &str = "spiffe://old.example.com/ns/shop/sa/frontend";
const ORDERS: &str = "spiffe://cluster.local/ns/shop/sa/orders";
pub(crate) const DEPLOYER: &str = "spiffe://cluster.local/ns/ci/sa/deployer";
const BUILDER: &str = "spiffe://cluster.local/ns/ci/sa/builder";
const PARTNER: &str = "spiffe://partner.example/ns/x/sa/y";
const STRANGER: &str = "spiffe://evil.example/ns/shop/sa/frontend";

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    host: &'static str,
    peer: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
    want: &'static str,
    rule: Option<&'static str>,
}

fn case(
    name: &'static str,
    method: &'static str,
    path: &'static str,
    peer: Option<&'static str>,
) -> Case {
    Case {
        name,
        method,
        path,
        host: "api.example.com",
        peer,
        headers: vec![],
        want: "",
        rule: None,
    }
}

impl Case {
    fn bearer(mut self, t: String) -> Self {
        self.headers.push(("authorization", format!("Bearer {t}")));
        self
    }
    fn header(mut self, k: &'static str, v: String) -> Self {
        self.headers.push((k, v));
        self
    }
    fn host(mut self, h: &'static str) -> Self {
        self.host = h;
        self
    }
    fn want(mut self, code: &'static str, rule: Option<&'static str>) -> Self {
        self.want = code;
        self.rule = rule;
        self
    }
}

fn run(policy: &Policy, c: &Case) -> Decision {
    let headers = Headers::from_pairs(&c.headers);
    let req = Request {
        method: c.method,
        path: c.path,
        host: c.host,
        headers: &headers,
        peer: c.peer,
        now: NOW,
        crypto: None,
    };
    decide(policy, &req, &mut TokenCache::disabled(), None)
}

#[test]
fn decision_table() {
    let gl = gitlab_token(json!({}));
    let admin = okta_token(json!({"groups": ["staff", "admins"]}));
    let cases = vec![
        // mTLS principal kinds
        case(
            "exact SA via relative pattern",
            "GET",
            "/orders/42",
            Some(FRONTEND),
        )
        .want("role_granted", Some("orders-read")),
        case("alias trust domain", "GET", "/orders", Some(FRONTEND_ALIAS))
            .want("role_granted", Some("orders-read")),
        case("namespace wildcard", "GET", "/static/app.js", Some(ORDERS))
            .want("role_granted", Some("shop-static")),
        case("suffix path", "GET", "/img/logo.png", Some(ORDERS))
            .want("role_granted", Some("shop-static")),
        case(
            "foreign trust domain wildcard",
            "GET",
            "/static/x",
            Some(PARTNER),
        )
        .want("role_granted", Some("shop-static")),
        // A covering rule also accepts a token role, so the answer is "send a token".
        case(
            "untrusted domain same ns/sa",
            "GET",
            "/orders/1",
            Some(STRANGER),
        )
        .want("token_missing", Some("orders-read")),
        case("wrong SA", "GET", "/orders/1", Some(ORDERS))
            .want("token_missing", Some("orders-read")),
        case(
            "wrong SA, mTLS-only rule",
            "GET",
            "/static/a",
            Some(BUILDER),
        )
        .want("role_required", Some("shop-static")),
        case(
            "untrusted domain, mTLS-only rule",
            "GET",
            "/static/a",
            Some(STRANGER),
        )
        .want("role_required", Some("shop-static")),
        case("no peer, no token", "GET", "/orders/1", None)
            .want("token_missing", Some("orders-read")),
        case("{*} is one segment", "GET", "/orders/1/2", Some(FRONTEND))
            .want("no_matching_rule", None),
        case("method not covered", "DELETE", "/orders/1", Some(FRONTEND))
            .want("no_matching_rule", None),
        // deny wins
        case(
            "deny everyone on /debug",
            "GET",
            "/debug/vars",
            Some(FRONTEND),
        )
        .want("denied_by_rule", Some("no-debug")),
        case("deny by role", "POST", "/static/x", Some(PARTNER))
            .want("denied_by_rule", Some("no-partner-writes")),
        case("public with token-less call", "GET", "/healthz", None)
            .want("public_rule", Some("health")),
        case("public only for GET", "POST", "/healthz", None).want("no_matching_rule", None),
        // both conditions
        case(
            "deployer SA + protected token",
            "POST",
            "/deploy",
            Some(DEPLOYER),
        )
        .bearer(gl.clone())
        .want("role_granted", Some("deploy")),
        case("token without SA", "POST", "/deploy", None)
            .bearer(gl.clone())
            .want("role_required", Some("deploy")),
        case("wrong SA with token", "POST", "/deploy", Some(BUILDER))
            .bearer(gl.clone())
            .want("role_required", Some("deploy")),
        case("SA without token", "POST", "/deploy", Some(DEPLOYER))
            .want("token_missing", Some("deploy")),
        case("unprotected branch", "POST", "/deploy", Some(DEPLOYER))
            .bearer(gitlab_token(json!({"ref_protected": "false"})))
            .want("role_required", Some("deploy")),
        case(
            "bool true is not the string \"true\"",
            "POST",
            "/deploy",
            Some(DEPLOYER),
        )
        .bearer(gitlab_token(json!({"ref_protected": true})))
        .want("role_required", Some("deploy")),
        case("other group", "POST", "/deploy", Some(DEPLOYER))
            .bearer(gitlab_token(json!({"namespace_path": "platform-evil"})))
            .want("role_required", Some("deploy")),
        case(
            "okta token for gitlab role",
            "POST",
            "/deploy",
            Some(DEPLOYER),
        )
        .bearer(admin.clone())
        .want("role_required", Some("deploy")),
        // claim kinds
        case("contains in array", "GET", "/admin/users", None)
            .bearer(admin.clone())
            .want("role_granted", Some("admin")),
        case("host case and port", "GET", "/admin/users", None)
            .bearer(admin.clone())
            .host("API.Example.COM:8443")
            .want("role_granted", Some("admin")),
        case("other host", "GET", "/admin/users", None)
            .bearer(admin.clone())
            .host("other.example.com")
            .want("no_matching_rule", None),
        case("array missing value", "GET", "/admin/users", None)
            .bearer(okta_token(json!({"groups": ["staff"]})))
            .want("role_required", Some("admin")),
        case(
            "groups as string is not an array",
            "GET",
            "/admin/users",
            None,
        )
        .bearer(okta_token(json!({"groups": "admins"})))
        .want("role_required", Some("admin")),
        case("scope contains", "GET", "/orders/7", None)
            .bearer(okta_token(json!({"scp": "profile orders.read email"})))
            .want("role_granted", Some("orders-read")),
        case("scope word must match exactly", "GET", "/orders/7", None)
            .bearer(okta_token(json!({"scp": "orders.read.all"})))
            .want("role_required", Some("orders-read")),
        case("nested + one_of number + bool", "GET", "/audit/2026", None)
            .bearer(okta_token(
                json!({"realm_access": {"roles": ["auditor"]}, "level": 4, "mfa": true}),
            ))
            .want("role_granted", Some("audit-log")),
        case("one_of number miss", "GET", "/audit", None)
            .bearer(okta_token(
                json!({"realm_access": {"roles": ["auditor"]}, "level": 2, "mfa": true}),
            ))
            .want("role_required", Some("audit-log")),
        case("bool false", "GET", "/audit", None)
            .bearer(okta_token(
                json!({"realm_access": {"roles": ["auditor"]}, "level": 3, "mfa": false}),
            ))
            .want("role_required", Some("audit-log")),
        // token locations
        case("query token", "GET", "/admin/x", None)
            .header("x-ignored", String::new())
            .want("token_missing", Some("admin")),
        // token failures are 401 even on public paths
        case("invalid token on public path", "GET", "/healthz", None)
            .bearer("a.b.c".into())
            .want("token_malformed", None),
        case("expired", "GET", "/admin/x", None)
            .bearer(okta_token(
                json!({"groups": ["admins"], "exp": NOW - 3600, "iat": NOW - 7200}),
            ))
            .want("token_expired", None),
        case("not yet valid", "GET", "/admin/x", None)
            .bearer(okta_token(json!({"groups": ["admins"], "nbf": NOW + 3600})))
            .want("token_not_yet_valid", None),
        case(
            "lifetime over provider max",
            "POST",
            "/deploy",
            Some(DEPLOYER),
        )
        .bearer(gitlab_token(json!({"iat": NOW - 60, "exp": NOW + 7200})))
        .want("token_lifetime_too_long", None),
        case("wrong audience", "GET", "/admin/x", None)
            .bearer(okta_token(
                json!({"groups": ["admins"], "aud": "api://other"}),
            ))
            .want("token_audience_mismatch", None),
        case("unknown issuer on shared header", "GET", "/admin/x", None)
            .bearer(okta_token(json!({"iss": "https://evil.example.com"})))
            .want("token_issuer_unknown", None),
        case(
            "gitlab-signed token claiming okta issuer",
            "GET",
            "/admin/x",
            None,
        )
        .bearer(sign(
            &fx().gitlab,
            "ok1",
            &json!({"iss": OKTA, "aud": "api://shop", "exp": NOW + 60, "groups": ["admins"]}),
        ))
        .want("token_bad_signature", None),
        case("two authorization headers", "GET", "/admin/x", None)
            .bearer(admin.clone())
            .bearer(admin.clone())
            .want("multiple_tokens", None),
        case("joined authorization values", "GET", "/admin/x", None)
            .header("authorization", format!("Bearer {admin},Bearer {admin}"))
            .want("multiple_tokens", None),
        case("basic plus bearer", "GET", "/admin/x", None)
            .header("authorization", "Basic YWxpY2U6cHc=".into())
            .bearer(admin.clone())
            .want("multiple_tokens", None),
        case("basic only is no token", "GET", "/admin/x", None)
            .header("authorization", "Basic YWxpY2U6cHc=".into())
            .want("token_missing", Some("admin")),
        case("lowercase scheme", "GET", "/admin/x", None)
            .header("authorization", format!("bearer {admin}"))
            .want("role_granted", Some("admin")),
        case("empty bearer", "GET", "/admin/x", None)
            .header("authorization", "Bearer ".into())
            .want("token_malformed", None),
        case("cookie token", "GET", "/admin/x", None)
            .header("cookie", format!("theme=dark; okta_token={admin}"))
            .want("role_granted", Some("admin")),
        case("header and cookie", "GET", "/admin/x", None)
            .bearer(admin.clone())
            .header("cookie", format!("okta_token={admin}"))
            .want("multiple_tokens", None),
        // path tricks never reach rule matching
        case("double slash", "GET", "//admin/x", None)
            .bearer(admin.clone())
            .want("path_not_canonical", None),
        case("encoded slash", "GET", "/admin%2Fx", None).want("path_not_canonical", None),
        case("dot-dot", "GET", "/healthz/../debug/x", None).want("path_not_canonical", None),
        case("encoded dot", "GET", "/static/%2e%2e/debug/x", Some(ORDERS))
            .want("path_not_canonical", None),
        // `/orders/{*}` would match; an upstream decoding twice sees /orders/internal
        case(
            "double-encoded escape",
            "GET",
            "/orders/%2569nternal",
            Some(FRONTEND),
        )
        .want("path_not_canonical", None),
        case(
            "encoded percent before text",
            "GET",
            "/orders/100%25done",
            Some(FRONTEND),
        )
        .want("role_granted", Some("orders-read")),
        case(
            "query ignored for matching",
            "GET",
            "/healthz?x=/debug/a",
            None,
        )
        .want("public_rule", Some("health")),
    ];
    let mut failures = Vec::new();
    for c in &cases {
        let d = run(&fx().policy, c);
        let rule = fx().policy.rule_name(d.rule);
        if d.reason.code() != c.want || rule != c.rule {
            failures.push(format!(
                "{}: got {} rule {:?}, want {} rule {:?}",
                c.name,
                d.reason.code(),
                rule,
                c.want,
                c.rule
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// `allow_encoded_percent`: the opt-out for paths that really carry a
/// literal `%` before hex digits; everything else stays refused.
#[test]
fn allow_encoded_percent_accepts_only_encoded_percent_signs() {
    let mut cfg: Value =
        serde_json::from_str(&policy_json(&fx().gitlab, &fx().okta, "enforce")).unwrap();
    cfg["allow_encoded_percent"] = json!(true);
    let policy = Policy::from_json(&cfg.to_string()).unwrap();
    for (path, want) in [
        ("/orders/100%2541", "role_granted"),
        ("/orders/%2569nternal", "role_granted"),
        ("/orders/%2Fx", "path_not_canonical"),
        ("/orders/%61", "path_not_canonical"),
    ] {
        let d = run(&policy, &case("opt-out", "GET", path, Some(FRONTEND)));
        assert_eq!(d.reason.code(), want, "{path}");
    }
    let strict = run(
        &fx().policy,
        &case("strict", "GET", "/orders/100%2541", Some(ORDERS)),
    );
    assert_eq!(
        strict.reason,
        Reason::PathNotCanonical(crate::pattern::path::PathError::DoubleEncoded)
    );
}

#[test]
fn query_token_is_found_and_verified() {
    let admin = okta_token(json!({"groups": ["admins"]}));
    let path = format!("/admin/x?access_token={admin}&page=2");
    let headers = Headers::default();
    let req = Request {
        method: "GET",
        path: &path,
        host: "api.example.com",
        headers: &headers,
        peer: None,
        now: NOW,
        crypto: None,
    };
    let d = decide(&fx().policy, &req, &mut TokenCache::disabled(), None);
    assert_eq!(d.reason.code(), "role_granted");
    assert_eq!(
        d.token_location,
        Some(TokenLocation::Query("access_token".into()))
    );
    assert_eq!(fx().policy.role_names(&d.roles), vec!["admin"]);
    assert_eq!(
        d.identity.token.unwrap().token.subject.as_deref(),
        Some("alice@example.com")
    );
}

#[test]
fn statuses_follow_reasons() {
    let expect = [
        ("public_rule", 200),
        ("role_granted", 200),
        ("path_not_canonical", 400),
        ("multiple_tokens", 400),
        ("token_missing", 401),
        ("token_expired", 401),
        ("denied_by_rule", 403),
        ("role_required", 403),
        ("no_matching_rule", 403),
    ];
    let admin = okta_token(json!({"groups": ["admins"]}));
    let cases = [
        case("", "GET", "/healthz", None),
        case("", "GET", "/admin/a", None).bearer(admin.clone()),
        case("", "GET", "//x", None),
        case("", "GET", "/x", None)
            .bearer(admin.clone())
            .bearer(admin),
        case("", "GET", "/admin/a", None),
        case("", "GET", "/admin/a", None)
            .bearer(okta_token(json!({"exp": NOW - 1000, "iat": NOW - 2000}))),
        case("", "GET", "/debug/a", None),
        case("", "GET", "/static/a", Some(BUILDER)),
        case("", "GET", "/nothing", Some(ORDERS)),
    ];
    for (c, (code, status)) in cases.iter().zip(expect) {
        let d = run(&fx().policy, c);
        assert_eq!((d.reason.code(), d.status()), (code, status));
    }
}

#[test]
fn explain_trace_names_failing_conditions() {
    let f = fx();
    let tok = gitlab_token(json!({"ref_protected": "false"}));
    let headers = Headers::from_pairs(&[("authorization", format!("Bearer {tok}"))]);
    let req = Request {
        method: "POST",
        path: "/deploy",
        host: "h",
        headers: &headers,
        peer: Some(BUILDER),
        now: NOW,
        crypto: None,
    };
    let mut trace = Trace::default();
    let d = decide(
        &f.policy,
        &req,
        &mut TokenCache::disabled(),
        Some(&mut trace),
    );
    assert_eq!(d.reason.code(), "role_required");
    let release_ix = f.policy.role_index("release").unwrap();
    let release = trace.roles.iter().find(|r| r.role == release_ix).unwrap();
    assert!(!release.held);
    // The peer matches no pattern; the token is gitlab's; the first claim
    // holds, the second (ref_protected) does not.
    assert_eq!(
        release.conditions,
        vec![
            Condition::Principal { matched: None },
            Condition::Token(TokenCheck::Present),
            Condition::Claim {
                index: 0,
                held: true
            },
            Condition::Claim {
                index: 1,
                held: false
            },
        ]
    );
    let deploy_ix = f
        .policy
        .rules
        .iter()
        .position(|r| r.name == "deploy")
        .unwrap();
    let deploy = trace.rules.iter().find(|r| r.rule == deploy_ix).unwrap();
    assert!(deploy.covers_operation && !deploy.applies_to_caller);
    assert_eq!(trace.roles.len(), f.policy.roles.len());
    assert_eq!(trace.rules.len(), f.policy.rules.len());
}

#[test]
fn audit_mode_compiles_and_keeps_the_decision() {
    let f = fx();
    let p = Policy::from_json(&policy_json(&f.gitlab, &f.okta, "audit")).unwrap();
    assert_eq!(p.mode, Mode::Audit);
    let d = run(&p, &case("", "GET", "/debug/x", None));
    assert_eq!(d.reason.code(), "denied_by_rule");
}

/// Roles past the 64th are remembered apart from the first 64 (bit sets):
/// both halves decide and report alike.
#[test]
fn many_roles_decide_and_report_in_order() {
    let roles: Vec<Value> = (0..70)
        .map(|i| json!({"name": format!("r{i}"), "principals": [format!("ns/n{i}/sa/s")]}))
        .collect();
    let cfg = json!({"schema_version": 1, "trust_domain": "cluster.local", "roles": roles,
        "rules": [{"name": "low", "roles": ["r3"], "paths": ["/low"]},
                  {"name": "high", "roles": ["r66", "r69"], "paths": ["/high"]}]})
    .to_string();
    let policy = Policy::from_json(&cfg).unwrap();
    let headers = Headers::default();
    let cases: [(&str, &str, &str, Vec<&str>); 3] = [
        (
            "/low",
            "spiffe://cluster.local/ns/n3/sa/s",
            "role_granted",
            vec!["r3"],
        ),
        (
            "/high",
            "spiffe://cluster.local/ns/n69/sa/s",
            "role_granted",
            vec!["r69"],
        ),
        // Only the roles the covering rules name are consulted.
        (
            "/high",
            "spiffe://cluster.local/ns/n3/sa/s",
            "role_required",
            vec![],
        ),
    ];
    for (path, peer, want, held) in cases {
        let req = Request {
            method: "GET",
            path,
            host: "h",
            headers: &headers,
            peer: Some(peer),
            now: NOW,
            crypto: None,
        };
        let d = decide(&policy, &req, &mut TokenCache::disabled(), None);
        assert_eq!(d.reason.code(), want, "{path} {peer}");
        assert_eq!(policy.role_names(&d.roles), held, "{path} {peer}");
    }
}

/// The behaviours docs/differences.md lists where the filter differs from
/// Envoy's native jwt_authn and rbac filters, one assertion each.
#[test]
fn documented_differences_from_envoy_native_filters() {
    // A SPIFFE ID with upper case or '_' in its namespace or service account
    // is no identity: it holds no role, so a role-scoped deny rule does not
    // apply to it (RBAC would match the string).
    let cfg = json!({"schema_version": 1, "trust_domain": "cluster.local",
        "roles": [{"name": "partner", "principals": ["spiffe://partner.example/*"]}],
        "rules": [{"name": "no-partners", "effect": "deny", "roles": ["partner"], "paths": ["/x"]},
                  {"name": "open", "public": true, "paths": ["/x"]}]});
    let policy = Policy::from_json(&cfg.to_string()).unwrap();
    let valid = run(&policy, &case("valid", "GET", "/x", Some(PARTNER)));
    assert_eq!(valid.reason, Reason::DeniedByRule);
    for odd in [
        "spiffe://partner.example/ns/X/sa/y",
        "spiffe://partner.example/ns/x/sa/y_1",
    ] {
        let d = run(&policy, &case("odd peer", "GET", "/x", Some(odd)));
        assert_eq!(d.reason, Reason::PublicRule, "{odd}");
        assert_eq!(d.identity.peer, None, "{odd}");
    }
    // `Authorization: Bearer` with nothing after it (Envoy trims the space)
    // is a token that fails, not a missing one.
    let empty = run(
        &fx().policy,
        &case("empty bearer", "GET", "/admin/x", None).header("authorization", "Bearer".into()),
    );
    assert!(
        matches!(
            empty.reason,
            Reason::InvalidToken(TokenError::BadStructure { .. })
        ),
        "{:?}",
        empty.reason
    );
    // The scheme is case-insensitive (RFC 7235); jwt_authn's prefix is not.
    let admin = okta_token(json!({"groups": ["admins"]}));
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let d = run(
            &fx().policy,
            &case("scheme", "GET", "/admin/x", None)
                .header("authorization", format!("{scheme} {admin}")),
        );
        assert_eq!(d.reason, Reason::RoleGranted, "{scheme}");
    }
    // A query-parameter token is taken as written, not percent-decoded.
    let encoded = admin.replace('.', "%2E");
    let path: &'static str = Box::leak(format!("/admin/x?access_token={encoded}").into_boxed_str());
    let d = run(
        &fx().policy,
        &case("encoded query token", "GET", path, None),
    );
    assert!(
        matches!(
            d.reason,
            Reason::InvalidToken(TokenError::BadStructure { .. })
        ),
        "{:?}",
        d.reason
    );
}
