//! Replay against the engine: events written by the real handler under one
//! policy, decided again under others, give the other policy's own decision
//! for every event replay can decide; the others are undecidable for the
//! reason the facts lack.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::type_complexity,
    clippy::panic
)]

use super::decide::{decide, Undecidable};
use super::event::parse_log;
use super::report::{replay, Target};
use super::{json, text};
use crate::engine::cache::TokenCache;
use crate::engine::tests::{
    fx, gitlab_token, okta_token, policy_json, sign, DEPLOYER, FRONTEND, NOW,
};
use crate::engine::{decide as engine_decide, Request};
use crate::handler::{configure, flush, on_request_headers, Loaded};
use crate::policy::Policy;
use crate::request::headers::Headers;
use crate::testing::{FakeHost, FakePeer};
use serde_json::{json, Value};

fn base() -> Value {
    let f = fx();
    serde_json::from_str(&policy_json(&f.gitlab, &f.okta, "enforce")).unwrap()
}

struct Req {
    method: &'static str,
    path: String,
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
        path: path.into(),
        peer,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

fn requests() -> Vec<Req> {
    let bearer = |t: String| ("authorization", format!("Bearer {t}"));
    let admin = okta_token(
        json!({"groups": ["admins"], "realm_access": {"roles": ["auditor"]}, "level": 3, "mfa": true}),
    );
    let stranger = {
        let c = json!({"iss": "https://login.example.net/v2.0", "aud": "api://shop", "sub": "bob", "iat": NOW - 60, "exp": NOW + 600});
        sign(&fx().okta, "az1", &c)
    };
    vec![
        req("GET", "/healthz", None, &[]),
        req(
            "POST",
            "/deploy",
            Some(DEPLOYER),
            &[bearer(gitlab_token(json!({})))],
        ),
        req(
            "POST",
            "/deploy",
            Some(DEPLOYER),
            &[bearer(gitlab_token(json!({"ref_protected": "false"})))],
        ),
        req("GET", "/admin/x", Some(FRONTEND), &[bearer(admin.clone())]),
        req(
            "GET",
            "/admin/x",
            None,
            &[bearer(okta_token(json!({"groups": ["ops"]})))],
        ),
        req("GET", "/audit/log", None, &[bearer(admin.clone())]),
        req("GET", "/orders/1", Some(FRONTEND), &[]),
        req("GET", "/orders/1", None, &[]),
        req(
            "GET",
            "/orders/1",
            None,
            &[bearer(okta_token(json!({"scp": "orders.read"})))],
        ),
        req(
            "GET",
            "/admin/x",
            None,
            &[bearer(okta_token(json!({"exp": NOW - 100})))],
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
        req("GET", "/admin/y", None, &[bearer(stranger)]),
        req("GET", "/reports/100%2541", None, &[]),
        req("GET", "/a/../b", None, &[]),
        req(
            "POST",
            "/static/x.png",
            Some("spiffe://cluster.local/ns/shop/sa/orders"),
            &[],
        ),
    ]
}

/// The audit lines `cfg` writes for `reqs`, through the real handler.
fn record(cfg: &Value, reqs: &[Req]) -> String {
    let mut host = FakeHost::default();
    let l: Loaded = configure(&mut host, Some(cfg.to_string().as_bytes())).unwrap();
    for r in reqs {
        host.request.headers = vec![
            (":method".into(), r.method.into()),
            (":path".into(), r.path.clone()),
            (":authority".into(), "api.example.com".into()),
            ("x-request-id".into(), format!("req-{}", r.path.len())),
        ];
        host.request.headers.extend(r.headers.iter().cloned());
        host.peer = FakePeer::connection(r.peer);
        host.clock.set(NOW * 1000);
        host.request.sent = None;
        on_request_headers(&mut host, &l);
    }
    flush(&mut host, &l);
    let lines = host.log.lines.borrow();
    // As Envoy writes them: its prefix on the first line of a batch.
    lines
        .iter()
        .map(|(_, l)| format!("[2026-11-22 03:07:30.123][12][info][wasm] wasm log oam_authz: {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn standalone(policy: &Policy, r: &Req) -> (bool, String) {
    let headers = Headers::from_pairs(&r.headers);
    let q = Request {
        method: r.method,
        path: &r.path,
        host: "api.example.com",
        headers: &headers,
        peer: r.peer,
        now: NOW,
        crypto: None,
    };
    let d = engine_decide(policy, &q, &mut TokenCache::disabled(), None);
    (d.allowed(), d.reason.code().to_string())
}

/// New policies, each with the events it cannot decide (by request index).
fn variants() -> Vec<(
    &'static str,
    Box<dyn Fn(&mut Value)>,
    Vec<(usize, Undecidable)>,
)> {
    vec![
        ("the same", Box::new(|_| {}), vec![]),
        (
            "other rules and claims",
            Box::new(|s| {
                s["rules"][4]["hosts"] = Value::Null;
                s["rules"].as_array_mut().unwrap().remove(5);
                s["roles"][4]["jwt"]["claims"][0] = json!({"claim": "groups", "contains": "ops"});
                s["roles"][6]["jwt"]["claims"][1] = json!({"claim": "level", "one_of": [4]});
            }),
            vec![],
        ),
        (
            "gitlab dropped",
            Box::new(|s| {
                s["providers"].as_array_mut().unwrap().remove(0);
                s["roles"].as_array_mut().unwrap().remove(3);
                s["rules"].as_array_mut().unwrap().remove(3);
            }),
            // Okta alone would judge gitlab's tokens (and the stranger's):
            // how it refuses them depends on the token itself.
            vec![
                (
                    1,
                    Undecidable::Provider {
                        name: "okta".into(),
                    },
                ),
                (
                    2,
                    Undecidable::Provider {
                        name: "okta".into(),
                    },
                ),
                (13, Undecidable::RefusedToken),
            ],
        ),
        (
            "okta dropped: gitlab would judge okta's tokens",
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
            vec![
                (
                    3,
                    Undecidable::Provider {
                        name: "gitlab".into(),
                    },
                ),
                (
                    4,
                    Undecidable::Provider {
                        name: "gitlab".into(),
                    },
                ),
                (
                    5,
                    Undecidable::Provider {
                        name: "gitlab".into(),
                    },
                ),
                (
                    8,
                    Undecidable::Provider {
                        name: "gitlab".into(),
                    },
                ),
                (9, Undecidable::RefusedToken),
                (
                    10,
                    Undecidable::TokenSources {
                        new: vec![],
                        dropped: vec!["query:access_token".into(), "cookie:okta_token".into()],
                    },
                ),
                (13, Undecidable::RefusedToken),
            ],
        ),
        (
            "okta reads a new header",
            Box::new(|s| {
                s["providers"][1]["from"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"header": {"name": "x-okta"}}));
            }),
            // Every event, but those decided before any token is looked
            // for (paths refused by both) and several tokens (found again).
            (0..17)
                .filter(|i| ![10, 14, 15].contains(i))
                .map(|i| {
                    let why = Undecidable::TokenSources {
                        new: vec!["header:x-okta".into()],
                        dropped: vec![],
                    };
                    (i, why)
                })
                .collect(),
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
            vec![(14, Undecidable::PathRefusedFirst)],
        ),
    ]
}

#[test]
fn replay_decides_as_the_new_policy_or_says_why_not() {
    let reqs = requests();
    let log = record(&base(), &reqs);
    let (events, bad) = parse_log(&log);
    assert_eq!((events.len(), bad), (reqs.len(), 0));
    let mut changed = 0;
    for (name, edit, undecidable) in variants() {
        let mut n = base();
        n["policy_version"] = json!("test-2");
        edit(&mut n);
        let policy = Policy::from_json(&n.to_string()).unwrap();
        for (i, (r, e)) in reqs.iter().zip(&events).enumerate() {
            let what = format!("{name}: [{i}] {} {}", r.method, r.path);
            let want_undecidable = undecidable
                .iter()
                .find(|(j, _)| *j == i)
                .map(|(_, w)| w.clone());
            match (decide(&policy, e), want_undecidable) {
                (Ok(got), None) => {
                    assert_eq!(
                        (got.allowed, got.reason.clone()),
                        standalone(&policy, r),
                        "{what}"
                    );
                    changed += usize::from(got.reason != e.recorded.reason);
                }
                (Err(why), Some(want)) => assert_eq!(why, want, "{what}"),
                (got, want) => panic!("{what}: got {got:?}, want undecidable {want:?}"),
            }
        }
    }
    assert!(changed >= 10, "the variants change decisions: {changed}");
}

#[test]
fn a_claim_the_events_do_not_record_is_undecidable() {
    let mut r = base();
    r["audit"] = json!({"claims": ["scp"]});
    let reqs = requests();
    let (events, _) = parse_log(&record(&r, &reqs));
    let n = Policy::from_json(&base().to_string()).unwrap();
    assert_eq!(
        decide(&n, &events[3]).unwrap_err(),
        Undecidable::Claim {
            claim: "groups".into()
        }
    );
    // A claim no covering rule's role consults is not needed.
    assert_eq!(decide(&n, &events[8]).unwrap().reason, "role_granted");
}

#[test]
fn events_of_an_older_filter_decide_only_what_needs_no_token() {
    let line = r#"oam-authz-audit {"ts":"2026-11-22T03:07:30.123Z","request_id":"a","policy":"test-1","mode":"enforce","decision":"allow","status":200,"reason":"public_rule","rule":"health","roles":[],"peer":null,"iss":null,"sub":null,"method":"GET","host":"api.example.com","path":"/healthz"}
oam-authz-audit {"ts":"x","request_id":"b","policy":"test-1","mode":"enforce","decision":"deny","status":400,"reason":"path_not_canonical","rule":null,"roles":[],"peer":null,"iss":null,"sub":null,"method":"GET","host":"h","path":"/a/../b"}
oam-authz-audit {not json
oam-authz-audit {"decision": "allow"}"#;
    let (events, bad) = parse_log(line);
    assert_eq!((events.len(), bad), (2, 2));
    let n = Policy::from_json(&base().to_string()).unwrap();
    assert_eq!(decide(&n, &events[0]).unwrap_err(), Undecidable::NoFacts);
    assert_eq!(decide(&n, &events[1]).unwrap().reason, "path_not_canonical");
}

#[test]
fn the_report_groups_like_diff() {
    let reqs = requests();
    let log = record(&base(), &reqs);
    let (events, bad) = parse_log(&log);
    let mut n = base();
    n["policy_version"] = json!("test-2");
    n["rules"][4]["hosts"] = Value::Null;
    n["rules"].as_array_mut().unwrap().remove(5);
    n["roles"][4]["jwt"]["claims"][0] = json!({"claim": "groups", "contains": "ops"});
    let policy = Policy::from_json(&n.to_string()).unwrap();
    let targets = [Target {
        application: "plugin-config",
        component: "policy",
        policy: &policy,
    }];
    let report = replay("new.json", "envoy.log", &targets, events, bad, None);
    assert_eq!(report.exit_code(), 4);
    let t = text(&report);
    let want = "\
replay of envoy.log under new.json: 17 events
component plugin-config/policy (policy test-2): 17 events, 10 unchanged, 7 changed, 0 undecidable
  widened (deny to allow): 1 request
    deny 403 role_required (rule 'admin') -> allow 200 role_granted (rule 'admin'): 1
      GET api.example.com /admin/x  sub alice@example.com  request req-8
  narrowed (allow to deny): 5 requests
    allow 200 role_granted (rule 'admin') -> deny 403 role_required (rule 'admin'): 3
      GET api.example.com /admin/x  peer spiffe://cluster.local/ns/shop/sa/frontend  sub alice@example.com  request req-8
      GET api.example.com /admin/x  sub alice@example.com  request req-437
      GET api.example.com /admin/x  sub alice@example.com  request req-8
    allow 200 role_granted (rule 'orders-read') -> deny 403 no_matching_rule: 2
      GET api.example.com /orders/1  peer spiffe://cluster.local/ns/shop/sa/frontend  request req-9
      GET api.example.com /orders/1  sub alice@example.com  request req-9
  changed (reason changed): 1 request
    deny 401 token_missing (rule 'orders-read') -> deny 403 no_matching_rule: 1
      GET api.example.com /orders/1  request req-9
decisions change (first: widened)
";
    assert_eq!(t, want, "{t}");
    let j: Value = serde_json::from_str(&json(&report)).unwrap();
    assert_eq!(j["change"], "widened");
    assert_eq!(j["exit_code"], 4);
    let c = &j["components"][0];
    assert_eq!(c["changes"][0]["counter"], "deny_to_allow");
    assert_eq!(
        c["changes"][1]["old"],
        json!({"decision": "allow", "status": 200, "reason": "role_granted", "rule": "admin"})
    );
    assert_eq!(c["changes"][1]["count"], 3);
    assert_eq!(c["changes"][2]["count"], 2);
    assert_eq!(c["changes"][2]["requests"][0]["path"], "/orders/1");
}
