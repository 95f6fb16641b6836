//! Reading OAM `Application` documents from YAML.
//!
//! Only the parts oam-authz owns are parsed strictly (the `mesh-access`
//! trait, the `mesh-identity` policy); the rest of the application (workload
//! properties, other traits, workflow) belongs to KubeVela and is read only
//! for names, namespaces and service accounts.

use super::finding::{Finding, Scope};
use super::model::{
    MeshAccess, MeshIdentity, POLICY_MESH_IDENTITY, TRAIT_MESH_ACCESS, TRAIT_SERVICE_ACCOUNT,
};
use super::position::{positions, Positions};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// An application, ready for compilation.
#[derive(Debug, Clone)]
pub struct Application {
    pub name: String,
    /// `metadata.namespace`, else `default`.
    pub namespace: String,
    pub components: Vec<Component>,
    pub identity: Option<IdentityPolicy>,
    /// A mesh-identity policy is present but could not be read: components
    /// are not checked against it (that would only repeat the one error).
    pub identity_invalid: bool,
    /// Where each field of its document is.
    pub(crate) positions: Positions,
}

#[derive(Debug, Clone)]
pub struct IdentityPolicy {
    pub name: String,
    /// Path of the policy's `properties`, e.g. `spec.policies[0].properties`.
    pub path: String,
    pub spec: MeshIdentity,
}

#[derive(Debug, Clone)]
pub struct Component {
    pub name: String,
    /// `spec.components[i]`.
    pub path: String,
    pub service_account: String,
    /// Where the service account came from, for messages.
    pub service_account_origin: String,
    pub access: Option<AccessTrait>,
    /// A mesh-access trait is present but could not be read.
    pub access_invalid: bool,
    /// `properties.traits` holds a mesh-access trait (indented one level
    /// too deep, so KubeVela and the CLI see no trait).
    pub traits_in_properties: bool,
}

#[derive(Debug, Clone)]
pub struct AccessTrait {
    /// Path of the trait's `properties`, e.g. `spec.components[1].traits[0].properties`.
    pub path: String,
    pub spec: MeshAccess,
}

impl Application {
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }
}

/// Kubernetes object names (RFC 1123 label for namespaces and service accounts).
pub fn valid_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Subdomain-style names (service accounts may contain dots).
pub fn valid_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(valid_dns_label)
}

/// Parse with serde, reporting the field path inside `value` on error.
pub fn strict<T: DeserializeOwned>(value: &Value, base: &str) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value.clone()).map_err(|e| {
        let inner = e.path().to_string();
        let path = if inner == "." || inner.is_empty() {
            base.to_string()
        } else {
            format!("{base}.{inner}")
        };
        (path, e.into_inner().to_string())
    })
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// What a YAML document that is not an Application is, for the message.
fn describe_document(v: &Value) -> String {
    let kind = str_at(v, "kind").unwrap_or("a document without 'kind'");
    let name = v
        .get("metadata")
        .and_then(|m| str_at(m, "name"))
        .map(|n| format!(" '{n}'"))
        .unwrap_or_default();
    let api = str_at(v, "apiVersion")
        .map(|a| format!(" ({a})"))
        .unwrap_or_default();
    format!("{kind}{name}{api}")
}

/// A YAML syntax error, saying "tab" when a tab is what broke it (YAML
/// indents with spaces only; the parser's own words never say so).
fn yaml_error(text: &str, e: &serde_norway::Error) -> Finding {
    let mut message = format!("not valid YAML: {e}");
    let line = e.location().map(|l| l.line());
    let tab_line = text
        .lines()
        .enumerate()
        .filter(|(i, _)| line.is_none_or(|l| *i < l))
        .find(|(_, l)| l.trim_start_matches(' ').starts_with('\t'))
        .map(|(i, _)| i + 1);
    if let Some(n) = tab_line {
        message.push_str(&format!(
            " (line {n} is indented with a tab: YAML allows only spaces for indentation)"
        ));
    }
    let mut f = Finding::error(Scope::File, "", message);
    f.pos = e.location().map(|l| super::position::Pos {
        line: l.line(),
        column: l.column(),
    });
    f
}

/// Load every `Application` in a (multi-document) YAML text. Findings carry
/// no file name yet; the caller sets it.
pub fn load_str(text: &str) -> (Vec<Application>, Vec<Finding>) {
    let mut apps = Vec::new();
    let mut findings = Vec::new();
    let mut others = Vec::new();
    let mut docs = positions(text).into_iter();
    for doc in serde_norway::Deserializer::from_str(text) {
        let pos = docs.next().unwrap_or_default();
        let value = match Value::deserialize(doc) {
            Ok(v) => v,
            Err(e) => {
                findings.push(yaml_error(text, &e));
                return (apps, findings);
            }
        };
        if value.is_null() {
            continue;
        }
        if str_at(&value, "kind") != Some("Application") {
            others.push(describe_document(&value));
            continue;
        }
        let mut found = Vec::new();
        let app = load_application(&value, &mut found);
        for f in &mut found {
            f.pos = pos.find(&f.path);
            f.application = app.as_ref().map(|a| a.name.clone());
        }
        findings.extend(found);
        if let Some(mut app) = app {
            app.positions = pos;
            apps.push(app);
        }
    }
    if apps.is_empty() && findings.is_empty() {
        let what = if others.is_empty() {
            "the file is empty".to_string()
        } else {
            format!("the file holds {}", others.join(", "))
        };
        findings.push(Finding::error(
            Scope::File,
            "",
            format!("no OAM Application found: {what}; oam-authz reads the Application that lists the components, with 'apiVersion: core.oam.dev/v1beta1' and 'kind: Application'"),
        ));
    }
    (apps, findings)
}

fn load_application(doc: &Value, findings: &mut Vec<Finding>) -> Option<Application> {
    let name = doc
        .get("metadata")
        .and_then(|m| str_at(m, "name"))
        .map(str::to_string);
    let scope_app = name.clone().map_or(Scope::File, Scope::Application);
    match str_at(doc, "apiVersion") {
        Some(v) if v.starts_with("core.oam.dev/") => {}
        other => findings.push(Finding::error(
            scope_app.clone(),
            "apiVersion",
            format!(
                "'{}': an OAM Application has apiVersion core.oam.dev/v1beta1",
                other.unwrap_or("")
            ),
        )),
    }
    let Some(name) = name else {
        findings.push(Finding::error(
            scope_app,
            "metadata.name",
            "required: the application name (it becomes the app.oam.dev/name label)",
        ));
        return None;
    };
    let namespace = match doc.get("metadata").and_then(|m| m.get("namespace")) {
        None | Some(Value::Null) => "default".to_string(),
        Some(Value::String(ns)) if valid_dns_label(ns) => ns.clone(),
        Some(other) => {
            findings.push(Finding::error(
                scope_app.clone(),
                "metadata.namespace",
                format!("{other}: a Kubernetes namespace name (lowercase letters, digits, '-')"),
            ));
            "default".to_string()
        }
    };

    let spec = doc.get("spec");
    let components = load_components(spec, &scope_app, findings);
    let (identity, identity_invalid) = load_identity(spec, &scope_app, findings);

    Some(Application {
        name,
        namespace,
        components,
        identity,
        identity_invalid,
        positions: Positions::default(),
    })
}

/// `spec.components`, each read for its name, service account and traits.
fn load_components(
    spec: Option<&Value>,
    scope_app: &Scope,
    findings: &mut Vec<Finding>,
) -> Vec<Component> {
    let empty = Vec::new();
    let comps = match spec.and_then(|s| s.get("components")) {
        Some(Value::Array(list)) => list,
        Some(_) => {
            findings.push(Finding::error(
                scope_app.clone(),
                "spec.components",
                "must be a list of components",
            ));
            &empty
        }
        None => {
            findings.push(Finding::error(
                scope_app.clone(),
                "spec.components",
                "required: an application needs at least one component",
            ));
            &empty
        }
    };
    let mut components: Vec<Component> = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        if let Some(comp) = load_component(c, i, &components, findings) {
            components.push(comp);
        }
    }
    components
}

/// The application's `mesh-identity` policy (at most one), and whether one
/// is present but could not be read.
fn load_identity(
    spec: Option<&Value>,
    scope_app: &Scope,
    findings: &mut Vec<Finding>,
) -> (Option<IdentityPolicy>, bool) {
    let mut identity: Option<IdentityPolicy> = None;
    let mut identity_invalid = false;
    let policies = match spec.and_then(|s| s.get("policies")) {
        Some(Value::Array(list)) => list.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => {
            findings.push(Finding::error(
                scope_app.clone(),
                "spec.policies",
                "must be a list of policies",
            ));
            &[]
        }
    };
    for (i, p) in policies.iter().enumerate() {
        let path = format!("spec.policies[{i}]");
        let pname = str_at(p, "name").map_or_else(|| format!("#{i}"), str::to_string);
        let scope = Scope::Policy(pname.clone());
        match str_at(p, "type") {
            Some(POLICY_MESH_IDENTITY) => {}
            Some(TRAIT_MESH_ACCESS) => {
                findings.push(Finding::error(
                    scope,
                    format!("{path}.type"),
                    "'mesh-access' is a component trait: put it under the protected component's traits",
                ));
                continue;
            }
            _ => continue,
        }
        if let Some(prev) = &identity {
            findings.push(Finding::error(
                scope,
                path,
                format!(
                    "a second mesh-identity policy; the application already has '{}' and the two would disagree on issuers and trust domain: merge them",
                    prev.name
                ),
            ));
            continue;
        }
        let ppath = format!("{path}.properties");
        let props = p.get("properties").cloned().unwrap_or(Value::Null);
        let props = if props.is_null() {
            Value::Object(Default::default())
        } else {
            props
        };
        match strict::<MeshIdentity>(&props, &ppath) {
            Ok(spec) => {
                identity = Some(IdentityPolicy {
                    name: pname,
                    path: ppath,
                    spec,
                })
            }
            Err((fpath, msg)) => {
                identity_invalid = true;
                findings.push(Finding::error(scope, fpath, msg))
            }
        }
    }

    (identity, identity_invalid)
}

/// A component's service account and where it was set (for messages).
struct ServiceAccount {
    name: String,
    origin: String,
}

impl ServiceAccount {
    /// `properties.serviceAccountName`, else `default`.
    fn of_properties(c: &Value, path: &str, scope: &Scope, findings: &mut Vec<Finding>) -> Self {
        let mut sa = ServiceAccount {
            name: "default".to_string(),
            origin: "default (no service-account trait or serviceAccountName)".to_string(),
        };
        let Some(v) = c
            .get("properties")
            .and_then(|p| p.get("serviceAccountName"))
        else {
            return sa;
        };
        match v.as_str() {
            Some(s) if valid_dns_subdomain(s) => {
                sa.name = s.to_string();
                sa.origin = format!("{path}.properties.serviceAccountName");
            }
            _ => findings.push(Finding::error(
                scope.clone(),
                format!("{path}.properties.serviceAccountName"),
                format!("{v}: a Kubernetes service account name"),
            )),
        }
        sa
    }

    /// KubeVela's `service-account` trait, which wins over the property.
    fn set_by_trait(&mut self, t: &Value, ppath: &str, scope: &Scope, findings: &mut Vec<Finding>) {
        let name = t.get("properties").and_then(|p| p.get("name"));
        match name.and_then(Value::as_str) {
            Some(s) if valid_dns_subdomain(s) => {
                if self.name != "default" && self.name != s {
                    findings.push(Finding::warning(
                        scope.clone(),
                        format!("{ppath}.name"),
                        format!(
                            "service account '{s}' overrides serviceAccountName '{}'; the trait wins",
                            self.name
                        ),
                    ));
                }
                self.name = s.to_string();
                self.origin = format!("{ppath}.name");
            }
            _ => findings.push(Finding::error(
                scope.clone(),
                format!("{ppath}.name"),
                "required: the service account name (lowercase letters, digits, '-', '.')",
            )),
        }
    }
}

/// `traits:` indented under `properties:` (a YAML slip that leaves the
/// component unprotected: the workload gets an unknown property and no
/// trait). An error when a mesh-access trait is there; true if so.
fn check_traits_in_properties(
    c: &Value,
    path: &str,
    scope: &Scope,
    findings: &mut Vec<Finding>,
) -> bool {
    let Some(Value::Array(list)) = c.get("properties").and_then(|p| p.get("traits")) else {
        return false;
    };
    let Some(j) = list
        .iter()
        .position(|t| str_at(t, "type") == Some(TRAIT_MESH_ACCESS))
    else {
        return false;
    };
    findings.push(Finding::error(
        scope.clone(),
        format!("{path}.properties.traits[{j}]"),
        "a mesh-access trait under 'properties': traits belong to the component, next to 'properties' (outdent 'traits:' to the level of 'properties:'); here it protects nothing, and KubeVela passes it to the workload as an unknown property",
    ));
    true
}

/// The properties of a `mesh-access` trait, read strictly; `None` (after a
/// finding) when they cannot be read.
fn read_access(
    t: &Value,
    ppath: String,
    scope: &Scope,
    findings: &mut Vec<Finding>,
) -> Option<AccessTrait> {
    let props = t.get("properties").cloned().unwrap_or(Value::Null);
    if props.is_null() {
        findings.push(Finding::error(
            scope.clone(),
            ppath,
            "required: the trait needs at least 'rules'",
        ));
        return None;
    }
    match strict::<MeshAccess>(&props, &ppath) {
        Ok(spec) => Some(AccessTrait { path: ppath, spec }),
        Err((fpath, msg)) => {
            findings.push(Finding::error(scope.clone(), fpath, msg));
            None
        }
    }
}

fn load_component(
    c: &Value,
    i: usize,
    seen: &[Component],
    findings: &mut Vec<Finding>,
) -> Option<Component> {
    let path = format!("spec.components[{i}]");
    let Some(name) = str_at(c, "name") else {
        findings.push(Finding::error(
            Scope::Component(format!("#{i}")),
            format!("{path}.name"),
            "required: the component name",
        ));
        return None;
    };
    let scope = Scope::Component(name.to_string());
    if seen.iter().any(|s| s.name == name) {
        findings.push(Finding::error(
            scope.clone(),
            format!("{path}.name"),
            format!("duplicate component name '{name}'"),
        ));
        return None;
    }

    let mut sa = ServiceAccount::of_properties(c, &path, &scope, findings);
    let traits_in_properties = check_traits_in_properties(c, &path, &scope, findings);

    let mut access: Option<AccessTrait> = None;
    let mut access_invalid = false;
    let traits = match c.get("traits") {
        Some(Value::Array(list)) => list.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => {
            findings.push(Finding::error(
                scope.clone(),
                format!("{path}.traits"),
                "must be a list of traits",
            ));
            &[]
        }
    };
    for (j, t) in traits.iter().enumerate() {
        let tpath = format!("{path}.traits[{j}]");
        let ppath = format!("{tpath}.properties");
        match str_at(t, "type") {
            Some(TRAIT_MESH_ACCESS) => {
                if access.is_some() {
                    findings.push(Finding::error(
                        scope.clone(),
                        tpath,
                        "a second mesh-access trait on the same component; merge their roles and rules into one",
                    ));
                    continue;
                }
                match read_access(t, ppath, &scope, findings) {
                    Some(a) => access = Some(a),
                    None => access_invalid = true,
                }
            }
            Some(TRAIT_SERVICE_ACCOUNT) => sa.set_by_trait(t, &ppath, &scope, findings),
            Some(POLICY_MESH_IDENTITY) => findings.push(Finding::error(
                scope.clone(),
                format!("{tpath}.type"),
                "'mesh-identity' is an application policy: put it under spec.policies",
            )),
            _ => {}
        }
    }
    Some(Component {
        name: name.to_string(),
        path,
        service_account: sa.name,
        service_account_origin: sa.origin,
        access,
        access_invalid,
        traits_in_properties,
    })
}
