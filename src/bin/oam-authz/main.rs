//! `oam-authz`: compile OAM applications into oam-authz policies, check
//! them, explain and test decisions with the engine the filter runs.
//!
//! Exit codes: 0 success; 1 findings with errors, failed test cases;
//! 2 usage or I/O errors.

use clap::{Parser, Subcommand, ValueEnum};
use oam_authz::config::Mode;
use oam_authz::oam::cases;
use oam_authz::oam::compile::{compile_app, CompiledComponent, Options};
use oam_authz::oam::evaluate::{evaluate, Input};
use oam_authz::oam::explain::explain_text;
use oam_authz::oam::export;
use oam_authz::oam::finding::{Finding, FindingJson};
use oam_authz::oam::load::{load_str, Application};
use oam_authz::oam::manifest::{join_stdout, render, Format, PluginSettings};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
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

#[derive(Clone, Copy, ValueEnum)]
enum OutFormat {
    /// Istio `extensions.istio.io/v1alpha1` WasmPlugin resources (YAML).
    Wasmplugin,
    /// The plain plugin configuration (JSON) for a standalone Envoy.
    Envoy,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Enforce,
    Audit,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Emit one WasmPlugin per component with a mesh-access trait.
    Compile {
        /// The OAM application (YAML).
        app: PathBuf,
        /// Where Istio pulls the module from: oci://…, https://… or file://…
        #[arg(long)]
        url: Option<String>,
        /// The module file; its SHA-256 is pinned in each WasmPlugin.
        #[arg(long)]
        module: Option<PathBuf>,
        /// Also emit a deny-all plugin for each component without mesh-access.
        #[arg(long)]
        namespace_default: bool,
        #[arg(long, value_enum, default_value = "wasmplugin")]
        format: OutFormat,
        /// Write one file per plugin into this directory instead of stdout.
        #[arg(long)]
        out_dir: Option<PathBuf>,
        /// Override every component's mode (rollout: audit first, then enforce).
        #[arg(long, value_enum)]
        mode: Option<ModeArg>,
        /// Order among AUTHN-phase plugins (higher runs first).
        #[arg(long, default_value_t = 1000)]
        priority: i64,
        /// Longest token lifetime a provider may allow, in seconds.
        #[arg(long, default_value_t = 86_400)]
        max_token_lifetime: u64,
    },
    /// Check applications; one line per finding, non-zero exit on errors.
    Validate {
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
    },
    /// Show the decision for one request and why.
    Explain {
        app: PathBuf,
        #[arg(long)]
        component: String,
        /// The caller's SPIFFE ID, or a component name of the application.
        #[arg(long)]
        principal: Option<String>,
        /// A file holding a compact JWT; verified with the provider's keys.
        #[arg(long, conflicts_with = "claims")]
        token: Option<PathBuf>,
        /// Claims as JSON (or @file), taken as verified: the signature is not checked.
        #[arg(long)]
        claims: Option<String>,
        /// Provider of --claims (default: by 'iss', or the only one).
        #[arg(long)]
        provider: Option<String>,
        #[arg(long, default_value = "GET")]
        method: String,
        #[arg(long)]
        path: String,
        /// Host (:authority); default: the component name.
        #[arg(long)]
        host: Option<String>,
        /// Unix time for token checks; default: now.
        #[arg(long)]
        now: Option<u64>,
        /// A JWK set (JSON file) to verify --token with when its provider
        /// fetches its keys at run time (remoteJwks).
        #[arg(long, requires = "token")]
        jwks: Option<PathBuf>,
    },
    /// Run policy test cases (request -> expected decision).
    Test {
        app: PathBuf,
        cases: PathBuf,
        /// Unix time for cases that give none; default: now.
        #[arg(long)]
        now: Option<u64>,
        /// A JWK set (JSON file) to verify the cases' tokens with when their
        /// provider fetches its keys at run time (remoteJwks).
        #[arg(long)]
        jwks: Option<PathBuf>,
    },
    /// Emit the nearest Istio RequestAuthentication + AuthorizationPolicy.
    ExportIstio { app: PathBuf },
}

/// A usage or I/O error: printed as `error: …`, exit code 2.
struct Fatal(String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(Fatal(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn read(path: &Path) -> Result<String, Fatal> {
    std::fs::read_to_string(path).map_err(|e| Fatal(format!("{}: {e}", path.display())))
}

/// `--jwks FILE`: a JWK set as JSON.
fn read_jwks(path: Option<&Path>) -> Result<Option<serde_json::Value>, Fatal> {
    let Some(path) = path else { return Ok(None) };
    serde_json::from_str(&read(path)?)
        .map(Some)
        .map_err(|e| Fatal(format!("--jwks {}: not valid JSON: {e}", path.display())))
}

struct Loaded {
    apps: Vec<(Application, Vec<CompiledComponent>)>,
    findings: Vec<Finding>,
}

fn load(path: &Path, opts: &Options) -> Result<Loaded, Fatal> {
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
fn load_clean(path: &Path, opts: &Options) -> Result<Result<Loaded, ExitCode>, Fatal> {
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

fn run(cmd: Command) -> Result<ExitCode, Fatal> {
    match cmd {
        Command::Compile {
            app,
            url,
            module,
            namespace_default,
            format,
            out_dir,
            mode,
            priority,
            max_token_lifetime,
        } => {
            let format = match format {
                OutFormat::Wasmplugin => Format::WasmPlugin,
                OutFormat::Envoy => Format::Envoy,
            };
            let url = match (format, url) {
                (Format::WasmPlugin, None) => {
                    return Err(Fatal(
                        "--url is required for WasmPlugin output: where Istio pulls the module from (oci://registry/repo:tag, https://… or file://…)".into(),
                    ))
                }
                (_, Some(u)) => {
                    if !["oci://", "https://", "http://", "file://"]
                        .iter()
                        .any(|s| u.starts_with(s))
                    {
                        return Err(Fatal(format!(
                            "--url '{u}': Istio accepts oci://, https://, http:// or file:// URLs"
                        )));
                    }
                    u
                }
                (Format::Envoy, None) => String::new(),
            };
            let sha256 = match module {
                Some(m) => {
                    let bytes = std::fs::read(&m)
                        .map_err(|e| Fatal(format!("--module {}: {e}", m.display())))?;
                    Some(
                        Sha256::digest(&bytes)
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<String>(),
                    )
                }
                None => None,
            };
            let opts = Options {
                max_token_lifetime,
                mode: mode.map(|m| match m {
                    ModeArg::Enforce => Mode::Enforce,
                    ModeArg::Audit => Mode::Audit,
                }),
            };
            let loaded = match load_clean(&app, &opts)? {
                Ok(l) => l,
                Err(code) => return Ok(code),
            };
            let settings = PluginSettings {
                url,
                sha256,
                priority,
            };
            let source = app
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let mut rendered = Vec::new();
            for (a, compiled) in &loaded.apps {
                rendered.extend(render(
                    a,
                    &source,
                    compiled,
                    format,
                    &settings,
                    namespace_default,
                )?);
            }
            match out_dir {
                Some(dir) => {
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| Fatal(format!("{}: {e}", dir.display())))?;
                    for r in &rendered {
                        let p = dir.join(&r.file_name);
                        std::fs::write(&p, &r.text)
                            .map_err(|e| Fatal(format!("{}: {e}", p.display())))?;
                        eprintln!("wrote {}", p.display());
                    }
                }
                None => print!("{}", join_stdout(&rendered, format)?),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate {
            apps,
            output,
            strict,
            max_token_lifetime,
        } => {
            let opts = Options {
                max_token_lifetime,
                mode: None,
            };
            let mut all = Vec::new();
            let mut components = 0usize;
            for path in &apps {
                let loaded = load(path, &opts)?;
                components += loaded.apps.iter().map(|(_, c)| c.len()).sum::<usize>();
                all.extend(loaded.findings);
            }
            let errors = all.iter().filter(|f| f.is_error()).count();
            let warnings = all.len() - errors;
            match output {
                Output::Text => {
                    for f in &all {
                        println!("{f}");
                    }
                    eprintln!(
                        "{} file(s), {components} protected component(s) compiled: {errors} error(s), {warnings} warning(s)",
                        apps.len()
                    );
                }
                Output::Json => {
                    let list: Vec<FindingJson<'_>> = all.iter().map(FindingJson::from).collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
            }
            Ok(if errors > 0 || (strict && warnings > 0) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Explain {
            app,
            component,
            principal,
            token,
            claims,
            provider,
            method,
            path,
            host,
            now,
            jwks,
        } => {
            let jwks = read_jwks(jwks.as_deref())?;
            let loaded = match load_clean(&app, &Options::default())? {
                Ok(l) => l,
                Err(code) => return Ok(code),
            };
            let (a, c) = find_component(&loaded, &component)?;
            let token = match token {
                Some(p) => Some(read(&p)?.trim().to_string()),
                None => None,
            };
            let claims = match claims {
                Some(text) => {
                    let text = match text.strip_prefix('@') {
                        Some(file) => read(Path::new(file))?,
                        None => text,
                    };
                    match serde_json::from_str::<serde_json::Value>(&text) {
                        Ok(serde_json::Value::Object(m)) => Some(m),
                        Ok(_) => return Err(Fatal("--claims: must be a JSON object".into())),
                        Err(e) => return Err(Fatal(format!("--claims: not valid JSON: {e}"))),
                    }
                }
                None => None,
            };
            let input = Input {
                principal,
                token,
                claims,
                provider,
                method,
                path,
                host,
                now: now.unwrap_or_else(now_unix),
                jwks,
            };
            let outcome = evaluate(a, c, &input).map_err(Fatal)?;
            print!("{}", explain_text(c, a, &input, &outcome));
            Ok(ExitCode::SUCCESS)
        }
        Command::Test {
            app,
            cases: file,
            now,
            jwks,
        } => {
            let jwks = read_jwks(jwks.as_deref())?;
            let loaded = match load_clean(&app, &Options::default())? {
                Ok(l) => l,
                Err(code) => return Ok(code),
            };
            let text = read(&file)?;
            let parsed =
                cases::parse(&text).map_err(|e| Fatal(format!("{}: {e}", file.display())))?;
            let Some((a, compiled)) = loaded.apps.first() else {
                return Err(Fatal(format!("{}: no application", app.display())));
            };
            let report = cases::run(
                a,
                compiled,
                &parsed,
                now.unwrap_or_else(now_unix),
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
        Command::ExportIstio { app } => {
            let loaded = match load_clean(&app, &Options::default())? {
                Ok(l) => l,
                Err(code) => return Ok(code),
            };
            let mut docs = Vec::new();
            for (a, compiled) in &loaded.apps {
                docs.push(export::export(a, compiled)?);
            }
            print!("{}", docs.join("---\n"));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn find_component<'a>(
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
