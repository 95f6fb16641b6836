//! `compile` flags, `explain`, `test` and `export-istio` end to end through
//! the binary.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oam-authz"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const SHOP: &str = "examples/shop/app.yaml";
const DEPLOY: &str = "examples/deploy-api/app.yaml";

#[test]
fn compile_requires_a_url_for_wasmplugins() {
    let o = run(&["compile", SHOP]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).starts_with("error: --url is required"),
        "{}",
        err(&o)
    );
    let o = run(&["compile", SHOP, "--url", "ftp://x/y"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("Istio accepts oci://"), "{}", err(&o));
}

#[test]
fn compile_pins_the_module_digest_and_applies_the_mode_override() {
    let dir = std::env::temp_dir().join(format!("oam-authz-mod-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("m.wasm");
    std::fs::write(&module, b"abc").unwrap();
    let o = run(&[
        "compile",
        DEPLOY,
        "--url",
        "https://modules.example.com/oam_authz.wasm",
        "--module",
        module.to_str().unwrap(),
        "--mode",
        "audit",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    // sha256("abc")
    assert!(
        text.contains("sha256: ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert!(text.contains("mode: audit"));
    assert!(text.contains("phase: AUTHN"));
    assert!(text.contains("failStrategy: FAIL_CLOSE"));
    assert!(text.contains("app.oam.dev/component: api"));
}

/// A minimal OCI image layout (the shape `make image` writes) in `dir`;
/// returns the manifest's hex digest.
fn oci_layout(dir: &std::path::Path, last_layer: &str) -> String {
    use sha2::{Digest, Sha256};
    let hex = |b: &[u8]| -> String {
        Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect()
    };
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{0}","size":2}},"layers":[{{"mediaType":"{last_layer}","digest":"sha256:{0}","size":2}}]}}"#,
        hex(b"{}")
    );
    let digest = hex(manifest.as_bytes());
    std::fs::write(blobs.join(&digest), &manifest).unwrap();
    std::fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{digest}","size":{}}}]}}"#,
            manifest.len()
        ),
    )
    .unwrap();
    digest
}

#[test]
fn compile_pins_the_image_digest_for_oci_urls() {
    let dir = std::env::temp_dir().join(format!("oam-authz-oci-{}", std::process::id()));
    let layout = dir.join("layout");
    let digest = oci_layout(&layout, "application/vnd.oci.image.layer.v1.tar+gzip");
    let o = run(&[
        "compile",
        DEPLOY,
        "--url",
        "oci://r/x:1",
        "--module",
        layout.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains(&format!("sha256: {digest}")),
        "{}",
        out(&o)
    );
    // The digest in the URL must be the layout's.
    let url = format!("oci://r/x@sha256:{}", "0".repeat(64));
    let o = run(&[
        "compile",
        DEPLOY,
        "--url",
        &url,
        "--module",
        layout.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains(&format!("holds sha256:{digest}")),
        "{}",
        err(&o)
    );
    // The module's own digest with an oci:// URL: every sidecar would refuse it.
    let module = dir.join("m.wasm");
    std::fs::write(&module, b"abc").unwrap();
    let o = run(&[
        "compile",
        DEPLOY,
        "--url",
        "oci://r/x:1",
        "--module",
        module.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o)
            .contains("Istio compares sha256 with the image's manifest digest, not the module's"),
        "{}",
        err(&o)
    );
    // A layout for an https:// URL, and an image Istio would not take as the compat variant.
    let o = run(&[
        "compile",
        DEPLOY,
        "--url",
        "https://m/x.wasm",
        "--module",
        layout.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("Istio checks only for oci:// URLs"),
        "{}",
        err(&o)
    );
    let wasm_layer = dir.join("wasm-layer");
    oci_layout(
        &wasm_layer,
        "application/vnd.module.wasm.content.layer.v1+wasm",
    );
    let o = run(&[
        "compile",
        DEPLOY,
        "--url",
        "oci://r/x:1",
        "--module",
        wasm_layer.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("last layer must be application/vnd.oci.image.layer.v1.tar+gzip"),
        "{}",
        err(&o)
    );
}

#[test]
fn envoy_format_is_the_plain_plugin_config() {
    let o = run(&["compile", DEPLOY, "--format", "envoy"]);
    assert!(o.status.success(), "{}", err(&o));
    let cfg = out(&o);
    oam_authz::Policy::from_json(&cfg).unwrap();
    assert!(cfg.starts_with("{\n  \"schema_version\": 1,"));
}

#[test]
fn compile_refuses_an_invalid_application() {
    let dir = std::env::temp_dir().join(format!("oam-authz-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/deploy-api/app.yaml"
    ))
    .unwrap()
    .replace("roles: [gitlab-production]", "roles: [gitlab-prod]");
    std::fs::write(&bad, text).unwrap();
    let o = run(&["compile", bad.to_str().unwrap(), "--url", "oci://r/x:1"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(out(&o), "");
    assert!(
        err(&o).contains("role 'gitlab-prod', which is not defined"),
        "{}",
        err(&o)
    );
}

#[test]
fn explain_shows_roles_conditions_rules_and_the_decision() {
    let o = run(&[
        "explain",
        DEPLOY,
        "--component",
        "api",
        "--claims",
        r#"{"iss":"https://gitlab.example.com","namespace_path":"platform","ref_protected":"false","pipeline_source":"push"}"#,
        "--method",
        "POST",
        "--path",
        "/deployments/staging",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let t = out(&o);
    for want in [
        "token:     claims given directly, taken as provider 'gitlab' (signature, audience and lifetime NOT checked)",
        "  not held gitlab-protected",
        "      ok   claim namespace_path equals \"platform\"",
        "      FAIL claim ref_protected equals \"true\"",
        "  [2] allow deploy-staging             matches request: yes  applies to caller: no",
        "decision:  DENY 403 role_required, rule 'deploy-staging' (roles held: none)",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
}

#[test]
fn explain_verifies_real_tokens() {
    let dir = std::env::temp_dir().join(format!("oam-authz-tok-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/artifact-store/cases.yaml"
    ))
    .unwrap();
    let token = cases
        .lines()
        .find_map(|l| l.trim().strip_prefix("token: "))
        .unwrap();
    let file = dir.join("token.jwt");
    std::fs::write(&file, token).unwrap();
    let args = |now: &'static str| {
        vec![
            "explain".to_string(),
            "examples/artifact-store/app.yaml".into(),
            "--component".into(),
            "store".into(),
            "--token".into(),
            file.to_string_lossy().into_owned(),
            "--method".into(),
            "PUT".into(),
            "--path".into(),
            "/artifacts/builds/x/1/a.tgz".into(),
            "--now".into(),
            now.into(),
        ]
    };
    let a: Vec<String> = args("1767225660");
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let t = out(&o);
    assert!(
        t.contains("token:     verified by provider 'kubernetes'"),
        "{t}"
    );
    assert!(
        t.contains("decision:  ALLOW 200 role_granted, rule 'push-builds'"),
        "{t}"
    );
    let a: Vec<String> = args("1767300000");
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let t = out(&o);
    assert!(t.contains("decision:  DENY 401 token_expired"), "{t}");
}

#[test]
fn explain_rejects_an_unknown_component_with_the_protected_list() {
    let o = run(&["explain", SHOP, "--component", "catalog", "--path", "/"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("no component of that name has a mesh-access trait (protected: frontend, orders, payments)"),
        "{}",
        err(&o)
    );
}

#[test]
fn failing_cases_are_reported_and_fail_the_run() {
    let dir = std::env::temp_dir().join(format!("oam-authz-cases-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = dir.join("cases.yaml");
    std::fs::write(
        &cases,
        "cases:\n  - name: health\n    component: api\n    path: /healthz\n    expect: {decision: allow}\n  - name: wrong\n    component: api\n    method: POST\n    path: /deployments/staging\n    expect: {decision: allow, status: 200}\n",
    )
    .unwrap();
    let o = run(&["test", DEPLOY, cases.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let t = out(&o);
    assert!(t.contains("PASS  cases[0] health"), "{t}");
    assert!(
        t.contains("FAIL  cases[1] wrong (line 6): expected allow 200, got deny 401 token_missing rule 'deploy-staging'"),
        "{t}"
    );
    assert_eq!(t.lines().last(), Some("1 passed, 1 failed"));
}

#[test]
fn cases_files_are_parsed_strictly() {
    let dir = std::env::temp_dir().join(format!("oam-authz-cases2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = dir.join("cases.yaml");
    std::fs::write(
        &cases,
        "cases:\n  - name: x\n    component: api\n    path: /\n    expect: {decison: allow}\n",
    )
    .unwrap();
    let o = run(&["test", DEPLOY, cases.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err(&o).contains("cases.yaml:5:14: cases[0].expect.decison: unknown field `decison`"),
        "{}",
        err(&o)
    );
}

#[test]
fn export_istio_says_what_it_cannot_express() {
    let o = run(&["export-istio", DEPLOY]);
    assert!(o.status.success(), "{}", err(&o));
    let t = out(&o);
    assert!(t.contains("kind: RequestAuthentication"));
    assert!(t.contains("action: DENY"));
    assert!(t.contains("key: request.auth.claims[ref_protected]"));
    assert!(
        t.contains("requestPrincipals:\n        - https://gitlab.example.com/*"),
        "{t}"
    );
    assert!(t.contains("# Not expressible for this application:"));
    assert!(t.contains("forward.claim_headers"));
}

const REMOTE: &str = "examples/remote-jwks/app.yaml";

#[test]
fn explain_needs_jwks_to_verify_a_token_of_a_remote_jwks_provider() {
    let base = [
        "explain",
        REMOTE,
        "--component",
        "invoices",
        "--token",
        "examples/remote-jwks/okta-token.test-only.jwt",
        "--now",
        "1767225660",
        "--method",
        "POST",
        "--path",
        "/invoices/2026-0042/void",
    ];
    let o = run(&base);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        err(&o),
        "error: provider 'okta' fetches its keys at run time (https://example.okta.com/oauth2/default/v1/keys); pass --jwks FILE to verify offline\n"
    );
    let mut with_keys = base.to_vec();
    with_keys.extend(["--jwks", "examples/keys/example-idp.jwks.json"]);
    let o = run(&with_keys);
    let t = out(&o);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        t.contains("token:     verified by provider 'okta' with the keys given by --jwks (signature, issuer, audience, lifetime checked at now=1767225660)"),
        "{t}"
    );
    assert!(
        t.contains("decision:  ALLOW 200 role_granted, rule 'void' (roles held: billing-admins)"),
        "{t}"
    );
    // The keys are really used: a set without the token's key refuses it.
    let dir = std::env::temp_dir().join(format!("oam-authz-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let other = dir.join("other.json");
    let mut set: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/keys/example-idp.jwks.json"
        ))
        .unwrap(),
    )
    .unwrap();
    set["keys"][0]["kid"] = "rotated".into();
    std::fs::write(&other, set.to_string()).unwrap();
    let mut rotated = base.to_vec();
    rotated.extend(["--jwks", other.to_str().unwrap()]);
    let t = out(&run(&rotated));
    assert!(t.contains("decision:  DENY 401 token_unknown_kid"), "{t}");
    // Claims need no keys.
    let o = run(&[
        "explain",
        REMOTE,
        "--component",
        "invoices",
        "--claims",
        r#"{"iss":"https://example.okta.com/oauth2/default","groups":["billing-admins"]}"#,
        "--method",
        "POST",
        "--path",
        "/invoices/1/void",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("decision:  ALLOW 200 role_granted"));
}

#[test]
fn test_takes_jwks_for_token_cases_of_a_remote_jwks_provider() {
    let dir = std::env::temp_dir().join(format!("oam-authz-rcases-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/remote-jwks/okta-token.test-only.jwt"
    ))
    .unwrap();
    let cases = dir.join("cases.yaml");
    std::fs::write(
        &cases,
        format!("now: 1767225660\ncases:\n  - name: admin token\n    component: invoices\n    token: {}\n    method: POST\n    path: /invoices/1/void\n    expect: {{decision: allow, rule: void}}\n", token.trim()),
    )
    .unwrap();
    let o = run(&["test", REMOTE, cases.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "a case that cannot be run");
    assert!(
        out(&o).contains(
            "ERROR cases[0] admin token (line 3): provider 'okta' fetches its keys at run time"
        ),
        "{}",
        out(&o)
    );
    let o = run(&[
        "test",
        REMOTE,
        cases.to_str().unwrap(),
        "--jwks",
        "examples/keys/example-idp.jwks.json",
    ]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(out(&o).lines().last(), Some("1 passed, 0 failed"));
}

#[test]
fn export_istio_turns_remote_jwks_into_jwks_uri() {
    let o = run(&["export-istio", REMOTE]);
    assert!(o.status.success(), "{}", err(&o));
    let t = out(&o);
    assert!(
        t.contains(
            "    jwksUri: https://example.okta.com/oauth2/default/v1/keys\n    timeout: 5s\n"
        ),
        "{t}"
    );
    assert!(!t.contains("    jwks: "), "{t}");
    assert!(
        t.contains("#  - provider 'okta': istiod fetches the JWKS itself"),
        "{t}"
    );
    assert!(t.contains("through the Envoy cluster 'idp-okta', which must exist there (istio/rollout/idp-serviceentry.yaml)"), "{t}");
}

#[test]
fn export_istio_leaves_discovery_from_the_issuer_to_istiod() {
    let app = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/remote-jwks/app.yaml"
    ))
    .unwrap()
    .replace(
        "uri: https://example.okta.com/oauth2/default/v1/keys",
        "discovery: true",
    );
    let dir = std::env::temp_dir().join(format!("oam-authz-disc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("app.yaml");
    std::fs::write(&file, app).unwrap();
    let o = run(&["export-istio", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", err(&o));
    let t = out(&o);
    assert!(!t.contains("jwksUri"), "{t}");
    assert!(
        t.contains("    issuer: https://example.okta.com/oauth2/default\n    timeout: 5s\n"),
        "{t}"
    );
}

/// An Amazon Cognito user pool (docs/cli.md "Presets: the claims real issuers send"): access tokens carry
/// the app client id in `client_id`, no `aud`; groups in `cognito:groups`.
fn cognito_app(dir: &std::path::Path) -> std::path::PathBuf {
    let jwks = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/keys/example-idp.jwks.json"
    ))
    .unwrap();
    let app = format!(
        r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {{name: releases, namespace: rel}}
spec:
  components:
    - name: api
      type: webservice
      properties: {{image: api}}
      traits:
        - type: mesh-access
          properties:
            roles:
              - name: release-managers
                jwt:
                  provider: cognito
                  claims:
                    - {{claim: token_use, equals: access}}
                    - {{claim: "cognito:groups", contains: release-managers}}
            rules:
              - {{name: release, roles: [release-managers], methods: [POST], paths: [/releases]}}
  policies:
    - name: identity
      type: mesh-identity
      properties:
        providers:
          - name: cognito
            issuer: https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123
            audiences: [5r2ekm3pt1pd2kk4fafm4fmd7]
            audienceClaim: client_id
            algorithms: [RS256]
            maxLifetimeSeconds: 3600
            jwks: {jwks}
"#
    );
    let file = dir.join("cognito.yaml");
    std::fs::write(&file, app).unwrap();
    file
}

/// An RS256 token signed with the test-only example key (as examples/keys/mint.py).
fn example_token(claims: serde_json::Value) -> String {
    use jwt_simple::prelude::*;
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/keys/example-idp.test-only.pem"
    ))
    .unwrap();
    let key = RS256KeyPair::from_pem(&pem)
        .unwrap()
        .with_key_id("example-2026");
    let mut c = Claims::with_custom_claims(claims, Duration::from_secs(600));
    c.issued_at = Some(UnixTimeStamp::from_secs(1_767_225_600));
    c.invalid_before = None;
    c.expires_at = Some(UnixTimeStamp::from_secs(1_767_226_200));
    key.sign(c).unwrap()
}

#[test]
fn cognito_access_tokens_are_verified_against_client_id() {
    let dir = std::env::temp_dir().join(format!("oam-authz-cognito-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let app = cognito_app(&dir);
    let app = app.to_str().unwrap();
    let iss = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123";
    let explain = |name: &str, claims: serde_json::Value| {
        let tok = dir.join(name);
        std::fs::write(&tok, example_token(claims)).unwrap();
        out(&run(&[
            "explain",
            app,
            "--component",
            "api",
            "--token",
            tok.to_str().unwrap(),
            "--now",
            "1767225660",
            "--method",
            "POST",
            "--path",
            "/releases",
        ]))
    };
    let access = explain(
        "access.jwt",
        serde_json::json!({"iss": iss, "sub": "u-1", "token_use": "access",
            "client_id": "5r2ekm3pt1pd2kk4fafm4fmd7", "cognito:groups": ["release-managers"]}),
    );
    assert!(
        access.contains("ok   claim cognito:groups contains \"release-managers\""),
        "{access}"
    );
    assert!(
        access.contains("decision:  ALLOW 200 role_granted, rule 'release'"),
        "{access}"
    );
    let id = explain(
        "id.jwt",
        serde_json::json!({"iss": iss, "sub": "u-1", "token_use": "id",
            "aud": "5r2ekm3pt1pd2kk4fafm4fmd7", "cognito:groups": ["release-managers"]}),
    );
    assert!(
        id.contains("token:     refused by provider 'cognito': no 'client_id' claim"),
        "{id}"
    );
    assert!(
        id.contains("decision:  DENY 401 token_audience_mismatch"),
        "{id}"
    );

    let o = run(&["export-istio", app]);
    assert!(o.status.success(), "{}", err(&o));
    let t = out(&o);
    assert!(
        t.contains("    - key: request.auth.claims[client_id]\n      values:\n      - 5r2ekm3pt1pd2kk4fafm4fmd7\n"),
        "{t}"
    );
    assert!(
        t.contains("key: request.auth.claims[cognito:groups]"),
        "{t}"
    );
    assert!(!t.contains("audiences:"), "{t}");
    assert!(
        t.contains("audienceClaim 'client_id' has no RequestAuthentication equivalent"),
        "{t}"
    );
}

#[test]
fn export_istio_writes_a_claim_prefix_as_a_wildcard_value() {
    let o = run(&["export-istio", DEPLOY]);
    let t = out(&o);
    assert!(
        t.contains(
            "    - key: request.auth.claims[namespace_path]\n      values:\n      - platform/*\n"
        ),
        "{t}"
    );
    assert!(
        t.contains(
            "    - key: request.auth.claims[build_branch]\n      values:\n      - release/*\n"
        ),
        "{t}"
    );
}
