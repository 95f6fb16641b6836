//! The shadow decides as it would if it were enforced: for every shadow
//! variant (same providers, a dropped provider, a provider of its own, other
//! path options, another provider order) and every request of a table, the
//! shadow decision is the standalone policy's, and the enforced decision is
//! unchanged. And no token gets its signature checked twice.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::type_complexity)]

use crate::decision::ShadowDecision;
use crate::engine::cache::TokenCache;
use crate::engine::tests::{
    fx, gitlab_token, okta_token, policy_json, sign, DEPLOYER, FRONTEND, NOW, OKTA,
};
use crate::engine::{decide, decide_with_shadow, Request};
use crate::host::SignatureBackend;
use crate::jwt::jwks::tests::es256_jwk;
use crate::policy::Policy;
use crate::request::headers::Headers;
use jwt_simple::prelude::*;
use serde_json::{json, Value};
use std::cell::Cell;
use std::sync::OnceLock;

const AZURE: &str = "https://login.example.net/v2.0";
const ORDERS: &str = "spiffe://cluster.local/ns/shop/sa/orders";

fn azure_key() -> &'static Ed25519KeyPair {
    static K: OnceLock<Ed25519KeyPair> = OnceLock::new();
    K.get_or_init(Ed25519KeyPair::generate)
}

fn base() -> Value {
    let f = fx();
    serde_json::from_str(&policy_json(&f.gitlab, &f.okta, "enforce")).unwrap()
}

/// The shadow variants: a name, and the edit of a copy of the base.
fn variants() -> Vec<(&'static str, Box<dyn Fn(&mut Value)>)> {
    vec![
        (
            "other rules",
            Box::new(|s| {
                s["rules"][4]["hosts"] = Value::Null;
                s["rules"].as_array_mut().unwrap().remove(5);
                s["rules"].as_array_mut().unwrap().push(json!(
                    {"name": "no-static-post", "effect": "deny", "methods": ["POST"], "paths": ["/static/*"]}));
                s["roles"][4]["jwt"]["claims"][0] = json!({"claim": "groups", "contains": "ops"});
            }),
        ),
        (
            "providers reversed",
            Box::new(|s| s["providers"].as_array_mut().unwrap().reverse()),
        ),
        (
            "gitlab dropped",
            Box::new(|s| {
                s["providers"].as_array_mut().unwrap().remove(0);
                s["roles"].as_array_mut().unwrap().remove(3);
                s["rules"].as_array_mut().unwrap().remove(3);
            }),
        ),
        (
            "okta dropped: the query and cookie are no longer read",
            Box::new(|s| {
                s["providers"].as_array_mut().unwrap().remove(1);
                for i in [6, 5, 4] {
                    s["roles"].as_array_mut().unwrap().remove(i);
                }
                for i in [6, 5, 4] {
                    s["rules"].as_array_mut().unwrap().remove(i);
                }
                s["forward"]["claim_headers"] = json!({});
            }),
        ),
        (
            "a provider of its own",
            Box::new(|s| {
                let x = URL_SAFE_NO_PAD_B64(&azure_key().public_key().to_bytes());
                s["providers"].as_array_mut().unwrap().push(json!({
                    "name": "azure", "issuer": AZURE, "audiences": ["api://shop"], "algorithms": ["EdDSA"],
                    "jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "az1", "x": x}]}}));
                s["roles"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "az", "jwt": {"provider": "azure"}}));
                s["rules"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "az", "roles": ["az"], "paths": ["/az", "/admin/{**}"]}));
            }),
        ),
        (
            "encoded percent allowed",
            Box::new(|s| {
                s["allow_encoded_percent"] = json!(true);
                s["rules"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "reports", "public": true, "paths": ["/reports/{*}"]}));
            }),
        ),
    ]
}

#[allow(non_snake_case)]
fn URL_SAFE_NO_PAD_B64(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn azure_token() -> String {
    let c =
        json!({"iss": AZURE, "aud": "api://shop", "sub": "bob", "iat": NOW - 60, "exp": NOW + 600});
    sign(azure_key(), "az1", &c)
}

struct Req {
    method: &'static str,
    path: String,
    host: &'static str,
    peer: Option<&'static str>,
    headers: Vec<(String, String)>,
}

fn req(
    method: &'static str,
    path: &str,
    peer: Option<&'static str>,
    headers: &[(&str, String)],
) -> Req {
    Req {
        method,
        path: path.to_string(),
        host: "api.example.com",
        peer,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

fn requests() -> Vec<Req> {
    let bearer = |t: String| ("authorization", format!("Bearer {t}"));
    let admin = okta_token(json!({"groups": ["admins"]}));
    let forged = {
        let c = json!({"iss": OKTA, "aud": "api://shop", "sub": "mallory", "iat": NOW - 60, "exp": NOW + 600, "groups": ["admins"]});
        sign(&fx().gitlab, "ok1", &c)
    };
    let mut other_host = req("GET", "/admin/x", Some(FRONTEND), &[bearer(admin.clone())]);
    other_host.host = "other.example.com";
    vec![
        req("GET", "/healthz", None, &[]),
        req(
            "POST",
            "/deploy",
            Some(DEPLOYER),
            &[bearer(gitlab_token(json!({})))],
        ),
        req("POST", "/deploy", None, &[bearer(gitlab_token(json!({})))]),
        req("GET", "/admin/x", Some(FRONTEND), &[bearer(admin.clone())]),
        other_host,
        req(
            "GET",
            "/admin/x",
            None,
            &[bearer(okta_token(json!({"groups": ["ops"]})))],
        ),
        req("GET", "/orders/1", Some(FRONTEND), &[]),
        req(
            "GET",
            "/orders/1",
            None,
            &[bearer(okta_token(json!({"scp": "orders.read"})))],
        ),
        req("GET", "/admin/x", None, &[bearer(forged)]),
        req(
            "GET",
            "/admin/x",
            None,
            &[bearer(okta_token(
                json!({"groups": ["admins"], "exp": NOW - 100}),
            ))],
        ),
        req(
            "GET",
            &format!("/admin/x?access_token={admin}"),
            None,
            &[bearer(admin.clone())],
        ),
        req("GET", &format!("/admin/x?access_token={admin}"), None, &[]),
        req(
            "GET",
            "/admin/x",
            None,
            &[("cookie", format!("okta_token={admin}"))],
        ),
        req("GET", "/az", None, &[bearer(azure_token())]),
        req("GET", "/admin/y", None, &[bearer(azure_token())]),
        req("GET", "/admin/y", None, &[bearer(gitlab_token(json!({})))]),
        req("GET", "/reports/100%2541", None, &[]),
        req("GET", "/a/../b", None, &[]),
        req("POST", "/static/x.png", Some(ORDERS), &[]),
        req("GET", "/debug/vars", Some(FRONTEND), &[bearer(admin)]),
    ]
}

fn request<'a>(
    r: &'a Req,
    headers: &'a Headers,
    crypto: Option<&'a dyn SignatureBackend>,
) -> Request<'a> {
    Request {
        method: r.method,
        path: &r.path,
        host: r.host,
        headers,
        peer: r.peer,
        now: NOW,
        crypto,
    }
}

#[test]
fn the_shadow_decides_as_the_policy_would_if_enforced() {
    let enforced_alone = Policy::from_json(&base().to_string()).unwrap();
    let (mut checked, mut differ) = (0, 0);
    for (name, edit) in variants() {
        let mut s = base();
        s["policy_version"] = json!("test-2");
        edit(&mut s);
        let alone = Policy::from_json(&s.to_string()).unwrap();
        let mut cfg = base();
        cfg["shadow"] = s;
        let both = Policy::from_json(&cfg.to_string()).unwrap();
        let shadow = both.shadow.as_deref().unwrap();
        // One cache for the pair across requests, as a VM has: the second
        // pass is served from it.
        let mut cache = TokenCache::new(64);
        for pass in 0..2 {
            for r in requests() {
                let headers = Headers::from_pairs(&r.headers);
                let q = request(&r, &headers, None);
                let (d, sd) = decide_with_shadow(&both, shadow, &q, &mut cache);
                let want = decide(&enforced_alone, &q, &mut TokenCache::disabled(), None);
                let what = format!("{name}, pass {pass}: {} {}", r.method, r.path);
                assert_eq!(
                    (d.reason.code(), d.rule),
                    (want.reason.code(), want.rule),
                    "{what}"
                );
                let want = decide(&alone, &q, &mut TokenCache::disabled(), None);
                assert_eq!(sd, ShadowDecision::of(&want.reason, want.rule), "{what}");
                checked += 1;
                differ += usize::from(sd.reason != d.reason.code() || sd.allowed != d.allowed());
            }
        }
    }
    assert_eq!(checked, 6 * 2 * 20);
    // The table has teeth: many requests are decided otherwise by a shadow.
    assert_eq!(differ, 2 * 31, "{differ}");
}

#[test]
fn the_variants_cover_both_ways() {
    let mut shared = Vec::new();
    for (name, edit) in variants() {
        let mut s = base();
        edit(&mut s);
        let mut cfg = base();
        cfg["shadow"] = s;
        let p = Policy::from_json(&cfg.to_string()).unwrap();
        shared.push((name, p.shadow.unwrap().shares_authentication));
    }
    let ways: Vec<bool> = shared.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        ways,
        vec![true, true, false, false, false, true],
        "{shared:?}"
    );
}

/// A host verifier that counts the signatures it is asked about and leaves
/// each to the software verifier.
#[derive(Debug, Default)]
struct Counting(Cell<u32>);
impl SignatureBackend for Counting {
    fn verify(&self, _: &str, _: &[u8], _: &[u8], _: &[u8]) -> Option<bool> {
        self.0.set(self.0.get() + 1);
        None
    }
}

#[test]
fn no_token_is_checked_twice() {
    let idp = ES256KeyPair::generate().with_key_id("e1");
    let extra = ES256KeyPair::generate().with_key_id("x1");
    let provider = |name: &str, iss: &str, kp: &ES256KeyPair, kid: &str| {
        json!({"name": name, "issuer": iss, "audiences": ["api"], "algorithms": ["ES256"],
               "jwks": {"keys": [es256_jwk(kp, Some(kid))]}})
    };
    let enforced = json!({
        "schema_version": 1, "trust_domain": "cluster.local",
        "providers": [provider("idp", "https://idp", &idp, "e1"), provider("other", "https://other", &extra, "o1")],
        "roles": [{"name": "user", "jwt": {"provider": "idp"}}, {"name": "o", "jwt": {"provider": "other"}}],
        "rules": [{"name": "x", "roles": ["user", "o"], "paths": ["/x"]}]
    });
    // Shared: the same providers. Own search: `other` dropped, a provider of
    // its own added (the issuer of `extra`'s tokens).
    let shared = {
        let mut s = enforced.clone();
        s["rules"][0]["paths"] = json!(["/x", "/y"]);
        s
    };
    let own = {
        let mut s = enforced.clone();
        s["providers"] = json!([
            provider("idp", "https://idp", &idp, "e1"),
            provider("extra", "https://extra", &extra, "x1")
        ]);
        s["roles"] = json!([{"name": "user", "jwt": {"provider": "idp"}}, {"name": "x", "jwt": {"provider": "extra"}}]);
        s["rules"] = json!([{"name": "x", "roles": ["user", "x"], "paths": ["/x"]}]);
        s
    };
    let token = |kp: &ES256KeyPair, iss: &str| {
        let claims = Claims::create(Duration::from_secs(600))
            .with_issuer(iss)
            .with_audience("api");
        kp.sign(claims).unwrap()
    };
    let good = token(&idp, "https://idp");
    // The signature's first character changed: it carries six full bits, so
    // the base64 stays canonical and the token is a bad signature, never
    // malformed (the last character carries padding bits that must be 0).
    let mut bad = good.clone();
    let at = good.rfind('.').unwrap() + 1;
    let c = if good[at..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    bad.replace_range(at..at + 1, c);
    let extra_token = token(&extra, "https://extra");
    // (shadow, token, signature checks on the first request, on the second)
    let table = [
        (&shared, &good, 1, 0),
        (&shared, &bad, 1, 1),
        (&own, &good, 1, 0),
        (&own, &bad, 1, 1),
        (&own, &extra_token, 1, 0),
    ];
    for (i, (s, tok, first, second)) in table.into_iter().enumerate() {
        let mut cfg = enforced.clone();
        cfg["shadow"] = s.clone();
        let p = Policy::from_json(&cfg.to_string()).unwrap();
        let shadow = p.shadow.as_deref().unwrap();
        let mut cache = TokenCache::new(16);
        let counting = Counting::default();
        let r = req(
            "GET",
            "/x",
            None,
            &[("authorization", format!("Bearer {tok}"))],
        );
        let headers = Headers::from_pairs(&r.headers);
        let now = jwt_simple::prelude::Clock::now_since_epoch().as_secs();
        let mut q = request(&r, &headers, Some(&counting));
        q.now = now;
        let (d, sd) = decide_with_shadow(&p, shadow, &q, &mut cache);
        assert_eq!(
            counting.0.get(),
            first,
            "case {i}: {} / {}",
            d.reason.code(),
            sd.reason
        );
        decide_with_shadow(&p, shadow, &q, &mut cache);
        assert_eq!(counting.0.get(), first + second, "case {i}, again");
    }
}
