//! `oam-authz export-istio`: the nearest native Istio equivalent.

use crate::common::{load_clean, out, Fatal};
use crate::dataplane::DataplaneArgs;
use clap::Args;
use oam_authz::oam::{export_istio, Options};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ExportIstioArgs {
    app: PathBuf,
    #[command(flatten)]
    dataplane: DataplaneArgs,
}

pub fn run(a: ExportIstioArgs) -> Result<ExitCode, Fatal> {
    let mut opts = Options::default();
    a.dataplane.apply(&mut opts)?;
    let loaded = match load_clean(&a.app, &opts)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let mut docs = Vec::new();
    for (app, compiled) in &loaded.apps {
        docs.push(export_istio(app, compiled)?);
    }
    out(&docs.join("---\n"));
    Ok(ExitCode::SUCCESS)
}
