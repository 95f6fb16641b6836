//! Rendering compiled components as Istio `WasmPlugin` resources (or as the
//! plain plugin configuration for a standalone Envoy).
//!
//! Output is deterministic: fields in a fixed order, maps sorted, no
//! timestamps, so the same application always gives byte-identical output
//! and a checked-in copy can be compared in CI.

use super::compile::CompiledComponent;
use super::load::Application;
use crate::config::{Effect, Mode, PluginConfig, RuleConfig, SCHEMA_VERSION};
use serde::Serialize;
use std::collections::BTreeMap;

pub const LABEL_APP: &str = "app.oam.dev/name";
pub const LABEL_COMPONENT: &str = "app.oam.dev/component";

/// Settings of the generated `WasmPlugin`s that do not come from the app.
#[derive(Debug, Clone)]
pub struct PluginSettings {
    /// Where Istio pulls the module from (`oci://`, `https://`, `file://`).
    pub url: String,
    /// Hex SHA-256 of the module, pinned in the resource.
    pub sha256: Option<String>,
    /// Order among AUTHN plugins; higher runs first.
    pub priority: i64,
    /// `IfNotPresent` or `Always` (Istio's default: `IfNotPresent`, but
    /// `Always` for an OCI `:latest` tag).
    pub image_pull_policy: Option<String>,
    /// A docker-registry Secret in the application's namespace, for a
    /// private registry.
    pub image_pull_secret: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmPlugin {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Metadata,
    pub spec: WasmPluginSpec,
}

#[derive(Debug, Serialize)]
pub struct Metadata {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmPluginSpec {
    pub selector: Selector,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<String>,
    /// AUTHN: see `istio/ROLLOUT.md` ("Why phase AUTHN").
    pub phase: &'static str,
    pub priority: i64,
    pub fail_strategy: &'static str,
    #[serde(rename = "type")]
    pub plugin_type: &'static str,
    #[serde(rename = "match")]
    pub traffic: Vec<TrafficSelector>,
    pub plugin_config: PluginConfig,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Selector {
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct TrafficSelector {
    pub mode: &'static str,
}

/// Name of the WasmPlugin protecting a component.
pub fn plugin_name(app: &str, component: &str) -> String {
    format!("oam-authz-{app}-{component}")
}

fn labels(app: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_APP.to_string(), app.to_string()),
        (LABEL_COMPONENT.to_string(), component.to_string()),
    ])
}

pub fn wasm_plugin(
    app: &Application,
    name: String,
    component: &str,
    config: PluginConfig,
    settings: &PluginSettings,
) -> WasmPlugin {
    let mut meta_labels = labels(&app.name, component);
    meta_labels.insert("app.kubernetes.io/managed-by".into(), "oam-authz".into());
    WasmPlugin {
        api_version: "extensions.istio.io/v1alpha1",
        kind: "WasmPlugin",
        metadata: Metadata {
            name,
            namespace: app.namespace.clone(),
            labels: meta_labels,
        },
        spec: WasmPluginSpec {
            selector: Selector {
                match_labels: labels(&app.name, component),
            },
            url: settings.url.clone(),
            sha256: settings.sha256.clone(),
            image_pull_policy: settings.image_pull_policy.clone(),
            image_pull_secret: settings.image_pull_secret.clone(),
            phase: "AUTHN",
            priority: settings.priority,
            fail_strategy: "FAIL_CLOSE",
            plugin_type: "HTTP",
            traffic: vec![TrafficSelector { mode: "SERVER" }],
            plugin_config: config,
        },
    }
}

/// Deny-everything configuration for components without a mesh-access trait
/// (`compile --namespace-default`).
pub fn default_deny_config(app: &str, component: &str, trust_domain: &str) -> PluginConfig {
    PluginConfig {
        signature_backend: Default::default(),
        schema_version: SCHEMA_VERSION,
        policy_version: Some(format!("{app}/{component}@default-deny")),
        mode: Mode::Enforce,
        trust_domain: trust_domain.to_string(),
        trust_domain_aliases: Vec::new(),
        providers: Vec::new(),
        roles: Vec::new(),
        rules: vec![RuleConfig {
            name: "default-deny".into(),
            effect: Effect::Deny,
            roles: None,
            public: false,
            hosts: None,
            methods: None,
            paths: None,
        }],
        forward: None,
        allow_encoded_percent: false,
    }
}

/// One rendered output document.
#[derive(Debug)]
pub struct Rendered {
    /// File name inside `--out-dir`.
    pub file_name: String,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    WasmPlugin,
    Envoy,
}

fn yaml<T: Serialize>(v: &T) -> Result<String, String> {
    serde_norway::to_string(v).map_err(|e| format!("cannot render YAML: {e}"))
}

fn json<T: Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string_pretty(v)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| format!("cannot render JSON: {e}"))
}

/// The first line of every YAML file `compile` writes; `--out-dir` finds
/// the files it wrote before by it.
pub fn generated_header(source: &str, app: &str) -> String {
    format!(
        "# Generated by oam-authz compile from {source} (application {app}). Do not edit: change the application and recompile.\n"
    )
}

/// Render every compiled component (and, with `namespace_default`, a
/// deny-all plugin for each unprotected component).
pub fn render(
    app: &Application,
    source: &str,
    compiled: &[CompiledComponent],
    format: Format,
    settings: &PluginSettings,
    namespace_default: bool,
) -> Result<Vec<Rendered>, String> {
    let mut out = Vec::new();
    let header = generated_header(source, &app.name);
    let trust_domain = compiled
        .first()
        .map(|c| c.config.trust_domain.clone())
        .unwrap_or_else(|| super::lower::DEFAULT_TRUST_DOMAIN.to_string());
    let mut items: Vec<(String, String, PluginConfig)> = compiled
        .iter()
        .map(|c| {
            (
                plugin_name(&app.name, &c.component),
                c.component.clone(),
                c.config.clone(),
            )
        })
        .collect();
    if namespace_default {
        for comp in app.components.iter().filter(|c| c.access.is_none()) {
            items.push((
                format!("{}-default-deny", plugin_name(&app.name, &comp.name)),
                comp.name.clone(),
                default_deny_config(&app.name, &comp.name, &trust_domain),
            ));
        }
    }
    for (name, component, config) in items {
        match format {
            Format::WasmPlugin => {
                let plugin = wasm_plugin(app, name.clone(), &component, config, settings);
                out.push(Rendered {
                    file_name: format!("{name}.yaml"),
                    text: format!("{header}{}", yaml(&plugin)?),
                });
            }
            Format::Envoy => out.push(Rendered {
                file_name: format!("{name}.json"),
                text: json(&config)?,
            }),
        }
    }
    Ok(out)
}

/// Everything on one stream: YAML documents separated by `---`, or a JSON
/// object `{"<plugin name>": <config>, ...}`.
pub fn join_stdout(items: &[Rendered], format: Format) -> Result<String, String> {
    match format {
        Format::WasmPlugin => Ok(items
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join("---\n")),
        Format::Envoy => {
            if let [only] = items {
                return Ok(only.text.clone());
            }
            let mut map = BTreeMap::new();
            for r in items {
                let v: serde_json::Value = serde_json::from_str(&r.text)
                    .map_err(|e| format!("internal: re-reading rendered JSON: {e}"))?;
                map.insert(r.file_name.trim_end_matches(".json").to_string(), v);
            }
            json(&map)
        }
    }
}
