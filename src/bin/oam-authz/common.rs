//! What every subcommand shares: reading files, loading and compiling
//! applications, and the usage/I-O error type.

use clap::ValueEnum;
use oam_authz::oam::{compile_app, load_str, Application, CompiledComponent, Finding, Options};
use oam_authz::Mode;
use std::path::Path;
use std::process::ExitCode;

/// `--mode`: enforce or audit.
#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Enforce,
    Audit,
}

impl ModeArg {
    pub fn mode(self) -> Mode {
        match self {
            ModeArg::Enforce => Mode::Enforce,
            ModeArg::Audit => Mode::Audit,
        }
    }
}

/// `--output`.
#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// A usage or I/O error: printed as `error: …`, exit code 2.
pub struct Fatal(pub String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal(e.to_string())
    }
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn read(path: &Path) -> Result<String, Fatal> {
    std::fs::read_to_string(path).map_err(|e| Fatal(format!("{}: {e}", path.display())))
}

/// `--jwks FILE`: a JWK set as JSON.
pub fn read_jwks(path: Option<&Path>) -> Result<Option<serde_json::Value>, Fatal> {
    let Some(path) = path else { return Ok(None) };
    serde_json::from_str(&read(path)?)
        .map(Some)
        .map_err(|e| Fatal(format!("--jwks {}: not valid JSON: {e}", path.display())))
}

/// Every application of a file, compiled, and every finding.
pub struct Loaded {
    pub apps: Vec<(Application, Vec<CompiledComponent>)>,
    pub findings: Vec<Finding>,
}

pub fn load(path: &Path, opts: &Options) -> Result<Loaded, Fatal> {
    let text = read(path)?;
    let (apps, mut findings) = load_str(&text);
    let mut out = Vec::new();
    for app in apps {
        let (compiled, f) = compile_app(&app, opts);
        findings.extend(f);
        out.push((app, compiled));
    }
    let file = path.display().to_string();
    for f in &mut findings {
        f.file.clone_from(&file);
    }
    Ok(Loaded {
        apps: out,
        findings,
    })
}

/// Load and refuse on errors (warnings go to stderr).
pub fn load_clean(path: &Path, opts: &Options) -> Result<Result<Loaded, ExitCode>, Fatal> {
    let loaded = load(path, opts)?;
    for f in &loaded.findings {
        eprintln!("{f}");
    }
    if loaded.findings.iter().any(Finding::is_error) {
        eprintln!(
            "{}: not compiled: fix the errors above (oam-authz validate lists them all)",
            path.display()
        );
        return Ok(Err(ExitCode::from(1)));
    }
    Ok(Ok(loaded))
}

pub fn find_component<'a>(
    loaded: &'a Loaded,
    name: &str,
) -> Result<(&'a Application, &'a CompiledComponent), Fatal> {
    for (a, compiled) in &loaded.apps {
        if let Some(c) = compiled.iter().find(|c| c.component == name) {
            return Ok((a, c));
        }
    }
    let names: Vec<&str> = loaded
        .apps
        .iter()
        .flat_map(|(_, c)| c.iter().map(|c| c.component.as_str()))
        .collect();
    Err(Fatal(format!(
        "--component '{name}': no component of that name has a mesh-access trait (protected: {})",
        names.join(", ")
    )))
}
