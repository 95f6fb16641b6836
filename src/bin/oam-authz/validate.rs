//! `oam-authz validate`: every finding of every file, for people or CI.

use crate::common::{load, Fatal, Output};
use crate::dataplane::DataplaneArgs;
use clap::Args;
use oam_authz::oam::{FindingJson, Options};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct ValidateArgs {
    #[arg(required = true)]
    apps: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
    /// Fail on warnings too.
    #[arg(long)]
    strict: bool,
    /// Longest token lifetime a provider may allow, in seconds.
    #[arg(long, default_value_t = 86_400)]
    max_token_lifetime: u64,
    #[command(flatten)]
    dataplane: DataplaneArgs,
}

pub fn run(a: ValidateArgs) -> Result<ExitCode, Fatal> {
    let mut opts = Options {
        max_token_lifetime: a.max_token_lifetime,
        ..Options::default()
    };
    a.dataplane.apply(&mut opts)?;
    let mut all = Vec::new();
    let mut components = 0usize;
    for path in &a.apps {
        let loaded = load(path, &opts)?;
        components += loaded.apps.iter().map(|(_, c)| c.len()).sum::<usize>();
        all.extend(loaded.findings);
    }
    let errors = all.iter().filter(|f| f.is_error()).count();
    let warnings = all.len() - errors;
    match a.output {
        Output::Text => {
            for f in &all {
                println!("{f}");
            }
            eprintln!(
                "{} file(s), {components} protected component(s) compiled: {errors} error(s), {warnings} warning(s)",
                a.apps.len()
            );
        }
        Output::Json => {
            let list: Vec<FindingJson<'_>> = all.iter().map(FindingJson::from).collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
    }
    Ok(if errors > 0 || (a.strict && warnings > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
