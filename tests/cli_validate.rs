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
    /// Findings without their line and column.
    stdout: String,
    /// Findings as printed (file renamed app.yaml).
    raw: String,
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
    let stdout =
        String::from_utf8_lossy(&out.stdout).replace(&format!("{}:", file.display()), "app.yaml:");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: stdout
            .lines()
            .map(strip_position)
            .collect::<Vec<_>>()
            .join("\n"),
        raw: String::from_utf8_lossy(&out.stdout).replace(&file.display().to_string(), "app.yaml"),
    }
}

/// `app.yaml:12:7: …` -> `app.yaml: …`: the messages are compared here, the
/// positions in `findings_carry_line_and_column`.
fn strip_position(line: &str) -> String {
    let Some(rest) = line.strip_prefix("app.yaml:") else {
        return line.to_string();
    };
    let mut parts = rest.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(l), Some(c), Some(tail))
            if l.bytes().all(|b| b.is_ascii_digit()) && c.bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("app.yaml:{tail}")
        }
        _ => line.to_string(),
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
    assert_eq!(
        r.raw.trim(),
        "app.yaml:2:1: not valid YAML: did not find expected ',' or ']' at line 2 column 1, while parsing a flow sequence at line 1 column 4",
    );
    let tab = base().replacen("      type: webservice", "\ttype: webservice", 1);
    let r = validate("tab", &tab, &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains("(line 9 is indented with a tab: YAML allows only spaces for indentation)"),
        "{}",
        r.stdout
    );
    for (name, text, what) in [
        ("empty", "\n# nothing here\n", "the file is empty"),
        (
            "deployment",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
            "the file holds Deployment 'web' (apps/v1)",
        ),
        (
            "two-others",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\nkind: Service\n",
            "the file holds ConfigMap 'c' (v1), Service",
        ),
    ] {
        let r = validate(name, text, &[]);
        assert_eq!(r.code, 1, "{name}");
        assert_eq!(
            r.stdout.trim(),
            format!("app.yaml: no OAM Application found: {what}; oam-authz reads the Application that lists the components, with 'apiVersion: core.oam.dev/v1beta1' and 'kind: Application'"),
            "{name}"
        );
    }
}

#[test]
fn findings_carry_line_and_column() {
    let yaml = with("roles: [ci]", "roles: [cd]");
    let r = validate("positions", &yaml, &[]);
    // rules[2].roles[0] is `cd` on line 24; roles[1] (unused) starts on line 19.
    let lines: Vec<&str> = r.raw.lines().collect();
    assert!(
        lines.contains(&"app.yaml:24:40: component api: spec.components[1].traits[0].properties.rules[2].roles[0]: rule 'deploy' names role 'cd', which is not defined (defined: ci, web)"),
        "{}",
        r.raw
    );
    assert!(
        lines.contains(&"app.yaml:19:17: component api: spec.components[1].traits[0].properties.roles[1]: warning: role 'ci' is defined but no rule uses it"),
        "{}",
        r.raw
    );
    // An engine finding (mapped from the plugin config) gets its OAM field's line too.
    let r = validate(
        "positions-engine",
        &with("paths: [\"/items/{*}\"]", "paths: [\"/items/{**}/raw\"]"),
        &["-o", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&r.raw).unwrap();
    let f = &v[0];
    assert_eq!(
        (f["line"].as_u64(), f["column"].as_u64()),
        (Some(23), Some(68))
    );
    assert_eq!(f["application"], "demo");
    assert_eq!(f["component"], "api");
    // A missing field is reported at its parent.
    let r = validate(
        "positions-missing",
        &with("            audiences: [https://api.example.com]\n", ""),
        &["-o", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&r.raw).unwrap();
    assert_eq!(
        v[0]["path"],
        "spec.policies[0].properties.providers[0].audiences"
    );
    assert_eq!(v[0]["line"], 30, "{v}");
}

#[test]
fn every_finding_names_its_application() {
    let r = validate(
        "app-names",
        &with(
            "issuer: https://gitlab.example.com",
            "issuer: gitlab.example.com",
        )
        .replacen("roles: [ci]", "roles: [cd]", 1),
        &["--output", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&r.raw).unwrap();
    let list = v.as_array().unwrap();
    assert!(list.len() >= 2, "{v}");
    for f in list {
        assert_eq!(f["application"], "demo", "{f}");
    }
    assert!(!r.raw.contains("\"?\""), "{}", r.raw);
    // Unnamed policies and components are numbered, not '?'.
    let unnamed = base().replacen(
        "    - name: identity\n      type: mesh-identity",
        "    - type: mesh-identity",
        1,
    );
    let r = validate(
        "unnamed-policy",
        &unnamed.replacen("maxLifetimeSeconds: 3600", "maxLifetime: 1", 1),
        &["-o", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&r.raw).unwrap();
    assert_eq!(v[0]["policy"], "#0", "{v}");
}

#[test]
fn traits_indented_under_properties_are_an_error_with_a_hint() {
    // The whole traits block indented under properties, as a slip of the editor does.
    let b = base();
    let start = b.find("      traits:\n").unwrap();
    let end = b.find("  policies:").unwrap();
    let moved: String = b[start..end].lines().map(|l| format!("  {l}\n")).collect();
    let head = b[..start].replacen(
        "      properties: {image: api, serviceAccountName: api}\n",
        "      properties:\n        image: api\n        serviceAccountName: api\n",
        1,
    );
    let yaml = format!("{head}{moved}{}", &b[end..]);
    let r = validate("traits-under-properties", &yaml, &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let got: Vec<&str> = r.stdout.lines().collect();
    assert!(got.contains(&"app.yaml: component api: spec.components[1].properties.traits[0]: a mesh-access trait under 'properties': traits belong to the component, next to 'properties' (outdent 'traits:' to the level of 'properties:'); here it protects nothing, and KubeVela passes it to the workload as an unknown property"), "{}", r.stdout);
    assert!(got.contains(&"app.yaml: application demo: spec.components: no component has a mesh-access trait (a mesh-access trait sits under a component's 'properties', see above: move 'traits:' up a level): nothing is protected and compile generates nothing, so every service of the application is left open; add a mesh-access trait to the components to protect, or pass --allow-unprotected if that is intended"), "{}", r.stdout);
    // --allow-unprotected does not excuse the misplaced trait.
    assert_eq!(
        validate(
            "traits-under-properties-allowed",
            &yaml,
            &["--allow-unprotected"]
        )
        .code,
        1
    );
}

#[test]
fn an_application_that_protects_nothing_is_an_error_unless_allowed() {
    let start = base()
        .find("      traits:\n        - type: mesh-access")
        .unwrap();
    let end = base().find("  policies:").unwrap();
    let mut yaml = base();
    yaml.replace_range(start..end, "");
    let r = validate("unprotected", &yaml, &[]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("app.yaml: application demo: spec.components: no component has a mesh-access trait: nothing is protected"), "{}", r.stdout);
    let r = validate("unprotected-allowed", &yaml, &["--allow-unprotected"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("spec.components: warning: no component has a mesh-access trait"),
        "{}",
        r.stdout
    );
}

#[test]
fn sarif_and_code_quality_outputs() {
    let yaml = with("roles: [ci]", "roles: [cd]");
    let r = validate("sarif", &yaml, &["--output", "sarif"]);
    assert_eq!(r.code, 1);
    let v: serde_json::Value = serde_json::from_str(&r.raw).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "oam-authz");
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{v}");
    let e = results.iter().find(|r| r["level"] == "error").unwrap();
    assert_eq!(e["ruleId"], "mesh-access.rules.roles");
    let rule_index = e["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(
        run["tool"]["driver"]["rules"][rule_index]["id"],
        "mesh-access.rules.roles"
    );
    let loc = &e["locations"][0]["physicalLocation"];
    assert!(loc["artifactLocation"]["uri"]
        .as_str()
        .unwrap()
        .ends_with("app.yaml"));
    assert_eq!(loc["region"]["startLine"], 24);
    assert_eq!(loc["region"]["startColumn"], 40);
    assert!(e["message"]["text"].as_str().unwrap().starts_with(
        "spec.components[1].traits[0].properties.rules[2].roles[0]: rule 'deploy' names role 'cd'"
    ));
    let w = results.iter().find(|r| r["level"] == "warning").unwrap();
    assert_eq!(w["ruleId"], "mesh-access.roles");

    let r = validate("codequality", &yaml, &["-o", "codequality"]);
    let v: serde_json::Value = serde_json::from_str(&r.raw).unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let e = list.iter().find(|f| f["severity"] == "major").unwrap();
    assert_eq!(e["check_name"], "mesh-access.rules.roles");
    assert_eq!(e["location"]["lines"]["begin"], 24);
    assert_eq!(e["fingerprint"].as_str().unwrap().len(), 64);
    assert!(list.iter().any(|f| f["severity"] == "minor"));
}

#[test]
fn a_dash_reads_the_application_from_standard_input() {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_oam-authz"))
        .args(["validate", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(with("roles: [ci]", "roles: [cd]").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("<stdin>:"), "{stdout}");
    assert!(stdout.contains("rule 'deploy' names role 'cd'"), "{stdout}");
    // Twice '-' is refused: standard input can be read once.
    let o = Command::new(env!("CARGO_BIN_EXE_oam-authz"))
        .args(["validate", "-", "-"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("'-' (standard input) is given twice"));
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
    // docs/cli.md and docs/operations.md say '|' is allowed in cluster names.
    for cluster in ["\"idp|x\"", "\"outbound|80||gitlab.example.com\""] {
        let piped = remote(&format!(
            "{{uri: \"https://gitlab.example.com/oauth/discovery/keys\", cluster: {cluster}}}"
        ));
        expect("remote-pipe", &piped, 0, &[]);
    }

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
