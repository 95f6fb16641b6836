//! `oam-authz validate` on bad OAM input: each mistake gets one precise line
//! `file: component X: field.path: message`, and a non-zero exit.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::path::PathBuf;
use std::process::Command;

fn modulus() -> String {
    let jwks = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/keys/example-idp.jwks.json"
    ))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    v["keys"][0]["n"].as_str().unwrap().to_string()
}

/// A small valid application; tests replace one piece of it.
fn base() -> String {
    r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: demo
  namespace: demo
spec:
  components:
    - name: web
      type: webservice
      properties: {image: web, serviceAccountName: web}
    - name: api
      type: webservice
      properties: {image: api, serviceAccountName: api}
      traits:
        - type: mesh-access
          properties:
            roles:
              - {name: web, principals: [web]}
              - name: ci
                jwt: {provider: gitlab, claims: [{claim: ref_protected, equals: "true"}]}
            rules:
              - {name: health, public: true, methods: [GET], paths: [/healthz]}
              - {name: read, roles: [web], methods: [GET], paths: ["/items/{*}"]}
              - {name: deploy, roles: [ci], methods: [POST], paths: [/deploy]}
  policies:
    - name: identity
      type: mesh-identity
      properties:
        providers:
          - name: gitlab
            issuer: https://gitlab.example.com
            audiences: [https://api.example.com]
            algorithms: [RS256]
            maxLifetimeSeconds: 3600
            jwks: {keys: [{kty: RSA, kid: k1, use: sig, alg: RS256, e: AQAB, n: MODULUS}]}
"#
    .replace("MODULUS", &modulus())
}

fn with(from: &str, to: &str) -> String {
    let b = base();
    assert!(b.contains(from), "fixture does not contain {from:?}");
    b.replacen(from, to, 1)
}

struct Run {
    code: i32,
    stdout: String,
}

fn validate(name: &str, yaml: &str, extra: &[&str]) -> Run {
    let dir = std::env::temp_dir().join(format!("oam-authz-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file: PathBuf = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_oam-authz"))
        .arg("validate")
        .arg(&file)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout)
        .replace(&format!("{}: ", file.display()), "app.yaml: ");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout,
    }
}

/// Exactly these lines, in any order.
fn expect(name: &str, yaml: &str, code: i32, lines: &[&str]) {
    let r = validate(name, yaml, &[]);
    let mut got: Vec<&str> = r.stdout.lines().collect();
    let mut want = lines.to_vec();
    got.sort();
    want.sort();
    assert_eq!(got, want, "{name}: full output:\n{}", r.stdout);
    assert_eq!(r.code, code, "{name}: exit code");
}

const TRAIT: &str = "spec.components[1].traits[0].properties";

#[test]
fn base_is_clean() {
    expect("base", &base(), 0, &[]);
}

#[test]
fn unknown_field_in_a_rule() {
    expect(
        "unknown-field",
        &with("methods: [POST]", "method: [POST]"),
        1,
        &[&format!("app.yaml: component api: {TRAIT}.rules[2].method: unknown field `method`, expected one of `name`, `effect`, `roles`, `public`, `hosts`, `methods`, `paths`")],
    );
}

#[test]
fn unknown_field_in_the_identity_policy() {
    expect(
        "unknown-policy-field",
        &with("maxLifetimeSeconds: 3600", "maxLifetime: 3600"),
        1,
        &["app.yaml: policy identity: spec.policies[0].properties.providers[0].maxLifetime: unknown field `maxLifetime`, expected one of `name`, `issuer`, `audiences`, `algorithms`, `jwks`, `remoteJwks`, `from`, `clockSkewSeconds`, `maxLifetimeSeconds`, `forwardToken`, `audienceClaim`, `allowHttpIssuer`"],
    );
}

#[test]
fn rule_names_an_undefined_role() {
    expect(
        "undefined-role",
        &with("roles: [ci]", "roles: [cd]"),
        1,
        &[
            &format!("app.yaml: component api: {TRAIT}.rules[2].roles[0]: rule 'deploy' names role 'cd', which is not defined (defined: ci, web)"),
            &format!("app.yaml: component api: {TRAIT}.roles[1]: warning: role 'ci' is defined but no rule uses it"),
        ],
    );
}

#[test]
fn principal_names_a_missing_component() {
    expect(
        "unknown-component",
        &with("principals: [web]", "principals: [webb]"),
        1,
        &[&format!("app.yaml: component api: {TRAIT}.roles[0].principals[0]: principal 'webb' names no component of application 'demo' (components: web, api); for a workload outside the application write 'ns/<namespace>/sa/<service-account>'")],
    );
}

#[test]
fn identity_shared_by_components_is_a_warning() {
    let yaml = with(
        "properties: {image: web, serviceAccountName: web}",
        "properties: {image: web}",
    )
    .replacen(
        "properties: {image: api, serviceAccountName: api}",
        "properties: {image: api}",
        1,
    );
    expect(
        "shared-identity",
        &yaml,
        0,
        &[&format!("app.yaml: component api: {TRAIT}.roles[0].principals[0]: warning: principal 'web' is spiffe://cluster.local/ns/demo/sa/default, an identity shared by components web, api: all of them hold role 'web'; give 'web' its own service account (the service-account trait or properties.serviceAccountName)")],
    );
    let strict = validate("shared-identity-strict", &yaml, &["--strict"]);
    assert_eq!(strict.code, 1, "--strict fails on warnings");
}

#[test]
fn rule_shadowed_by_a_deny_rule() {
    let yaml = with(
        "- {name: health,",
        "- {name: no-items, effect: deny, paths: [\"/items/*\"]}\n              - {name: health,",
    );
    expect(
        "shadowed-by-deny",
        &yaml,
        1,
        &[&format!("app.yaml: component api: {TRAIT}.rules[2]: allow rule 'read' is unreachable: deny rule 'no-items' (rules[0]) matches every request it matches, for the same callers, and deny rules win wherever they are; remove it or narrow the other rule")],
    );
}

#[test]
fn rule_shadowed_by_an_earlier_allow_rule() {
    let yaml = with(
        "- {name: deploy, roles: [ci], methods: [POST], paths: [/deploy]}",
        "- {name: deploy, roles: [ci], methods: [POST], paths: [/deploy]}\n              - {name: read-one, roles: [web], methods: [GET], paths: [/items/42]}",
    );
    expect(
        "shadowed-by-allow",
        &yaml,
        1,
        &[&format!("app.yaml: component api: {TRAIT}.rules[3]: allow rule 'read-one' is unreachable: the earlier allow rule 'read' (rules[1]) matches every request it matches, for the same callers; remove it or narrow the other rule")],
    );
}

#[test]
fn malformed_path() {
    expect(
        "malformed-path",
        &with("paths: [\"/items/{*}\"]", "paths: [\"/items/{**}/raw\"]"),
        1,
        &[&format!("app.yaml: component api: {TRAIT}.rules[1].paths[0]: '/items/{{**}}/raw': '{{**}}' must be the last segment")],
    );
}

#[test]
fn provider_without_audience() {
    expect(
        "no-audience",
        &with("            audiences: [https://api.example.com]\n", ""),
        1,
        &["app.yaml: policy identity: spec.policies[0].properties.providers[0].audiences: provider 'gitlab' has no audience: without one, a token that https://gitlab.example.com minted for any other service would be accepted here; list the audience your callers request (the 'aud' claim)"],
    );
}

#[test]
fn token_lifetime_over_the_limit() {
    expect(
        "long-lifetime",
        &with("maxLifetimeSeconds: 3600", "maxLifetimeSeconds: 604800"),
        1,
        &["app.yaml: policy identity: spec.policies[0].properties.providers[0].maxLifetimeSeconds: maxLifetimeSeconds 604800 is over the limit of 86400 s: a stolen token would stay usable that long; CI and workload tokens live minutes (GitLab and Buildkite: 5-60 min, Kubernetes projected tokens: 1 h)"],
    );
    let r = validate(
        "long-lifetime-org",
        &base(),
        &["--max-token-lifetime", "900"],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("maxLifetimeSeconds 3600 is over the limit of 900 s"),
        "{}",
        r.stdout
    );
}

#[test]
fn gitlab_ref_protected_as_boolean() {
    expect(
        "ref-protected-bool",
        &with("equals: \"true\"", "equals: true"),
        1,
        &[&format!("app.yaml: component api: {TRAIT}.roles[1].jwt.claims[0].equals: GitLab sends 'ref_protected' as the string \"true\" or \"false\"; a boolean never equals it, so this condition can never hold: quote the value (equals: \"true\")")],
    );
}

#[test]
fn role_uses_an_undefined_provider() {
    expect(
        "undefined-provider",
        &with("provider: gitlab", "provider: github"),
        1,
        &[&format!("app.yaml: component api: {TRAIT}.roles[1].jwt.provider: provider 'github' is not defined (defined: gitlab)")],
    );
}

#[test]
fn bad_principal_pattern() {
    expect(
        "bad-principal",
        &with("principals: [web]", "principals: [\"ns/demo/sa/we*\"]"),
        1,
        &[&format!("app.yaml: component api: {TRAIT}.roles[0].principals[0]: 'ns/demo/sa/we*': expected 'spiffe://<td>/ns/<ns>/sa/<sa>', 'spiffe://<td>/*', 'ns/<ns>/sa/<sa>', 'ns/<ns>/sa/*', 'ns/<ns>/*' or '*'")],
    );
}

#[test]
fn allow_rule_without_subjects() {
    expect(
        "no-subjects",
        &with("{name: health, public: true,", "{name: health,"),
        1,
        &[&format!("app.yaml: component api: {TRAIT}.rules[0]: allow rule 'health' says neither who may call ('roles') nor 'public: true'")],
    );
}

#[test]
fn duplicate_rule_name() {
    expect(
        "duplicate-rule",
        &with("{name: deploy,", "{name: read,"),
        1,
        &[&format!(
            "app.yaml: component api: {TRAIT}.rules[2].name: duplicate rule name 'read'"
        )],
    );
}

#[test]
fn identity_policy_used_as_a_trait() {
    let yaml = with(
        "        - type: mesh-access",
        "        - type: mesh-identity\n          properties: {}\n        - type: mesh-access",
    );
    expect(
        "policy-as-trait",
        &yaml,
        1,
        &["app.yaml: component api: spec.components[1].traits[0].type: 'mesh-identity' is an application policy: put it under spec.policies"],
    );
}

#[test]
fn engine_errors_surface_with_the_oam_path() {
    // The reserved-header check lives only in the engine (Policy::compile).
    let yaml = with(
        "              - {name: deploy,",
        "              - {name: deploy,",
    )
    .replacen(
        "  policies:",
        "            forward: {subjectHeader: authorization}\n  policies:",
        1,
    );
    expect(
        "engine-error",
        &yaml,
        1,
        &[&format!("app.yaml: component api: {TRAIT}.forward.subjectHeader: 'authorization' is a reserved header and cannot carry identity")],
    );
}

#[test]
fn invalid_jwks_is_reported_by_the_engine() {
    expect(
        "bad-jwks",
        &with("e: AQAB", "e: \"!!\""),
        1,
        &["app.yaml: policy identity: spec.policies[0].properties.providers[0].jwks.keys[0].e: not unpadded base64url: Invalid symbol 33, offset 0."],
    );
}

#[test]
fn json_output_carries_the_same_fields() {
    let r = validate(
        "json",
        &with("roles: [ci]", "roles: [cd]"),
        &["--output", "json"],
    );
    assert_eq!(r.code, 1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let first = &v[0];
    assert_eq!(first["severity"], "error");
    assert_eq!(first["component"], "api");
    assert_eq!(first["path"], format!("{TRAIT}.rules[2].roles[0]"));
    assert!(first["message"].as_str().unwrap().contains("role 'cd'"));
}

#[test]
fn not_yaml_and_not_an_application() {
    let r = validate("not-yaml", "a: [b\n", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .starts_with("app.yaml: application ?: not valid YAML: "),
        "{}",
        r.stdout
    );
    let r = validate("no-app", "apiVersion: v1\nkind: ConfigMap\n", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("no OAM Application found"),
        "{}",
        r.stdout
    );
}

/// The base provider with its keys fetched at run time instead of inline.
fn remote(settings: &str) -> String {
    let b = base();
    let start = b.find("            jwks: {keys:").unwrap();
    let end = b[start..].find('\n').unwrap() + start + 1;
    format!(
        "{}            remoteJwks: {settings}\n{}",
        &b[..start],
        &b[end..]
    )
}

const PROVIDER: &str = "spec.policies[0].properties.providers[0]";

#[test]
fn remote_jwks_is_accepted_and_compiled() {
    let yaml = remote("{uri: \"https://gitlab.example.com/oauth/discovery/keys\", cluster: idp-gitlab, refreshSeconds: 600, timeoutMs: 2000, maxStaleSeconds: 3600, minRefetchIntervalSeconds: 60}");
    expect("remote-ok", &yaml, 0, &[]);
    let expect_discovery = remote("{cluster: idp-gitlab, discovery: true}");
    expect("remote-discovery", &expect_discovery, 0, &[]);

    let dir = std::env::temp_dir().join(format!("oam-authz-remote-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("app.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_oam-authz"))
        .args(["compile", "--format", "envoy"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &cfg["providers"][0];
    assert!(p.get("jwks").is_none(), "{p}");
    assert_eq!(
        p["remote_jwks"],
        serde_json::json!({"uri": "https://gitlab.example.com/oauth/discovery/keys", "cluster": "idp-gitlab",
            "refresh_seconds": 600, "timeout_ms": 2000, "max_stale_seconds": 3600,
            "min_refetch_interval_seconds": 60})
    );
}

#[test]
fn jwks_and_remote_jwks_exclude_each_other() {
    let both = with(
        "            jwks: {keys:",
        "            remoteJwks: {uri: \"https://gitlab.example.com/keys\", cluster: idp}\n            jwks: {keys:",
    );
    expect(
        "remote-both",
        &both,
        1,
        &[&format!("app.yaml: policy identity: {PROVIDER}.remoteJwks: set either jwks (inline keys) or remoteJwks (keys fetched at run time), not both")],
    );
    let b = base();
    let start = b.find("            jwks: {keys:").unwrap();
    let neither = &b[..start];
    expect(
        "remote-neither",
        neither,
        1,
        &[&format!("app.yaml: policy identity: {PROVIDER}.jwks: required: the public keys of 'https://gitlab.example.com', either inline (jwks: {{keys: [...]}}) or fetched by the filter at run time (remoteJwks: {{uri: <JWKS URL>, cluster: <Envoy cluster of the IdP>}})")],
    );
}

#[test]
fn remote_jwks_errors_come_from_the_engine_with_the_oam_path() {
    for (name, settings, line) in [
        (
            "remote-bad-uri",
            "{uri: \"gitlab.example.com/keys\", cluster: idp}",
            "remoteJwks.uri: 'gitlab.example.com/keys' is not an absolute http(s) URL",
        ),
        (
            "remote-user-info",
            "{uri: \"https://user@gitlab.example.com/keys\", cluster: idp}",
            "remoteJwks.uri: URL must not carry user info",
        ),
        (
            "remote-no-uri",
            "{cluster: idp}",
            "remoteJwks.uri: required (the JWKS URL), unless discovery is true",
        ),
        (
            "remote-empty-cluster",
            "{uri: \"https://gitlab.example.com/keys\", cluster: \"\"}",
            "remoteJwks.cluster: must not be empty",
        ),
        (
            "remote-refresh",
            "{uri: \"https://gitlab.example.com/keys\", cluster: idp, refreshSeconds: 0}",
            "remoteJwks.refreshSeconds: 0 is out of range (allowed 1..=86400)",
        ),
        (
            "remote-stale",
            "{uri: \"https://gitlab.example.com/keys\", cluster: idp, refreshSeconds: 600, maxStaleSeconds: 300}",
            "remoteJwks.maxStaleSeconds: 300 is out of range (allowed 600..=604800) (it must be at least refreshSeconds)",
        ),
        (
            "remote-control-char-cluster",
            "{uri: \"https://gitlab.example.com/keys\", cluster: \"outbound|80||gitlab\\texample.com\"}",
            "remoteJwks.cluster: must not contain control characters",
        ),
        (
            "remote-typo",
            "{uri: \"https://gitlab.example.com/keys\", cluster: idp, refresh_seconds: 60}",
            "remoteJwks.refresh_seconds: unknown field `refresh_seconds`, expected one of `uri`, `cluster`, `refreshSeconds`, `timeoutMs`, `maxStaleSeconds`, `minRefetchIntervalSeconds`, `discovery`",
        ),
    ] {
        expect(
            name,
            &remote(settings),
            1,
            &[&format!("app.yaml: policy identity: {PROVIDER}.{line}")],
        );
    }
}

#[test]
fn issuer_that_is_not_an_https_url_is_an_error_also_without_strict() {
    let yaml = with(
        "issuer: https://gitlab.example.com",
        "issuer: gitlab.acme.example",
    );
    let line = "app.yaml: policy identity: spec.policies[0].properties.providers[0].issuer: 'gitlab.acme.example' is not an https:// URL (did you mean 'https://gitlab.acme.example'?): identity providers send 'iss' as a URL, compared exactly, so every token would be refused with token_issuer_unknown; write the issuer exactly as its tokens carry it (the 'issuer' of <issuer>/.well-known/openid-configuration)";
    expect("issuer-no-scheme", &yaml, 1, &[line]);
    let http = with(
        "issuer: https://gitlab.example.com",
        "issuer: http://gitlab.example.com",
    );
    expect(
        "issuer-http",
        &http,
        1,
        &["app.yaml: policy identity: spec.policies[0].properties.providers[0].issuer: 'http://gitlab.example.com' is a plain http:// URL: real identity providers are https:// (OpenID Connect Discovery 1.0, section 3); http:// is accepted for loopback hosts, or with 'allowHttpIssuer: true' for a test environment"],
    );
    let allowed = http.replacen(
        "issuer: http://gitlab.example.com",
        "issuer: http://gitlab.example.com\n            allowHttpIssuer: true",
        1,
    );
    expect("issuer-http-allowed", &allowed, 0, &[]);
    let loopback = with(
        "issuer: https://gitlab.example.com",
        "issuer: http://127.0.0.1:8080",
    );
    expect("issuer-http-loopback", &loopback, 0, &[]);
}

#[test]
fn claim_prefix_on_a_gitlab_path_without_a_slash_is_a_warning() {
    let yaml = with(
        "claims: [{claim: ref_protected, equals: \"true\"}]",
        "claims: [{claim: namespace_path, prefix: platform}]",
    );
    expect(
        "prefix-no-slash",
        &yaml,
        0,
        &[&format!("app.yaml: component api: {TRAIT}.roles[1].jwt.claims[0].prefix: warning: prefix 'platform' on 'namespace_path' also matches 'platform-other/…' and 'platformx/…', groups anyone may create on the GitLab instance; end it with '/' ('platform/' matches the subgroups and projects of 'platform') and match 'platform' itself with equals")],
    );
    let good = with(
        "claims: [{claim: ref_protected, equals: \"true\"}]",
        "claims: [{claim: namespace_path, prefix: platform/}]",
    );
    expect("prefix-slash", &good, 0, &[]);
    let empty = with(
        "claims: [{claim: ref_protected, equals: \"true\"}]",
        "claims: [{claim: namespace_path, prefix: \"\"}]",
    );
    expect(
        "prefix-empty",
        &empty,
        1,
        &[&format!("app.yaml: component api: {TRAIT}.roles[1].jwt.claims[0].prefix: must not be empty: an empty prefix matches every string claim")],
    );
}

#[test]
fn deny_rule_with_a_rest_template_warns_of_the_gap_an_allow_rule_fills() {
    let deny = "- {name: no-internal, effect: deny, paths: [\"/items/internal/{**}\"]}\n              - {name: health,";
    let yaml = with("- {name: health,", deny);
    expect(
        "deny-gap-one",
        &yaml,
        0,
        &[&format!("app.yaml: component api: {TRAIT}.rules[0].paths[0]: warning: deny rule 'no-internal' path '/items/internal/{{**}}' matches only below its prefix ('{{**}}' is one or more segments), not '/items/internal'; allow rule 'read' (rules[2]) allows it; add '/items/internal' to the deny rule's paths if it must be denied too")],
    );
    let prefix = yaml.replacen("paths: [\"/items/{*}\"]", "paths: [\"/items/*\"]", 1);
    expect(
        "deny-gap-both",
        &prefix,
        0,
        &[&format!("app.yaml: component api: {TRAIT}.rules[0].paths[0]: warning: deny rule 'no-internal' path '/items/internal/{{**}}' matches only below its prefix ('{{**}}' is one or more segments), not '/items/internal' or '/items/internal/'; allow rule 'read' (rules[2]) allows them; add '/items/internal' and '/items/internal/' to the deny rule's paths if they must be denied too")],
    );
    let fixed = prefix.replacen(
        "paths: [\"/items/internal/{**}\"]",
        "paths: [\"/items/internal\", \"/items/internal/\", \"/items/internal/{**}\"]",
        1,
    );
    expect("deny-gap-closed", &fixed, 0, &[]);
    // A deny rule for other methods than the allow rule leaves no gap to it.
    let other_method = prefix.replacen(
        "effect: deny, paths:",
        "effect: deny, methods: [DELETE], paths:",
        1,
    );
    expect("deny-gap-other-method", &other_method, 0, &[]);
}
