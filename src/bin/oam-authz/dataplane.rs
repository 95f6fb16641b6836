//! `--ambient` and `--waypoint`, shared by `compile`, `validate` and
//! `export-istio`: enforce on Istio ambient waypoints (docs/cli.md "Ambient").

use crate::common::Fatal;
use clap::Args;
use oam_authz::oam::{waypoint_name_problem, Dataplane, Options};

#[derive(Args, Clone, Default)]
pub struct DataplaneArgs {
    /// Istio ambient: attach every component's plugin to its Service with
    /// targetRefs (the Service's waypoint runs it) instead of selecting sidecars.
    #[arg(long)]
    ambient: bool,
    /// With --ambient: attach to this waypoint Gateway (in the application's
    /// namespace) instead of the Services. It then runs on all the waypoint's
    /// traffic, so the application may protect only one component.
    #[arg(long, requires = "ambient", value_name = "GATEWAY")]
    waypoint: Option<String>,
}

impl DataplaneArgs {
    /// The overrides, into the compile options.
    pub fn apply(&self, opts: &mut Options) -> Result<(), Fatal> {
        if let Some(problem) = self.waypoint.as_deref().and_then(waypoint_name_problem) {
            return Err(Fatal(format!("--waypoint: {problem}")));
        }
        if self.ambient {
            opts.dataplane = Some(Dataplane::Ambient);
        }
        opts.waypoint.clone_from(&self.waypoint);
        Ok(())
    }

    pub fn ambient(&self) -> bool {
        self.ambient
    }
}
