//! `oam-authz compile NEW --shadow-of OLD`: every component OLD protects,
//! enforced as OLD has it, with NEW's policy for it as its shadow
//! (docs/policy.md "Shadow policy"). The pair goes through the engine's
//! validator; its findings point into NEW (the shadow's fields) or OLD.

use super::compile::{translate, CompiledComponent};
use super::finding::{Finding, Scope};
use super::load::Application;
use crate::config::{Mode, PluginConfig};
use crate::error::{Diagnostic, Naming, Seg};
use crate::policy::Policy;

/// One file's compiled applications.
pub type Compiled = [(Application, Vec<CompiledComponent>)];

/// Put NEW's policy of each component into OLD's as its shadow. Returns
/// the findings, each naming its file (`old_file` or `new_file`); with an
/// error, the component keeps no shadow.
pub fn shadow_of(
    old: &mut Compiled,
    new: &Compiled,
    old_file: &str,
    new_file: &str,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut note = |f: Finding, file: &str, app: &Application| {
        findings.push(Finding {
            file: file.to_string(),
            pos: app.positions.find(&f.path),
            application: Some(app.name.clone()),
            ..f
        });
    };
    for (app, compiled) in old.iter_mut() {
        let theirs = new.iter().find(|(a, _)| a.name == app.name);
        for c in compiled.iter_mut() {
            let scope = Scope::Component(c.component.clone());
            let Some((napp, n)) = theirs.and_then(|(a, cs)| {
                cs.iter()
                    .find(|n| n.component == c.component)
                    .map(|n| (a, n))
            }) else {
                note(
                    Finding::warning(scope, c.paths.root.clone(), format!("{new_file} does not protect component '{}': it is enforced as here, without a shadow", c.component)),
                    old_file,
                    app,
                );
                continue;
            };
            if n.config.shadow.is_some() {
                let path = format!("{}.shadow", n.paths.root);
                note(
                    Finding::error(scope, path, format!("--shadow-of makes this component's policy the shadow of {old_file}'s, and a shadow has no shadow of its own: remove it")),
                    new_file,
                    napp,
                );
                continue;
            }
            if c.config.shadow.is_some() {
                let path = format!("{}.shadow", c.paths.root);
                note(
                    Finding::warning(
                        scope.clone(),
                        path,
                        format!("replaced by the policy of {new_file} (--shadow-of)"),
                    ),
                    old_file,
                    app,
                );
            }
            let config = paired(&c.config, &n.config);
            let mut paths = c.paths.of_config();
            paths.shadow = Some(Box::new(n.paths.of_config()));
            let (policy, diagnostics) = Policy::check(&config);
            // Each side was checked on its own: what is new is the pairing
            // (errors) and what the enforced side records for the shadow.
            let new_here = |d: &&Diagnostic| {
                d.is_error() || matches!(d.path.segments().first(), Some(Seg::Field("audit")))
            };
            for d in diagnostics.iter().filter(new_here) {
                let in_new = matches!(d.path.segments().first(), Some(Seg::Field("shadow")));
                let (f, file, a) =
                    finding(d, &paths, &scope, in_new, old_file, new_file, app, napp);
                note(f, file, a);
            }
            let Some(mut policy) = policy else { continue };
            policy.warnings = diagnostics.warnings().cloned().collect();
            c.config = config;
            c.policy = policy;
            c.paths.shadow = Some(Box::new(n.paths.clone()));
        }
    }
    unenforced(old, new, old_file, new_file, &mut note);
    findings
}

/// A warning (via `note`) for each component NEW protects and OLD does not.
fn unenforced(
    old: &Compiled,
    new: &Compiled,
    old_file: &str,
    new_file: &str,
    note: &mut impl FnMut(Finding, &str, &Application),
) {
    for (napp, cs) in new {
        for n in cs {
            let enforced = old
                .iter()
                .any(|(a, c)| a.name == napp.name && c.iter().any(|c| c.component == n.component));
            if !enforced {
                note(
                    Finding::warning(Scope::Component(n.component.clone()), n.paths.root.clone(), format!("{old_file} does not protect component '{}', so nothing enforces it yet and nothing is shadowed: roll it out with --mode audit first", n.component)),
                    new_file,
                    napp,
                );
            }
        }
    }
}

/// The enforced `old` with `new` as its shadow (enforce: a shadow has no
/// audit mode).
fn paired(old: &PluginConfig, new: &PluginConfig) -> PluginConfig {
    let shadow = PluginConfig {
        mode: Mode::Enforce,
        ..new.clone()
    };
    PluginConfig {
        shadow: Some(Box::new(shadow)),
        ..old.clone()
    }
}

#[allow(clippy::too_many_arguments)]
fn finding<'a>(
    d: &Diagnostic,
    paths: &super::lower::PathMap,
    scope: &Scope,
    in_new: bool,
    old_file: &'a str,
    new_file: &'a str,
    app: &'a Application,
    napp: &'a Application,
) -> (Finding, &'a str, &'a Application) {
    let (s, path) = translate(&d.path, paths, scope, scope);
    let message = d.problem.render(Naming::Camel);
    let f = match d.severity {
        crate::error::Severity::Error => Finding::error(s, path, message),
        crate::error::Severity::Warning => Finding::warning(s, path, message),
    };
    if in_new {
        (f, new_file, napp)
    } else {
        (f, old_file, app)
    }
}
