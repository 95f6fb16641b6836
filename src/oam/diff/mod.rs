//! `oam-authz diff`: every region of requests whose decision differs
//! between two revisions of a policy, exactly (docs/diff.md).
//!
//! Flow, per component: `ops` cuts the operations into cells (method,
//! host and path atoms; `paths` walks the path patterns' product
//! automaton), `callers` enumerates the caller classes (`claims` for the
//! token claim sets), `component` decides every class × cell with the
//! engine under both policies (`eval`) and hands the changed ones to
//! `regions`, which groups them and describes them; `notes` adds what is
//! not a region (mode, unanalysed token settings); `render` and `words`
//! print it.

mod callers;
mod claims;
mod component;
mod error;
mod eval;
mod notes;
mod ops;
mod paths;
mod regions;
mod render;
mod side;
mod words;

pub use component::{ComponentDiff, Presence, Report};
pub use error::DiffError;
pub use render::{json as render_json, markdown as render_markdown, text as render_text};
pub use side::Side;

/// A protected component of one revision.
#[derive(Clone, Copy)]
pub struct Protected<'a> {
    pub application: &'a str,
    pub component: &'a str,
    pub side: Side<'a>,
    /// Compiled from an OAM application (so `oam-authz explain` can replay
    /// the examples), not read as a plugin config.
    pub oam: bool,
}

/// The example host of a component when no rule names hosts.
fn example_host(component: &str) -> String {
    if crate::oam::load::valid_dns_label(component) {
        component.to_string()
    } else {
        "service.internal".to_string()
    }
}

/// Diff two revisions, component by component (matched by application
/// and component name; components of one revision only are reported too).
pub fn diff(
    old_label: &str,
    new_label: &str,
    old: &[Protected<'_>],
    new: &[Protected<'_>],
) -> Result<Report, DiffError> {
    let key = |p: &Protected<'_>| (p.application.to_string(), p.component.to_string());
    let mut components = Vec::new();
    for a in old {
        components.push(match new.iter().find(|b| key(b) == key(a)) {
            Some(b) => {
                let sides = [a.side, b.side];
                let host = example_host(a.component);
                let mut d = ComponentDiff::compute(a.application, a.component, &sides, &host)?;
                d.explainable = a.oam && b.oam;
                d
            }
            None => ComponentDiff::one_sided(a.application, a.component, Presence::OnlyOld),
        });
    }
    for b in new {
        if !old.iter().any(|a| key(a) == key(b)) {
            components.push(ComponentDiff::one_sided(
                b.application,
                b.component,
                Presence::OnlyNew,
            ));
        }
    }
    Ok(Report {
        old: old_label.to_string(),
        new: new_label.to_string(),
        components,
    })
}

#[cfg(test)]
mod tests;
