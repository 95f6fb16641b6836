//! `oam-authz`: compile OAM applications into oam-authz policies, check
//! them, explain and test decisions with the engine the filter runs.
//!
//! One module per subcommand, each with its arguments and its `run`.
//! Exit codes: 0 success; 1 findings with errors, failed test cases;
//! 2 usage or I/O errors.

mod common;
mod compile;
mod dataplane;
mod diff;
mod explain;
mod export;
mod export_envoy;
mod module_pin;
mod outdir;
mod replay;
mod report;
mod test;
mod validate;

use clap::{Parser, Subcommand};
use common::Fatal;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "oam-authz",
    version,
    about = "Compile, check, explain and test oam-authz policies from OAM applications"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Emit one WasmPlugin per component with a mesh-access trait.
    Compile(compile::CompileArgs),
    /// Check applications; one line per finding, non-zero exit on errors.
    Validate(validate::ValidateArgs),
    /// Show the decision for one request and why.
    Explain(explain::ExplainArgs),
    /// Run policy test cases (request -> expected decision).
    Test(test::TestArgs),
    /// Emit the nearest Istio RequestAuthentication + AuthorizationPolicy.
    ExportIstio(export::ExportIstioArgs),
    /// Every region of requests two revisions decide differently (exit 0 same, 3 narrowed, 4 widened).
    Diff(diff::DiffArgs),
    /// Decide recorded requests (audit events in a log) under another policy; list those that change.
    Replay(replay::ReplayArgs),
    /// Emit the native Envoy filters (jwt_authn + rbac) for the policy.
    ExportEnvoy(export_envoy::ExportEnvoyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compile(a) => compile::run(a),
        Command::Validate(a) => validate::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Test(a) => test::run(a),
        Command::ExportIstio(a) => export::run(a),
        Command::Diff(a) => diff::run(a),
        Command::Replay(a) => replay::run(a),
        Command::ExportEnvoy(a) => export_envoy::run(a),
    };
    match result {
        Ok(code) => code,
        Err(Fatal(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}
