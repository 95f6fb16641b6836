//! `oam-authz validate`: every finding of every file, for people or CI.

use crate::common::{load, out, Fatal};
use crate::dataplane::DataplaneArgs;
use crate::report;
use clap::{Args, ValueEnum};
use oam_authz::oam::{FindingJson, Options};
use std::path::PathBuf;
use std::process::ExitCode;

/// `--output` of `validate`.
#[derive(Clone, Copy, ValueEnum)]
pub enum ValidateOutput {
    /// One line per finding: `file:line:column: scope: field.path: message`.
    Text,
    /// A JSON array of findings (file, line, column, severity, application, path, message).
    Json,
    /// SARIF 2.1.0, for code scanning (GitHub, GitLab, Azure DevOps, IDEs).
    Sarif,
    /// GitLab Code Quality (artifacts:reports:codequality).
    Codequality,
}

#[derive(Args)]
pub struct ValidateArgs {
    /// OAM application files; `-` reads standard input.
    #[arg(required = true)]
    apps: Vec<PathBuf>,
    #[arg(short, long, value_enum, default_value = "text")]
    output: ValidateOutput,
    /// Fail on warnings too.
    #[arg(long)]
    strict: bool,
    /// Longest token lifetime a provider may allow, in seconds.
    #[arg(long, default_value_t = 86_400)]
    max_token_lifetime: u64,
    #[command(flatten)]
    dataplane: DataplaneArgs,
    /// An application with no mesh-access trait is a warning, not an error.
    #[arg(long)]
    allow_unprotected: bool,
}

pub fn run(a: ValidateArgs) -> Result<ExitCode, Fatal> {
    let mut opts = Options {
        max_token_lifetime: a.max_token_lifetime,
        allow_unprotected: a.allow_unprotected,
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
        ValidateOutput::Text => {
            for f in &all {
                out(&format!("{f}\n"));
            }
            eprintln!(
                "{} file(s), {components} protected component(s) compiled: {errors} error(s), {warnings} warning(s)",
                a.apps.len()
            );
        }
        ValidateOutput::Json => {
            let list: Vec<FindingJson<'_>> = all.iter().map(FindingJson::from).collect();
            out(&format!("{}\n", serde_json::to_string_pretty(&list)?));
        }
        ValidateOutput::Sarif => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report::sarif(&all))?
        )),
        ValidateOutput::Codequality => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report::code_quality(&all))?
        )),
    }
    Ok(if errors > 0 || (a.strict && warnings > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
