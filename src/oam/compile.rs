//! OAM application -> one compiled policy per protected component.
//!
//! Each component is lowered to a plugin configuration (`lower`), checked
//! by the engine's own validator (`Policy::check`, exactly what the filter
//! runs at load time), and every engine diagnostic is mapped back to the
//! OAM field path (`spec.components[1].traits[0].properties.rules[2]
//! .paths[0]`) and camelCase wording. Nothing the filter would refuse can
//! pass `validate`, and no check is written twice.

use super::analyze;
use super::finding::{Finding, Scope, Severity};
use super::load::{AccessTrait, Application, Component};
use super::lower::{lower_component, lower_identity, Attach, IdentityCtx, Lowered, PathMap};
use super::model::MeshIdentity;
use crate::config::PluginConfig;
use crate::error::{Diagnostic, FieldPath, Naming, Seg};
use crate::policy::Policy;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

pub use super::lower::Options;

#[derive(Debug)]
pub struct CompiledComponent {
    pub component: String,
    pub namespace: String,
    pub config: PluginConfig,
    pub policy: Policy,
    pub paths: PathMap,
    /// Where its WasmPlugin attaches.
    pub attach: Attach,
}

/// Compile every protected component. Components with errors are left out
/// of the result; all findings (errors and warnings) are returned, deduplicated.
pub fn compile_app(app: &Application, opts: &Options) -> (Vec<CompiledComponent>, Vec<Finding>) {
    let mut findings = Vec::new();
    let default_identity = MeshIdentity::default();
    let app_identity = match &app.identity {
        Some(p) => IdentityCtx {
            scope: Scope::Policy(p.name.clone()),
            path: p.path.clone(),
            spec: &p.spec,
        },
        None => IdentityCtx {
            scope: Scope::Application(app.name.clone()),
            path: "spec.policies".into(),
            spec: &default_identity,
        },
    };
    check_identity(app, &app_identity, opts, &mut findings);

    let mut out = Vec::new();
    if app.identity_invalid {
        return (out, findings);
    }
    for comp in &app.components {
        let Some(access) = &comp.access else { continue };
        let ctx = match &access.spec.identity {
            Some(id) => {
                if let Some(p) = &app.identity {
                    findings.push(Finding::warning(
                        Scope::Component(comp.name.clone()),
                        format!("{}.identity", access.path),
                        format!(
                            "this component's own identity settings replace the application's mesh-identity policy '{}' for it",
                            p.name
                        ),
                    ));
                }
                let ctx = IdentityCtx {
                    scope: Scope::Component(comp.name.clone()),
                    path: format!("{}.identity", access.path),
                    spec: id,
                };
                check_identity(app, &ctx, opts, &mut findings);
                ctx
            }
            None => app_identity.clone(),
        };
        if let Some(c) = compile_component(app, comp, access, &ctx, opts, &mut findings) {
            out.push(c);
        }
    }
    shared_waypoints(app, &out, opts, &mut findings);
    check_something_is_protected(app, opts, &mut findings);
    let mut seen = BTreeSet::new();
    findings.retain(|f| seen.insert(f.clone()));
    (out, findings)
}

/// An application that protects nothing is a mistake (a trait indented
/// under `properties`, a typo'd trait type) unless said otherwise: `compile`
/// would generate nothing and leave the service open.
fn check_something_is_protected(app: &Application, opts: &Options, findings: &mut Vec<Finding>) {
    if app
        .components
        .iter()
        .any(|c| c.access.is_some() || c.access_invalid)
    {
        return;
    }
    let misplaced = app.components.iter().any(|c| c.traits_in_properties);
    let hint = if misplaced {
        " (a mesh-access trait sits under a component's 'properties', see above: move 'traits:' up a level)"
    } else {
        ""
    };
    let message = format!(
        "no component has a mesh-access trait{hint}: nothing is protected and compile generates nothing, so every service of the application is left open; add a mesh-access trait to the components to protect, or pass --allow-unprotected if that is intended"
    );
    let scope = Scope::Application(app.name.clone());
    findings.push(if opts.allow_unprotected {
        Finding::warning(scope, "spec.components", message)
    } else {
        Finding::error(scope, "spec.components", message)
    });
}

/// OAM-only: a plugin attached to a waypoint runs on every request through
/// it, so two components on one waypoint would each enforce their rules on
/// the other's traffic (Istio: pilot/pkg/model/policyattachment.go).
fn shared_waypoints(
    app: &Application,
    compiled: &[CompiledComponent],
    opts: &Options,
    findings: &mut Vec<Finding>,
) {
    if let (Some(w), [_, _, ..]) = (&opts.waypoint, compiled) {
        let names: Vec<&str> = compiled.iter().map(|c| c.component.as_str()).collect();
        findings.push(Finding::error(
            Scope::Application(app.name.clone()),
            "spec.components",
            format!(
                "--waypoint {w} attaches every protected component to one waypoint, which runs every plugin attached to it on all its traffic, so each policy would also judge the others' requests; this application protects {} components ({}): drop --waypoint to attach each to its Service",
                names.len(),
                names.join(", ")
            ),
        ));
        return;
    }
    for (i, c) in compiled.iter().enumerate() {
        let Attach::Waypoint(w) = &c.attach else {
            continue;
        };
        if let Some(first) = compiled.iter().take(i).find(|o| o.attach == c.attach) {
            findings.push(Finding::error(
                Scope::Component(c.component.clone()),
                format!("{}.waypoint", c.paths.root),
                format!(
                    "components '{}' and '{}' both attach to waypoint '{w}': a waypoint runs every plugin attached to it on all its traffic, so each policy would also judge the other's requests; attach to the Services instead (no waypoint) or give each component its own waypoint",
                    first.component, c.component
                ),
            ));
        }
    }
}

/// The identity settings on their own (every provider and shared role,
/// used or not), through the engine's validator.
fn check_identity(
    app: &Application,
    ctx: &IdentityCtx<'_>,
    opts: &Options,
    findings: &mut Vec<Finding>,
) {
    let lowered = lower_identity(app, ctx, opts);
    let diagnostics = crate::policy::check_identity(&lowered.checked);
    report(
        &lowered,
        diagnostics.iter(),
        &ctx.scope,
        &ctx.scope,
        findings,
    );
}

/// Engine diagnostics as findings at their OAM paths, after the OAM-only
/// findings of lowering. Where lowering already reported a field (an
/// unknown component name), the engine's view of the same field is left
/// out: one finding per field.
fn report<'d>(
    lowered: &Lowered<'_>,
    diagnostics: impl Iterator<Item = &'d Diagnostic>,
    component: &Scope,
    identity: &Scope,
    findings: &mut Vec<Finding>,
) {
    findings.extend(lowered.findings.iter().cloned());
    let covered: BTreeSet<&str> = lowered
        .findings
        .iter()
        .filter(|f| f.is_error())
        .map(|f| f.path.as_str())
        .collect();
    for d in diagnostics {
        let (scope, path) = translate(&d.path, &lowered.paths, component, identity);
        if covered.contains(path.as_str()) {
            continue;
        }
        let message = d.problem.render(Naming::Camel);
        findings.push(match d.severity {
            crate::error::Severity::Error => Finding::error(scope, path, message),
            crate::error::Severity::Warning => Finding::warning(scope, path, message),
        });
    }
}

fn compile_component(
    app: &Application,
    comp: &Component,
    access: &AccessTrait,
    ctx: &IdentityCtx<'_>,
    opts: &Options,
    findings: &mut Vec<Finding>,
) -> Option<CompiledComponent> {
    let scope = Scope::Component(comp.name.clone());
    let mut lowered = lower_component(app, comp, access, ctx, opts);
    if lowered.config.policy_version.is_none() {
        let v = format!(
            "{}/{}@{}",
            app.name,
            comp.name,
            config_hash(&lowered.config)
        );
        lowered.config.policy_version = Some(v);
    }
    lowered
        .checked
        .policy_version
        .clone_from(&lowered.config.policy_version);
    let (_, diagnostics) = Policy::check(&lowered.checked);
    let errors_before = findings.iter().filter(|f| f.is_error()).count();
    report(&lowered, diagnostics.iter(), &scope, &ctx.scope, findings);
    if diagnostics.has_errors() {
        return None;
    }
    let policy = match Policy::compile(&lowered.config) {
        Ok(p) => p,
        Err(d) => {
            // A subset of a valid configuration; kept as a finding, never a panic.
            report(&lowered, d.iter(), &scope, &ctx.scope, findings);
            return None;
        }
    };
    analyze::shared_identities(app, &lowered, &policy, &scope, &ctx.scope, findings);
    analyze::unreachable_rules(&policy, &lowered.paths, &scope, findings);
    analyze::deny_gaps(&policy, &lowered.paths, &scope, findings);
    let errors_now = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    if errors_now > errors_before {
        return None;
    }
    Some(CompiledComponent {
        component: comp.name.clone(),
        namespace: app.namespace.clone(),
        config: lowered.config,
        policy,
        paths: lowered.paths,
        attach: lowered.attach,
    })
}

/// First 12 hex digits of the SHA-256 of the configuration (without its
/// version label): changes whenever the policy changes, never otherwise.
fn config_hash(cfg: &PluginConfig) -> String {
    let text = serde_json::to_vec(cfg).unwrap_or_default();
    let digest = Sha256::digest(&text);
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Map an engine field path (`rules[3].paths[0]`) to the OAM document and
/// the scope that owns it.
pub fn translate(
    p: &FieldPath,
    map: &PathMap,
    component: &Scope,
    identity: &Scope,
) -> (Scope, String) {
    let segs = p.segments();
    let rest = |n: usize| p.tail(n).render(Naming::Camel, true);
    let indexed = |list: &[String], i: usize| list.get(i).map(|base| format!("{base}{}", rest(2)));
    let owner = |path: &str| {
        if path.starts_with(&map.root) {
            component.clone()
        } else {
            identity.clone()
        }
    };
    match segs {
        [Seg::Field("rules"), Seg::Index(i), ..] => {
            if let Some(s) = indexed(&map.rules, *i) {
                return (component.clone(), s);
            }
        }
        [Seg::Field("roles"), Seg::Index(i), ..] => {
            if let Some(s) = indexed(&map.roles, *i) {
                return (owner(&s), s);
            }
        }
        [Seg::Field("providers"), Seg::Index(i), ..] => {
            if let Some(s) = indexed(&map.providers, *i) {
                return (identity.clone(), s);
            }
        }
        [Seg::Field("trust_domain" | "trust_domain_aliases"), ..] => {
            return (identity.clone(), format!("{}{}", map.identity, rest(0)));
        }
        [] => return (component.clone(), map.root.clone()),
        _ => {}
    }
    (component.clone(), format!("{}{}", map.root, rest(0)))
}
