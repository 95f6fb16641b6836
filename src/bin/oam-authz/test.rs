//! `oam-authz test`: policy test cases, each a request and its expected decision.

use crate::common::{load_clean, now_unix, read, read_jwks, Fatal};
use clap::Args;
use oam_authz::oam::{parse_cases, run_cases, Options};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct TestArgs {
    app: PathBuf,
    cases: PathBuf,
    /// Unix time for cases that give none; default: now.
    #[arg(long)]
    now: Option<u64>,
    /// A JWK set (JSON file) to verify the cases' tokens with when their
    /// provider fetches its keys at run time (remoteJwks).
    #[arg(long)]
    jwks: Option<PathBuf>,
}

pub fn run(a: TestArgs) -> Result<ExitCode, Fatal> {
    let jwks = read_jwks(a.jwks.as_deref())?;
    let loaded = match load_clean(&a.app, &Options::default())? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let text = read(&a.cases)?;
    let parsed = parse_cases(&text).map_err(|e| Fatal(format!("{}: {e}", a.cases.display())))?;
    let Some((app, compiled)) = loaded.apps.first() else {
        return Err(Fatal(format!("{}: no application", a.app.display())));
    };
    let report = run_cases(
        app,
        compiled,
        &parsed,
        a.now.unwrap_or_else(now_unix),
        jwks.as_ref(),
    );
    for l in &report.lines {
        println!("{l}");
    }
    println!("{} passed, {} failed", report.passed, report.failed);
    Ok(if report.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
