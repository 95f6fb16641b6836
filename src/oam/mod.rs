//! From OAM applications to oam-authz policies (native only): the
//! `mesh-access` trait and `mesh-identity` policy vocabulary, the compiler
//! and its static checks, manifest rendering, and the `explain`/`test`/
//! `export-istio`/`export-envoy` commands of the `oam-authz` CLI.
//!
//! Flow: `load` (YAML -> [`Application`]) -> `lower` (one plugin config
//! per protected component, plus OAM-only checks) -> `compile` (the
//! engine's validator, diagnostics mapped to OAM paths) -> `analyze`
//! (unreachable rules, shared identities). `evaluate` runs the engine on a
//! described request; `explain` formats its trace.

mod analyze;
mod cases;
mod compile;
mod evaluate;
mod explain;
mod export;
mod export_envoy;
mod finding;
mod load;
mod lower;
mod manifest;
mod model;

pub use cases::{parse as parse_cases, run as run_cases, CaseFile, Report};
pub use compile::{compile_app, CompiledComponent};
pub use evaluate::{evaluate, Input, Outcome};
pub use explain::explain_text;
pub use export::export as export_istio;
pub use export_envoy::{
    export as export_envoy, filters as envoy_filters, render as render_envoy, EnvoyFilters,
};
pub use finding::{Finding, FindingJson, Scope, Severity};
pub use load::{load_str, Application};
pub use lower::{waypoint_name_problem, Attach, Options};
pub use manifest::{join_stdout, render, Format, PluginSettings, Rendered};
pub use model::Dataplane;
