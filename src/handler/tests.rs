//! The filter's request handling against the `FakeHost` double (`testing.rs`): header
//! stripping, forwarding, local replies, audit lines and counters.

#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::type_complexity,
    clippy::panic
)]

use super::*;
use crate::engine::tests::{fx, gitlab_token, okta_token, policy_json, DEPLOYER, FRONTEND, NOW};
use crate::host::Level;
use crate::testing::FakeHost;
use serde_json::{json, Value};

fn loaded(mode: &str) -> (FakeHost, Loaded) {
    let f = fx();
    let mut host = FakeHost::default();
    let cfg = policy_json(&f.gitlab, &f.okta, mode);
    let l = configure(&mut host, Some(cfg.as_bytes())).unwrap();
    (host, l)
}

fn request(
    host: &mut FakeHost,
    method: &str,
    path: &str,
    peer: Option<&str>,
    extra: &[(&str, &str)],
) {
    host.request.headers = vec![
        (":method".into(), method.into()),
        (":path".into(), path.into()),
        (":authority".into(), "api.example.com".into()),
        ("x-request-id".into(), "req-1".into()),
    ];
    host.request
        .headers
        .extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    host.peer = crate::testing::FakePeer::connection(peer);
    host.clock.set(NOW * 1000 + 5);
    host.request.sent = None;
    host.log.clear();
}

/// One request, then the tick's flush (counters and audit lines land there).
fn run(host: &mut FakeHost, l: &Loaded) -> Verdict {
    let v = on_request_headers(host, l);
    flush(host, l);
    v
}

fn audit_events(host: &FakeHost) -> Vec<Value> {
    host.log
        .lines
        .borrow()
        .iter()
        .flat_map(|(_, l)| l.lines().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|l| {
            l.strip_prefix(crate::audit::AUDIT_PREFIX)
                .map(str::to_string)
        })
        .map(|j| serde_json::from_str(&j).unwrap())
        .collect()
}

#[test]
fn allowed_request_strips_spoofed_headers_and_forwards_identity() {
    let (mut host, l) = loaded("enforce");
    let tok = gitlab_token(json!({}));
    let bearer = format!("Bearer {tok}");
    request(
        &mut host,
        "POST",
        "/deploy",
        Some(DEPLOYER),
        &[
            ("authorization", &bearer),
            (
                "x-oam-principal",
                "spiffe://cluster.local/ns/kube-system/sa/admin",
            ),
            ("x-oam-roles", "admin"),
            ("x-oam-project", "spoofed"),
        ],
    );
    assert_eq!(run(&mut host, &l), Verdict::Continue);
    assert!(host.request.sent.is_none());
    assert_eq!(host.request.header("x-oam-principal"), vec![DEPLOYER]);
    assert_eq!(host.request.header("x-oam-roles"), vec!["release"]);
    assert_eq!(
        host.request.header("x-oam-subject"),
        vec!["project_path:platform/app:ref_type:branch:ref:main"]
    );
    assert_eq!(host.request.header("x-oam-project"), vec!["platform/app"]);
    assert!(
        host.request.header("authorization").is_empty(),
        "token must not go upstream"
    );
    let ev = audit_events(&host);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["decision"], "allow");
    assert_eq!(ev[0]["reason"], "role_granted");
    assert_eq!(ev[0]["rule"], "deploy");
    assert_eq!(ev[0]["peer"], DEPLOYER);
    assert_eq!(ev[0]["iss"], "https://gitlab.example.com");
    assert_eq!(ev[0]["request_id"], "req-1");
    assert_eq!(ev[0]["policy"], "test-1");
    assert_eq!(ev[0]["ts"], crate::audit::rfc3339_millis(NOW * 1000 + 5));
    let all_logs = format!("{:?}", host.log.lines.borrow());
    assert!(!all_logs.contains(&tok), "the token must never be logged");
    assert_eq!(host.metrics.counter("oam_authz.allowed"), 1);
}

#[test]
fn spoofed_headers_are_stripped_even_on_public_and_denied_paths() {
    let (mut host, l) = loaded("enforce");
    request(
        &mut host,
        "GET",
        "/healthz",
        None,
        &[
            ("x-oam-principal", "spiffe://evil"),
            ("x-oam-subject", "root"),
        ],
    );
    assert_eq!(run(&mut host, &l), Verdict::Continue);
    assert!(host.request.header("x-oam-principal").is_empty());
    assert!(host.request.header("x-oam-subject").is_empty());
}

#[test]
fn denial_sends_json_reason_and_www_authenticate() {
    let (mut host, l) = loaded("enforce");
    let cases: Vec<(Vec<(&str, String)>, &str, u16, Option<&str>)> = vec![
        (
            vec![],
            "token_missing",
            401,
            Some("Bearer realm=\"oam-authz\""),
        ),
        (
            vec![("authorization", "Bearer x.y.z".to_string())],
            "token_malformed",
            401,
            Some("Bearer realm=\"oam-authz\", error=\"invalid_token\""),
        ),
        (
            vec![(
                "authorization",
                format!("Bearer {}", okta_token(json!({"groups": ["staff"]}))),
            )],
            "role_required",
            403,
            None,
        ),
    ];
    for (extra, code, status, www) in cases {
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        request(&mut host, "GET", "/admin/users", None, &extra);
        assert_eq!(run(&mut host, &l), Verdict::Stop, "{code}");
        let (st, hdrs, body) = host.request.sent.clone().unwrap();
        assert_eq!(st, status, "{code}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["reason"], code);
        assert_eq!(body["request_id"], "req-1");
        assert_eq!(
            body.as_object().unwrap().len(),
            3,
            "no internal detail: {body}"
        );
        let get = |n: &str| hdrs.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-oam-authz-reason"), Some(code));
        assert_eq!(get("www-authenticate"), www, "{code}");
        assert_eq!(
            host.metrics.counter(&format!("oam_authz.denied.{code}")),
            1,
            "{code}"
        );
    }
    request(&mut host, "GET", "//admin", None, &[]);
    run(&mut host, &l);
    assert_eq!(host.request.sent.as_ref().unwrap().0, 400);
}

#[test]
fn audit_mode_passes_and_counts_would_deny() {
    let (mut host, l) = loaded("audit");
    request(
        &mut host,
        "GET",
        "/debug/pprof",
        Some(FRONTEND),
        &[("x-oam-roles", "admin")],
    );
    assert_eq!(run(&mut host, &l), Verdict::Continue);
    assert!(host.request.sent.is_none());
    // The spoofed value is gone; the proven roles are forwarded.
    assert_eq!(host.request.header("x-oam-roles"), vec!["frontend,shop-ns"]);
    let ev = audit_events(&host);
    assert_eq!(ev[0]["decision"], "audit_deny");
    assert_eq!(ev[0]["status"], 403);
    assert_eq!(ev[0]["reason"], "denied_by_rule");
    assert_eq!(ev[0]["mode"], "audit");
    assert_eq!(
        host.metrics
            .counter("oam_authz.audit_would_deny.denied_by_rule"),
        1
    );
    assert_eq!(host.metrics.counter("oam_authz.denied.denied_by_rule"), 0);
}

#[test]
fn query_and_cookie_tokens_are_removed_upstream() {
    let (mut host, l) = loaded("enforce");
    let tok = okta_token(json!({"groups": ["admins"]}));
    let path = format!("/admin/x?a=1&access_token={tok}&b=2");
    request(&mut host, "GET", &path, None, &[]);
    assert_eq!(run(&mut host, &l), Verdict::Continue);
    assert_eq!(host.request.header(":path"), vec!["/admin/x?a=1&b=2"]);
    let ev = audit_events(&host);
    assert_eq!(
        ev[0]["path"], "/admin/x",
        "the query (and the token in it) is not logged"
    );

    let cookie = format!("theme=dark; okta_token={tok}; lang=en");
    request(&mut host, "GET", "/admin/x", None, &[("cookie", &cookie)]);
    assert_eq!(run(&mut host, &l), Verdict::Continue);
    assert_eq!(host.request.header("cookie"), vec!["theme=dark; lang=en"]);
}

#[test]
fn bad_configs_are_refused_naming_the_field() {
    let f = fx();
    let good: Value = serde_json::from_str(&policy_json(&f.gitlab, &f.okta, "enforce")).unwrap();
    let mutate = |path: &[&str], v: Value| {
        let mut c = good.clone();
        let mut cur = &mut c;
        for (i, seg) in path.iter().enumerate() {
            let last = i + 1 == path.len();
            cur = match seg.parse::<usize>() {
                Ok(n) => &mut cur[n],
                Err(_) if last => {
                    cur.as_object_mut()
                        .unwrap()
                        .insert((*seg).to_string(), v.clone());
                    return c.to_string();
                }
                Err(_) => &mut cur[*seg],
            };
        }
        *cur = v;
        c.to_string()
    };
    let cases: Vec<(String, &str)> = vec![
        (
            "not json".into(),
            "invalid JSON: expected a value at line 1 column 1",
        ),
        (
            mutate(&["schema_version"], json!(2)),
            "schema_version: schema_version 2 is not supported",
        ),
        (
            mutate(&["rules", "3", "pathz"], json!(["/x"])),
            "rules[3].pathz: unknown field `pathz`",
        ),
        (
            mutate(&["rules", "3", "paths", "0"], json!("/a/{**}/b")),
            "rules[3].paths[0]: '/a/{**}/b': '{**}' must be the last segment",
        ),
        (
            mutate(&["rules", "3", "roles", "0"], json!("ghost")),
            "rules[3].roles[0]: rule 'deploy' names role 'ghost', which is not defined",
        ),
        (
            mutate(&["mode"], json!("permissive")),
            "mode: unknown variant `permissive`",
        ),
        (
            mutate(&["peer_identity"], json!("header")),
            "peer_identity: unknown variant `header`",
        ),
        (
            mutate(&["roles", "0", "principals", "0"], json!("ns/shop/sa")),
            "roles[0].principals[0]: 'ns/shop/sa'",
        ),
        (
            mutate(&["roles", "3", "jwt", "provider"], json!("github")),
            "roles[3].jwt.provider: provider 'github' is not defined",
        ),
        (
            mutate(&["providers", "0", "audiences"], json!([])),
            "providers[0].audiences: provider 'gitlab' has no audience",
        ),
        (
            mutate(&["rules", "0", "public"], json!(true)),
            "rules[0]: 'public' only applies to allow rules",
        ),
        (
            mutate(&["rules", "2", "roles"], json!(["admin"])),
            "rules[2]: 'public' and 'roles' exclude each other",
        ),
        (
            mutate(&["rules", "4", "hosts", "0"], json!("api.example.com:443")),
            "rules[4].hosts[0]: 'api.example.com:443'",
        ),
        (
            mutate(&["rules", "5", "methods", "0"], json!("get")),
            "rules[5].methods[0]: 'get'",
        ),
        (
            mutate(&["forward", "roles_header"], json!("authorization")),
            "forward.roles_header: 'authorization' is a reserved header",
        ),
        (
            mutate(&["trust_domain"], json!("Cluster.Local")),
            "trust_domain: 'Cluster.Local'",
        ),
        (mutate(&["rules"], json!([])), "rules: must not be empty"),
        (
            mutate(&["rules", "1", "name"], json!("no-debug")),
            "rules[1].name: duplicate rule name 'no-debug'",
        ),
    ];
    for (cfg, want) in cases {
        let mut host = FakeHost::default();
        let err = configure(&mut host, Some(cfg.as_bytes()))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(want) || err.contains(want),
            "want {want:?}, got {err:?}"
        );
        let logs = host.log.lines.borrow();
        let (level, line) = logs.last().unwrap();
        assert_eq!(*level, Level::Critical);
        assert!(line.contains(&err), "{line}");
        assert_eq!(host.metrics.counter("oam_authz.config_errors"), 1);
    }
    let mut host = FakeHost::default();
    assert!(configure(&mut host, None).is_err());
    assert!(configure(&mut host, Some(&[0xff, 0xfe])).is_err());
}

#[test]
fn every_reason_has_a_counter() {
    let (host, _) = loaded("enforce");
    for code in crate::decision::Reason::all_denial_codes() {
        assert!(
            host.metrics
                .counters
                .borrow()
                .iter()
                .any(|(n, _)| *n == format!("oam_authz.denied.{code}")),
            "{code}"
        );
        assert!(
            host.metrics
                .counters
                .borrow()
                .iter()
                .any(|(n, _)| *n == format!("oam_authz.audit_would_deny.{code}")),
            "{code}"
        );
    }
}

#[test]
fn repeated_token_is_served_from_the_cache_until_exp() {
    let (mut host, l) = loaded("enforce");
    let tok = okta_token(json!({"groups": ["admins"], "exp": NOW + 2}));
    let bearer = format!("Bearer {tok}");
    for _ in 0..3 {
        request(
            &mut host,
            "GET",
            "/admin/x",
            None,
            &[("authorization", &bearer)],
        );
        assert_eq!(run(&mut host, &l), Verdict::Continue);
    }
    assert_eq!((l.cache.borrow().hits(), l.cache.borrow().misses()), (2, 1));
    // At exp the cached entry is not used: the token is re-verified and refused.
    request(
        &mut host,
        "GET",
        "/admin/x",
        None,
        &[("authorization", &bearer)],
    );
    host.clock.set((NOW + 2) * 1000 + 31_000); // past exp + default 30 s skew
    assert_eq!(run(&mut host, &l), Verdict::Stop);
    assert_eq!(host.request.sent.as_ref().unwrap().0, 401);
    // A different (tampered) token never hits another token's entry.
    let mut forged = tok.clone();
    forged.pop();
    forged.push(if tok.ends_with('A') { 'B' } else { 'A' });
    request(
        &mut host,
        "GET",
        "/admin/x",
        None,
        &[("authorization", &format!("Bearer {forged}"))],
    );
    assert_eq!(run(&mut host, &l), Verdict::Stop);
}

#[test]
fn no_audit_line_is_built_when_info_logs_are_off() {
    let (mut host, l) = loaded("enforce");
    // The level is read at load and on every tick.
    host.log.quiet = true;
    flush(&mut host, &l);
    request(&mut host, "GET", "/healthz", None, &[]);
    assert_eq!(run(&mut host, &l), Verdict::Continue);
    assert!(audit_events(&host).is_empty());
    assert_eq!(
        host.metrics.counter("oam_authz.allowed"),
        1,
        "metrics still count"
    );
}

#[test]
fn crypto_plan_refuses_what_this_build_cannot_verify() {
    let f = fx();
    let base: Value = serde_json::from_str(&policy_json(&f.gitlab, &f.okta, "enforce")).unwrap();
    let with = |algs: &[&str], backend: &str| {
        // Provider 0 keeps its EdDSA key; the extra algorithms only need to parse.
        let mut c = base.clone();
        let mut list: Vec<Value> = vec![json!("EdDSA")];
        list.extend(algs.iter().map(|a| json!(a)));
        c["providers"][0]["algorithms"] = Value::Array(list);
        c["signature_backend"] = json!(backend);
        Policy::from_json(&c.to_string()).unwrap()
    };
    type Case = (
        &'static [&'static str],
        &'static str,
        bool,
        bool,
        Option<&'static str>,
    );
    let cases: Vec<Case> = vec![
        // (extra algorithms, backend, host works, software crypto, refusal)
        (&[], "auto", false, false, None),
        (&["RS256"], "auto", true, false, None),
        (
            &["RS256"],
            "auto",
            false,
            false,
            Some("providers[0].algorithms: RS256 needs Envoy's verify_signature"),
        ),
        (&["RS256"], "auto", false, true, None),
        (
            &["PS256"],
            "auto",
            true,
            false,
            Some("providers[0].algorithms: PS256 needs the full module build"),
        ),
        (&["PS256"], "auto", true, true, None),
        (
            &["ES256"],
            "wasm",
            false,
            false,
            Some("signature_backend: 'wasm' needs the full module build"),
        ),
        (&["ES256"], "wasm", false, true, None),
        (
            &["ES256"],
            "host",
            false,
            true,
            Some("signature_backend: 'host' needs Envoy's verify_signature"),
        ),
        (&["ES256"], "host", true, false, None),
    ];
    for (algs, backend, host_works, software, want) in cases {
        let p = with(algs, backend);
        let got = crypto_plan(&p, host_works, software)
            .err()
            .map(|e| e.to_string());
        match (want, got) {
            (None, None) => {}
            (Some(w), Some(g)) => assert!(g.starts_with(w), "{algs:?} {backend}: {g}"),
            (w, g) => {
                panic!("{algs:?} {backend} host={host_works} sw={software}: want {w:?}, got {g:?}")
            }
        }
    }
}

/// The policy's `peer_identity` decides whose identity the handler hands the
/// engine: on a waypoint (no mTLS, the tunnel's identity in filter state)
/// `auto` and `istio_waypoint` see the deployer, `connection` sees no one;
/// a spoofed XFCC header is never an identity.
#[test]
fn waypoint_identity_follows_the_policy_source() {
    let f = fx();
    let base: Value = serde_json::from_str(&policy_json(&f.gitlab, &f.okta, "enforce")).unwrap();
    let bearer = format!("Bearer {}", gitlab_token(json!({})));
    let xfcc = format!("By=spiffe://cluster.local/ns/shop/sa/waypoint;URI={DEPLOYER}");
    for (source, peer, want) in [
        (None, Some(DEPLOYER), None),
        (Some("auto"), Some(DEPLOYER), None),
        (Some("istio_waypoint"), Some(DEPLOYER), None),
        (Some("connection"), None, Some("role_required")),
    ] {
        let mut cfg = base.clone();
        if let Some(s) = source {
            cfg["peer_identity"] = json!(s);
        }
        let mut host = FakeHost::default();
        let l = configure(&mut host, Some(cfg.to_string().as_bytes())).unwrap();
        request(
            &mut host,
            "POST",
            "/deploy",
            None,
            &[("authorization", &bearer)],
        );
        host.peer.waypoint = Some(DEPLOYER.as_bytes().to_vec());
        run(&mut host, &l);
        assert_eq!(
            host.request.sent.as_ref().map(|s| s.0),
            want.map(|_| 403),
            "{source:?}"
        );
        let ev = &audit_events(&host)[0];
        assert_eq!(ev["peer"].as_str(), peer, "{source:?}: {ev}");
        if let Some(reason) = want {
            assert_eq!(ev["reason"], reason, "{source:?}");
        } else {
            assert_eq!(host.request.header("x-oam-principal"), vec![DEPLOYER]);
        }

        // No tunnel identity: the XFCC header names the deployer, in vain.
        request(
            &mut host,
            "POST",
            "/deploy",
            None,
            &[
                ("authorization", &bearer),
                ("x-forwarded-client-cert", &xfcc),
            ],
        );
        run(&mut host, &l);
        assert_eq!(
            host.request.sent.as_ref().map(|s| s.0),
            Some(403),
            "{source:?}"
        );
        assert_eq!(audit_events(&host)[0]["peer"], Value::Null, "{source:?}");
    }
}

/// Not a test: a native timing of the request path's parts, for profiling
/// (`cargo test --release --lib handler::tests::profile -- --ignored --nocapture`;
/// `OAM_PROFILE_STAGE=decide|audit|request` runs one part, e.g. under callgrind).
#[test]
#[ignore]
fn profile() {
    use std::time::Instant;
    let n: u32 = std::env::var("OAM_PROFILE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let stage = std::env::var("OAM_PROFILE_STAGE").unwrap_or_default();
    let on = |s: &str| stage.is_empty() || stage == s;
    let (mut host, l) = loaded("enforce");
    let tok = okta_token(json!({"groups": ["admins"]}));
    let bearer = format!("Bearer {tok}");
    request(
        &mut host,
        "GET",
        "/admin/x",
        Some(FRONTEND),
        &[
            ("authorization", &bearer),
            ("user-agent", "curl/8"),
            ("accept", "*/*"),
        ],
    );
    let headers = host.request.request_headers();
    let req = crate::engine::Request {
        method: "GET",
        path: "/admin/x",
        host: "api.example.com",
        headers: &headers,
        peer: Some(FRONTEND),
        now: NOW,
        crypto: None,
    };
    let d = crate::engine::decide(&l.policy, &req, &mut l.cache.borrow_mut(), None);
    if on("decide") {
        let mut cache = l.cache.borrow_mut();
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(crate::engine::decide(&l.policy, &req, &mut cache, None));
        }
        println!(
            "decide (mTLS + token, cache hit): {:?}/req",
            t.elapsed() / n
        );
    }
    if on("audit") {
        let t = Instant::now();
        let mut out = String::new();
        for _ in 0..n {
            out.clear();
            let ev = crate::audit::event(
                &l.policy,
                &d,
                NOW * 1000,
                "req-1",
                "GET",
                "api.example.com",
                "/admin/x",
            );
            crate::audit::write(&mut out, &ev);
            std::hint::black_box(&out);
        }
        println!("audit event + line: {:?}/req", t.elapsed() / n);
    }
    if on("request") {
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(on_request_headers(&mut host, &l));
            host.request.sent = None;
        }
        println!("on_request_headers (fake host): {:?}/req", t.elapsed() / n);
    }
}
