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
mod coverage;
mod diff;
mod evaluate;
mod explain;
mod export;
mod export_envoy;
mod finding;
mod idp;
mod load;
mod lower;
mod manifest;
mod model;
mod position;
mod replay;
mod shadow;
mod source;

pub use cases::{
    parse as parse_cases, run as run_cases, run_selected, Case, CaseFile, CaseResult,
    Outcome as CaseOutcome, Report,
};
pub use compile::{compile_app, CompiledComponent};
pub use coverage::{coverage as case_coverage, Coverage};
pub use diff::{
    diff as diff_revisions, render_json as diff_json, render_markdown as diff_markdown,
    render_text as diff_text, DiffError, Protected, Report as DiffReport, Side as DiffSide,
};
pub use evaluate::{evaluate, Input, Outcome};
pub use explain::{explain_json, explain_text};
pub use export::export as export_istio;
pub use export_envoy::{
    export as export_envoy, filters as envoy_filters, render as render_envoy, EnvoyFilters,
};
pub use finding::{Finding, FindingJson, Scope, Severity};
pub use idp::idp_manifests;
pub use load::{load_str, Application};
pub use lower::{waypoint_name_problem, Attach, Options};
pub use manifest::{generated_header, join_stdout, render, Format, PluginSettings, Rendered};
pub use model::Dataplane;
pub use replay::{
    json as replay_json, parse_log as parse_audit_log, replay, text as replay_text,
    Report as ReplayReport, Target as ReplayTarget,
};
pub use shadow::shadow_of;
pub use source::{check_text, Checked};
