//! `oam-authz export-envoy`: the native Envoy equivalent (`jwt_authn` +
//! `rbac`) of each component's policy, or of one plugin configuration.

use crate::common::{load_clean, read, Fatal};
use crate::dataplane::DataplaneArgs;
use clap::Args;
use oam_authz::oam::{export_envoy, render_envoy, Options};
use oam_authz::{PluginConfig, Policy};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ExportEnvoyArgs {
    /// The OAM application (YAML).
    #[arg(
        required_unless_present = "plugin_config",
        conflicts_with = "plugin_config"
    )]
    app: Option<PathBuf>,
    /// Export this plugin configuration (the JSON the filter reads) instead of an application.
    #[arg(long)]
    plugin_config: Option<PathBuf>,
    /// Emit a whole bootstrap around the filters, for a quick test.
    #[arg(long)]
    bootstrap: bool,
    #[command(flatten)]
    dataplane: DataplaneArgs,
}

pub fn run(a: ExportEnvoyArgs) -> Result<ExitCode, Fatal> {
    if let Some(path) = &a.plugin_config {
        let text = read(path)?;
        // The filter's own validator first: export only what it would load.
        Policy::from_json(&text).map_err(|d| Fatal(format!("{}: {d}", path.display())))?;
        let cfg: PluginConfig =
            serde_json::from_str(&text).map_err(|e| Fatal(format!("{}: {e}", path.display())))?;
        let label = format!("{}", path.display());
        print!("{}", render_envoy(&cfg, &label, a.bootstrap)?);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(app) = &a.app else {
        return Err(Fatal(
            "an application or --plugin-config is required".into(),
        ));
    };
    let mut opts = Options::default();
    a.dataplane.apply(&mut opts)?;
    let loaded = match load_clean(app, &opts)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let mut docs = Vec::new();
    for (app, compiled) in &loaded.apps {
        docs.push(export_envoy(app, compiled, a.bootstrap)?);
    }
    print!("{}", docs.join("---\n"));
    Ok(ExitCode::SUCCESS)
}
