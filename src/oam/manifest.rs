//! Rendering compiled components as Istio `WasmPlugin` resources (or as the
//! plain plugin configuration for a standalone Envoy).
//!
//! Output is deterministic: fields in a fixed order, maps sorted, no
//! timestamps, so the same application always gives byte-identical output
//! and a checked-in copy can be compared in CI.

use super::compile::CompiledComponent;
use super::load::Application;
use super::lower::Attach;
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
    /// `compile --ambient`: the default-deny plugins attach to Services too.
    pub ambient: bool,
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

/// Exactly one of `selector` (sidecars) and `target_refs` (waypoints) is set:
/// a sidecar ignores a plugin with targetRefs, a waypoint one without.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WasmPluginSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<Selector>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<TargetRef>,
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
    /// Sidecars only: inbound traffic. A waypoint matches plugins as an
    /// inbound listener of port 0, so `ports` would never match there.
    #[serde(rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub traffic: Vec<TrafficSelector>,
    pub plugin_config: PluginConfig,
}

/// Istio's `PolicyTargetReference`: `group` "" is the core API group.
#[derive(Debug, Clone, Serialize)]
pub struct TargetRef {
    pub group: &'static str,
    pub kind: &'static str,
    pub name: String,
}

impl TargetRef {
    /// The attachment's target; `None` for sidecars.
    pub fn of(attach: &Attach, component: &str) -> Option<TargetRef> {
        match attach {
            Attach::Sidecar => None,
            Attach::Service => Some(TargetRef {
                group: "",
                kind: "Service",
                name: component.to_string(),
            }),
            Attach::Waypoint(w) => Some(TargetRef {
                group: "gateway.networking.k8s.io",
                kind: "Gateway",
                name: w.clone(),
            }),
        }
    }
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
    attach: &Attach,
) -> WasmPlugin {
    let mut meta_labels = labels(&app.name, component);
    meta_labels.insert("app.kubernetes.io/managed-by".into(), "oam-authz".into());
    let target = TargetRef::of(attach, component);
    WasmPlugin {
        api_version: "extensions.istio.io/v1alpha1",
        kind: "WasmPlugin",
        metadata: Metadata {
            name,
            namespace: app.namespace.clone(),
            labels: meta_labels,
        },
        spec: WasmPluginSpec {
            selector: match target {
                Some(_) => None,
                None => Some(Selector {
                    match_labels: labels(&app.name, component),
                }),
            },
            url: settings.url.clone(),
            sha256: settings.sha256.clone(),
            image_pull_policy: settings.image_pull_policy.clone(),
            image_pull_secret: settings.image_pull_secret.clone(),
            phase: "AUTHN",
            priority: settings.priority,
            fail_strategy: "FAIL_CLOSE",
            plugin_type: "HTTP",
            traffic: match target {
                Some(_) => Vec::new(),
                None => vec![TrafficSelector { mode: "SERVER" }],
            },
            target_refs: target.into_iter().collect(),
            plugin_config: config,
        },
    }
}

/// Deny-everything configuration for components without a mesh-access trait
/// (`compile --namespace-default`).
pub fn default_deny_config(app: &str, component: &str, trust_domain: &str) -> PluginConfig {
    PluginConfig {
        signature_backend: Default::default(),
        peer_identity: Default::default(),
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

/// A component without a policy is denied where the protected ones are
/// enforced: on its Service's waypoint with `--ambient` or when every
/// protected component is ambient, else on its sidecar. Never on a named
/// waypoint, where it would deny the protected component's traffic too.
fn default_deny_attach(compiled: &[CompiledComponent], settings: &PluginSettings) -> Attach {
    let all_ambient = !compiled.is_empty() && compiled.iter().all(|c| c.attach != Attach::Sidecar);
    if settings.ambient || all_ambient {
        Attach::Service
    } else {
        Attach::Sidecar
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
    let mut items: Vec<(String, String, PluginConfig, Attach)> = compiled
        .iter()
        .map(|c| {
            (
                plugin_name(&app.name, &c.component),
                c.component.clone(),
                c.config.clone(),
                c.attach.clone(),
            )
        })
        .collect();
    if namespace_default {
        let default_attach = default_deny_attach(compiled, settings);
        for comp in app.components.iter().filter(|c| c.access.is_none()) {
            items.push((
                format!("{}-default-deny", plugin_name(&app.name, &comp.name)),
                comp.name.clone(),
                default_deny_config(&app.name, &comp.name, &trust_domain),
                default_attach.clone(),
            ));
        }
    }
    for (name, component, config, attach) in items {
        match format {
            Format::WasmPlugin => {
                let plugin = wasm_plugin(app, name.clone(), &component, config, settings, &attach);
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
