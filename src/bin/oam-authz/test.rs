//! `oam-authz test`: policy test cases, each a request and its expected decision.

use crate::common::{load_clean, now_unix, read, read_jwks, Fatal};
use clap::Args;
use oam_authz::oam::{case_coverage, parse_cases, run_cases, Options};
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
    /// Also report which rules and role conditions the cases exercise.
    #[arg(long)]
    coverage: bool,
    /// Exit 1 when coverage is below PCT percent (implies --coverage).
    #[arg(long, value_name = "PCT")]
    min_coverage: Option<f64>,
}

pub fn run(a: TestArgs) -> Result<ExitCode, Fatal> {
    if let Some(min) = a.min_coverage.filter(|m| !(0.0..=100.0).contains(m)) {
        return Err(Fatal(format!(
            "--min-coverage {min}: a percentage from 0 to 100"
        )));
    }
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
    let below = match (a.coverage || a.min_coverage.is_some())
        .then(|| case_coverage(compiled, &report.evaluated))
    {
        // On stderr: it never mixes with a report on stdout (JUnit, JSON).
        Some(c) => {
            eprint!("{}", c.text());
            below_minimum(c.percent(), a.min_coverage)
        }
        None => false,
    };
    Ok(if report.failed > 0 || below {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether coverage is below `--min-coverage` (said on stderr).
fn below_minimum(percent: f64, min: Option<f64>) -> bool {
    let below = min.is_some_and(|m| percent < m);
    if let (true, Some(m)) = (below, min) {
        eprintln!("coverage {percent:.1}% is below --min-coverage {m}");
    }
    below
}
