//! What every subcommand shares: reading files, loading and compiling
//! applications, and the usage/I-O error type.

use clap::ValueEnum;
use oam_authz::oam::{check_text, Application, Checked, CompiledComponent, Finding, Options};
use oam_authz::Mode;
use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// `--output` of `explain`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
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

/// Write to standard output. A closed pipe (`oam-authz … | head`) ends the
/// run quietly, as for other Unix tools, instead of a panic.
pub fn out(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing the output: {e}");
        std::process::exit(2);
    }
}

/// Standard input has been read (by a `-` argument).
static STDIN_TAKEN: AtomicBool = AtomicBool::new(false);

/// Is this file argument `-` (standard input)?
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// How a file argument is named in messages and findings.
pub fn display_name(path: &Path) -> String {
    if is_stdin(path) {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    }
}

/// A file argument's text; `-` reads standard input (once per run).
pub fn read(path: &Path) -> Result<String, Fatal> {
    if is_stdin(path) {
        if STDIN_TAKEN.swap(true, Ordering::SeqCst) {
            return Err(Fatal(
                "'-' (standard input) is given twice: standard input can be read only once".into(),
            ));
        }
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Fatal(format!("<stdin>: {e}")))?;
        return Ok(text);
    }
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
pub type Loaded = Checked;

/// Read (a path, or `-` for stdin), load and compile a file.
pub fn load(path: &Path, opts: &Options) -> Result<Loaded, Fatal> {
    let text = read(path)?;
    Ok(check_text(&text, &display_name(path), opts))
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
            display_name(path)
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
