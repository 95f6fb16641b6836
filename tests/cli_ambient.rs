//! Istio ambient through the binary: `compile --ambient` / `--waypoint`, the
//! trait's `dataplane`, `waypoint` and `peerIdentity`, their OAM-only checks
//! with exact messages, and `export-istio --ambient`.

#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

const SHOP: &str = "examples/shop/app.yaml";
const DEPLOY: &str = "examples/deploy-api/app.yaml";
const URL: &str = "oci://registry.example.com/oam-authz/filter:0.1.0";

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

/// Every YAML document of a multi-document stream, as JSON.
fn docs(text: &str) -> Vec<Value> {
    text.split("\n---\n")
        .map(|d| serde_norway::from_str::<Value>(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn write(name: &str, yaml: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("oam-authz-ambient-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    file
}

/// Two protected components; `TRAITS` is replaced by each test.
fn app(api_extra: &str, web_extra: &str) -> String {
    format!(
        r#"apiVersion: core.oam.dev/v1beta1
kind: Application
metadata: {{name: demo, namespace: demo}}
spec:
  components:
    - name: web
      type: webservice
      properties: {{image: web, serviceAccountName: web}}
      traits:
        - type: mesh-access
          properties:
            {web_extra}
            rules:
              - {{name: health, public: true, methods: [GET], paths: [/healthz]}}
    - name: api
      type: webservice
      properties: {{image: api, serviceAccountName: api}}
      traits:
        - type: mesh-access
          properties:
            {api_extra}
            roles:
              - {{name: web, principals: [web]}}
            rules:
              - {{name: read, roles: [web], methods: [GET], paths: ["/items/{{*}}"]}}
"#
    )
}

/// `validate` of an inline application: its stdout lines, and the exit code.
fn validate(name: &str, yaml: &str, extra: &[&str]) -> (Vec<String>, i32) {
    let file = write(name, yaml);
    let mut args = vec!["validate", file.to_str().unwrap()];
    args.extend(extra);
    let o = run(&args);
    // "file:line:column: " (positions are cli_validate.rs's concern).
    let prefix = format!("{}:", file.display());
    let lines = out(&o)
        .lines()
        .map(|l| match l.strip_prefix(&prefix) {
            Some(rest) => rest
                .splitn(3, ':')
                .nth(2)
                .map_or(rest, str::trim_start)
                .to_string(),
            None => l.to_string(),
        })
        .collect();
    (lines, o.status.code().unwrap_or(-1))
}

#[test]
fn ambient_plugins_target_each_components_service() {
    let o = run(&[
        "compile",
        SHOP,
        "--url",
        URL,
        "--ambient",
        "--namespace-default",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let plugins = docs(&out(&o));
    assert_eq!(
        plugins.len(),
        4,
        "three protected components and catalog's default deny"
    );
    for p in &plugins {
        let spec = &p["spec"];
        let component = p["metadata"]["labels"]["app.oam.dev/component"]
            .as_str()
            .unwrap();
        assert_eq!(p["metadata"]["namespace"], "shop");
        assert_eq!(
            spec["targetRefs"],
            serde_json::json!([{"group": "", "kind": "Service", "name": component}]),
            "{p}"
        );
        assert!(spec.get("selector").is_none(), "{p}");
        assert!(
            spec.get("match").is_none(),
            "no ports or mode on a waypoint: {p}"
        );
        assert_eq!(spec["phase"], "AUTHN");
        assert_eq!(spec["failStrategy"], "FAIL_CLOSE");
        // auto (the default) is not written: the same config serves sidecars
        assert!(spec["pluginConfig"].get("peer_identity").is_none(), "{p}");
    }
    // The plugin configs are the sidecar ones, byte for byte.
    let envoy = run(&["compile", SHOP, "--format", "envoy"]);
    let sidecar: Value = serde_json::from_str(&out(&envoy)).unwrap();
    for p in plugins.iter().take(3) {
        let name = p["metadata"]["name"].as_str().unwrap();
        assert_eq!(p["spec"]["pluginConfig"], sidecar[name], "{name}");
    }
}

#[test]
fn waypoint_flag_targets_the_gateway_of_a_single_component() {
    let o = run(&[
        "compile",
        DEPLOY,
        "--url",
        URL,
        "--ambient",
        "--waypoint",
        "delivery-waypoint",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let p = &docs(&out(&o))[0];
    assert_eq!(
        p["spec"]["targetRefs"],
        serde_json::json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "delivery-waypoint"}])
    );
    assert_eq!(p["metadata"]["namespace"], "delivery");
}

#[test]
fn waypoint_flag_refuses_an_application_with_several_components() {
    let o = run(&[
        "compile",
        SHOP,
        "--url",
        URL,
        "--ambient",
        "--waypoint",
        "shop-waypoint",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("application shop: spec.components: --waypoint shop-waypoint attaches every protected component to one waypoint, which runs every plugin attached to it on all its traffic, so each policy would also judge the others' requests; this application protects 3 components (frontend, orders, payments): drop --waypoint to attach each to its Service"),
        "{}",
        err(&o)
    );
    assert_eq!(out(&o), "");
}

#[test]
fn waypoint_flag_needs_ambient_and_a_valid_name() {
    let o = run(&["compile", DEPLOY, "--url", URL, "--waypoint", "w"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("--ambient"), "{}", err(&o));
    let o = run(&[
        "compile",
        DEPLOY,
        "--url",
        URL,
        "--ambient",
        "--waypoint",
        "Shop_WP",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        err(&o),
        "error: --waypoint: waypoint 'Shop_WP' is not a Kubernetes object name (lowercase letters, digits, '-' and '.', at most 253 characters)\n"
    );
}

#[test]
fn trait_chooses_dataplane_waypoint_and_peer_identity() {
    let yaml = app(
        "dataplane: ambient\n            peerIdentity: istio_waypoint",
        "waypoint: web-waypoint",
    );
    let file = write("trait-choice", &yaml);
    let o = run(&["compile", file.to_str().unwrap(), "--url", URL]);
    assert!(o.status.success(), "{}", err(&o));
    let d = docs(&out(&o));
    assert_eq!(d[0]["spec"]["targetRefs"][0]["kind"], "Gateway");
    assert_eq!(d[0]["spec"]["targetRefs"][0]["name"], "web-waypoint");
    assert_eq!(d[1]["spec"]["targetRefs"][0]["kind"], "Service");
    assert_eq!(d[1]["spec"]["targetRefs"][0]["name"], "api");
    assert_eq!(
        d[1]["spec"]["pluginConfig"]["peer_identity"],
        "istio_waypoint"
    );
    assert!(d[0]["spec"]["pluginConfig"].get("peer_identity").is_none());
    // peerIdentity is policy: the sidecar form carries it too
    let o = run(&["compile", file.to_str().unwrap(), "--format", "envoy"]);
    let cfg: Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(cfg["oam-authz-demo-api"]["peer_identity"], "istio_waypoint");
}

#[test]
fn connection_identity_on_a_waypoint_is_refused() {
    let api = "spec.components[1].traits[0].properties";
    let msg = format!("component api: {api}.peerIdentity: 'connection' sees no caller on a waypoint: its HTTP filters run on an internal connection without TLS; use 'auto' (the default) or 'istio_waypoint'");
    let yaml = app(
        "dataplane: ambient\n            peerIdentity: connection",
        "",
    );
    assert_eq!(validate("conn-trait", &yaml, &[]), (vec![msg.clone()], 1));
    // the same trait on a sidecar is fine, until --ambient says otherwise
    let yaml = app("peerIdentity: connection", "");
    assert_eq!(validate("conn-sidecar", &yaml, &[]), (vec![], 0));
    assert_eq!(validate("conn-flag", &yaml, &["--ambient"]), (vec![msg], 1));
}

#[test]
fn trait_waypoint_checks() {
    let web = "spec.components[0].traits[0].properties";
    let api = "spec.components[1].traits[0].properties";
    let yaml = app("", "dataplane: sidecar\n            waypoint: w");
    assert_eq!(
        validate("sidecar-waypoint", &yaml, &[]),
        (vec![format!("component web: {web}.waypoint: a waypoint applies only to the ambient data plane: remove 'waypoint', or set dataplane: ambient")], 1)
    );
    let yaml = app("", "waypoint: Web_WP");
    assert_eq!(
        validate("bad-waypoint", &yaml, &[]),
        (vec![format!("component web: {web}.waypoint: waypoint 'Web_WP' is not a Kubernetes object name (lowercase letters, digits, '-' and '.', at most 253 characters)")], 1)
    );
    let yaml = app("waypoint: shared", "waypoint: shared");
    assert_eq!(
        validate("shared-waypoint", &yaml, &[]),
        (vec![format!("component api: {api}.waypoint: components 'web' and 'api' both attach to waypoint 'shared': a waypoint runs every plugin attached to it on all its traffic, so each policy would also judge the other's requests; attach to the Services instead (no waypoint) or give each component its own waypoint")], 1)
    );
    let yaml = app("peerIdentity: header", "");
    let (lines, code) = validate("bad-peer", &yaml, &[]);
    assert_eq!(code, 1);
    assert!(
        lines[0].starts_with(&format!("component api: {api}.peerIdentity: unknown variant `header`, expected one of `auto`, `connection`, `istio_waypoint`")),
        "{lines:?}"
    );
}

#[test]
fn export_istio_ambient_attaches_like_the_plugins() {
    let o = run(&["export-istio", DEPLOY, "--ambient"]);
    assert!(o.status.success(), "{}", err(&o));
    let text = out(&o);
    assert!(text.contains("#  - ambient: the policies attach to the waypoint with targetRefs, as the WasmPlugins do; a selector-based AuthorizationPolicy would be enforced by ztunnel, which sees no HTTP (no methods, paths, hosts or request principals)\n"), "{text}");
    assert!(text.contains("#  - ambient: on a waypoint, AuthorizationPolicy principals match the HBONE tunnel's identity (filter state io.istio.peer_principal), as the filter's peerIdentity auto does; RequestAuthentication is enforced there too\n"), "{text}");
    let all = docs(&text);
    assert_eq!(all.len(), 3, "RequestAuthentication, DENY, ALLOW");
    for d in &all {
        assert_eq!(
            d["spec"]["targetRefs"],
            serde_json::json!([{"group": "", "kind": "Service", "name": "api"}]),
            "{d}"
        );
        assert!(d["spec"].get("selector").is_none(), "{d}");
    }
    // without --ambient, nothing of that
    let o = run(&["export-istio", DEPLOY]);
    assert!(!out(&o).contains("ambient"));
    assert!(!out(&o).contains("targetRefs"));
}

fn schema(name: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("istio/schemas")
        .join(name);
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::draft202012::new(&v).unwrap()
}

#[test]
fn schemas_know_the_new_fields() {
    let plugin = schema("plugin-config.schema.json");
    let cfg = |peer: &str| {
        serde_json::json!({"schema_version": 1, "trust_domain": "cluster.local", "peer_identity": peer,
            "rules": [{"name": "h", "public": true}]})
    };
    for ok in ["auto", "connection", "istio_waypoint"] {
        assert!(plugin.is_valid(&cfg(ok)), "{ok}");
    }
    assert!(!plugin.is_valid(&cfg("header")));
    let access = schema("mesh-access.schema.json");
    let props = |extra: Value| {
        let mut p = serde_json::json!({"rules": [{"name": "h", "public": true}]});
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p
    };
    let good = props(
        serde_json::json!({"dataplane": "ambient", "waypoint": "shop-waypoint.v1", "peerIdentity": "istio_waypoint"}),
    );
    assert!(access.is_valid(&good));
    for bad in [
        serde_json::json!({"dataplane": "sidecars"}),
        serde_json::json!({"waypoint": "Shop_WP"}),
        serde_json::json!({"waypoint": "-shop"}),
        serde_json::json!({"peerIdentity": "istioWaypoint"}),
    ] {
        assert!(!access.is_valid(&props(bad.clone())), "{bad}");
    }
}
