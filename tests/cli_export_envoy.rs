//! `export-envoy` on every example and on plain plugin configurations: the
//! filter order istiod uses, the notes, determinism, and the errors. That
//! Envoy accepts the output is checked by the e2e suite (`envoy --mode
//! validate`, test-harness/tests/test_export_envoy.py) and that it decides
//! like the filter by the differential test (docs/differences.md).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oam-authz"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap()
}

fn docs(text: &str) -> Vec<serde_json::Value> {
    text.split("\n---\n")
        .map(|d| serde_norway::from_str(d).unwrap())
        .collect()
}

const EXAMPLES: [&str; 4] = ["shop", "deploy-api", "artifact-store", "remote-jwks"];

/// (filter name, RBAC action) in order.
fn shape(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["http_filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let cfg = &f["typed_config"];
            let rules = if cfg["rules"].is_object() {
                &cfg["rules"]
            } else {
                &cfg["shadow_rules"]
            };
            let action = rules["action"].as_str().unwrap_or("").to_string();
            (f["name"].as_str().unwrap().to_string(), action)
        })
        .collect()
}

#[test]
fn every_example_exports_jwt_then_deny_then_allow() {
    for ex in EXAMPLES {
        let app = format!("examples/{ex}/app.yaml");
        let o = run(&["export-envoy", &app]);
        assert!(
            o.status.success(),
            "{ex}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(text.starts_with("# Native Envoy equivalent"), "{ex}");
        assert_eq!(
            run(&["export-envoy", &app]).stdout,
            text.as_bytes(),
            "{ex}: not deterministic"
        );
        for doc in docs(&text) {
            let s = shape(&doc);
            let names: Vec<&str> = s
                .iter()
                .map(|(n, a)| if a.is_empty() { n.as_str() } else { a.as_str() })
                .collect();
            let mut want: Vec<&str> = Vec::new();
            if names.contains(&"envoy.filters.http.jwt_authn") {
                want.push("envoy.filters.http.jwt_authn");
            }
            if names.contains(&"DENY") {
                want.push("DENY");
            }
            want.push("ALLOW");
            assert_eq!(names, want, "{ex}");
        }
    }
}

#[test]
fn providers_and_claims_become_jwt_authn_and_metadata_matchers() {
    let o = run(&["export-envoy", "examples/deploy-api/app.yaml"]);
    let d = &docs(&String::from_utf8(o.stdout).unwrap())[0];
    let jwt = &d["http_filters"][0]["typed_config"];
    let providers = jwt["providers"].as_object().unwrap();
    assert_eq!(providers.len(), 2, "deploy-api trusts two issuers");
    for p in providers.values() {
        assert_eq!(p["payload_in_metadata"], "payload");
        assert_eq!(p["require_expiration"], true);
        assert!(p["local_jwks"]["inline_string"]
            .as_str()
            .unwrap()
            .contains("\"keys\""));
        assert_eq!(p["from_headers"][0]["value_prefix"], "Bearer ");
    }
    // Istio's requirement for several providers: any one of them, or all of
    // {that provider or missing}: a token, if present, must verify with some
    // provider; a missing one is left to rbac.
    let req = jwt["rules"][0]["requires"]["requires_any"]["requirements"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = req[..providers.len()]
        .iter()
        .map(|r| r["provider_name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        providers.keys().map(String::as_str).collect::<Vec<_>>()
    );
    let all = req[names.len()]["requires_all"]["requirements"]
        .as_array()
        .unwrap();
    assert_eq!(all.len(), names.len());
    for (i, n) in names.iter().enumerate() {
        let any = &all[i]["requires_any"]["requirements"];
        assert_eq!(any[0]["provider_name"], *n);
        assert!(any[1]["allow_missing"].is_object());
    }
    let text = serde_json::to_string(&d["http_filters"]).unwrap();
    assert!(
        text.contains(
            r#""filter":"envoy.filters.http.jwt_authn","path":[{"key":"payload"},{"key":"iss"}]"#
        ),
        "{text}"
    );
}

#[test]
fn a_plugin_configuration_exports_too_and_audit_mode_becomes_shadow_rules() {
    let dir = std::env::temp_dir().join(format!("oam-authz-ee-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("p.json");
    std::fs::write(
        &cfg,
        r#"{"schema_version":1,"mode":"audit","trust_domain":"cluster.local","trust_domain_aliases":["old.example.com"],
            "roles":[{"name":"ci","principals":["ns/ci/sa/*"]}],
            "rules":[{"name":"no-debug","effect":"deny","paths":["/debug/{**}"]},
                     {"name":"builds","roles":["ci"],"hosts":["api.example.com"],"paths":["/builds/{*}"]}]}"#,
    )
    .unwrap();
    let o = run(&["export-envoy", "--plugin-config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("audit mode is exported as RBAC shadow_rules"),
        "{text}"
    );
    let d = &docs(&text)[0];
    assert_eq!(
        shape(d),
        [
            ("envoy.filters.http.rbac".into(), "DENY".into()),
            ("envoy.filters.http.rbac".into(), "ALLOW".into())
        ]
    );
    let allow = serde_json::to_string(&d["http_filters"][1]).unwrap();
    // One regex per trust domain, with the filter's SPIFFE grammar.
    assert!(
        allow.contains(r#"spiffe://cluster\\.local/ns/ci/sa/[a-z0-9.-]+"#),
        "{allow}"
    );
    assert!(
        allow.contains(r#"spiffe://old\\.example\\.com/ns/ci/sa/[a-z0-9.-]+"#),
        "{allow}"
    );
    assert!(
        allow.contains(r#"(?i)api\\.example\\.com\\.?(:[0-9]*)?"#),
        "{allow}"
    );
    let deny = serde_json::to_string(&d["http_filters"][0]).unwrap();
    assert!(
        deny.contains(r#""path_template":"/debug/**""#) && deny.contains(r#""exact":"/debug/""#),
        "{deny}"
    );
    // --bootstrap wraps the same filters in a listener.
    let o = run(&[
        "export-envoy",
        "--plugin-config",
        cfg.to_str().unwrap(),
        "--bootstrap",
    ]);
    let b = &docs(&String::from_utf8(o.stdout).unwrap())[0];
    let hcm =
        &b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(hcm["normalize_path"], true);
    assert_eq!(hcm["http_filters"].as_array().unwrap().len(), 3);
}

#[test]
fn a_policy_the_filter_would_refuse_is_not_exported() {
    let dir = std::env::temp_dir().join(format!("oam-authz-ee-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("bad.json");
    std::fs::write(
        &cfg,
        r#"{"schema_version":1,"trust_domain":"cluster.local","rules":[{"name":"r","public":true,"paths":["/a/{**}/b"]}]}"#,
    )
    .unwrap();
    let o = run(&["export-envoy", "--plugin-config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("rules[0].paths[0]") && err.contains("must be the last segment"),
        "{err}"
    );
    let o = run(&["export-envoy"]);
    assert_eq!(o.status.code(), Some(2));
}
