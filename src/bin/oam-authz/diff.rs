//! `oam-authz diff OLD NEW`: which requests the change decides differently.

use crate::common::Fatal;
use clap::{Args, ValueEnum};
use oam_authz::oam::{
    compile_app, diff_json, diff_markdown, diff_revisions, diff_text, load_str, Application,
    CompiledComponent, DiffSide, Finding, Options, Protected,
};
use oam_authz::{PluginConfig, Policy};
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, ExitCode};

#[derive(Clone, Copy, ValueEnum)]
pub enum DiffOutput {
    Text,
    Json,
    Markdown,
}

#[derive(Args)]
pub struct DiffArgs {
    /// The old revision: an OAM application or a plugin config (JSON); a
    /// file, `-` for stdin, or REV:PATH read with `git show` (HEAD~1:app.yaml).
    old: String,
    /// The new revision, in the same forms.
    new: String,
    /// text (people), json (tools), markdown (a merge-request comment).
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    output: DiffOutput,
    /// Only this component.
    #[arg(long)]
    component: Option<String>,
}

/// One revision: compiled OAM applications, or one plugin config.
enum Loaded {
    Apps(Vec<(Application, Vec<CompiledComponent>)>),
    Plugin(Box<(PluginConfig, Policy)>),
}

fn git_show(spec: &str) -> Result<String, Fatal> {
    let out = Command::new("git")
        .args(["show", spec])
        .output()
        .map_err(|e| Fatal(format!("{spec}: cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(Fatal(format!(
            "{spec}: git show failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8(out.stdout).map_err(|_| Fatal(format!("{spec}: not UTF-8")))
}

/// A file, `-` (stdin), or `REV:PATH`.
fn read_spec(spec: &str) -> Result<String, Fatal> {
    if spec == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(s);
    }
    let path = Path::new(spec);
    if path.exists() {
        return std::fs::read_to_string(path).map_err(|e| Fatal(format!("{spec}: {e}")));
    }
    match spec.split_once(':') {
        Some((rev, file)) if !rev.is_empty() && !file.is_empty() => git_show(spec),
        _ => Err(Fatal(format!(
            "{spec}: no such file (a git revision is written REV:PATH, e.g. HEAD~1:app.yaml)"
        ))),
    }
}

/// A plugin config is a JSON object (the byte of its opening brace).
const JSON_OBJECT: u8 = 0x7b;

/// Parse and compile a revision; findings go to stderr, errors refuse it.
fn load(spec: &str) -> Result<Result<Loaded, ExitCode>, Fatal> {
    let text = read_spec(spec)?;
    if text.trim_start().as_bytes().first() == Some(&JSON_OBJECT) {
        let policy = match Policy::from_json(&text) {
            Ok(p) => p,
            Err(d) => {
                eprintln!("{spec}: not a valid plugin config:\n{d}");
                return Ok(Err(ExitCode::from(1)));
            }
        };
        let cfg: PluginConfig =
            serde_json::from_str(&text).map_err(|e| Fatal(format!("{spec}: {e}")))?;
        return Ok(Ok(Loaded::Plugin(Box::new((cfg, policy)))));
    }
    let (apps, mut findings) = load_str(&text);
    let mut out = Vec::new();
    for app in apps {
        let (compiled, f) = compile_app(&app, &Options::default());
        findings.extend(f);
        out.push((app, compiled));
    }
    for f in &mut findings {
        f.file = spec.to_string();
        eprintln!("{f}");
    }
    if findings.iter().any(Finding::is_error) {
        eprintln!("{spec}: not compiled: fix the errors above (oam-authz validate lists them all)");
        return Ok(Err(ExitCode::from(1)));
    }
    Ok(Ok(Loaded::Apps(out)))
}

fn protected<'a>(l: &'a Loaded, only: Option<&str>) -> Vec<Protected<'a>> {
    let all: Vec<Protected<'a>> = match l {
        Loaded::Plugin(both) => vec![Protected {
            application: "plugin-config",
            component: "policy",
            side: DiffSide {
                config: &both.0,
                policy: &both.1,
            },
            oam: false,
        }],
        Loaded::Apps(apps) => apps
            .iter()
            .flat_map(|(app, compiled)| {
                compiled.iter().map(move |c| Protected {
                    application: app.name.as_str(),
                    component: c.component.as_str(),
                    side: DiffSide {
                        config: &c.config,
                        policy: &c.policy,
                    },
                    oam: true,
                })
            })
            .collect(),
    };
    all.into_iter()
        .filter(|p| only.is_none_or(|o| o == p.component))
        .collect()
}

pub fn run(a: DiffArgs) -> Result<ExitCode, Fatal> {
    let old = match load(&a.old)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let new = match load(&a.new)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    if matches!(old, Loaded::Plugin(..)) != matches!(new, Loaded::Plugin(..)) {
        return Err(Fatal(
            "compare an OAM application with an OAM application, or a plugin config with a plugin config".into(),
        ));
    }
    let (po, pn) = (
        protected(&old, a.component.as_deref()),
        protected(&new, a.component.as_deref()),
    );
    if let (Some(name), true) = (&a.component, po.is_empty() && pn.is_empty()) {
        return Err(Fatal(format!(
            "--component '{name}': neither revision protects a component of that name"
        )));
    }
    let report = diff_revisions(&a.old, &a.new, &po, &pn).map_err(|e| Fatal(e.to_string()))?;
    let text = match a.output {
        DiffOutput::Text => diff_text(&report),
        DiffOutput::Json => diff_json(&report),
        DiffOutput::Markdown => diff_markdown(&report),
    };
    // A reader that stops early (`| head`) is not an error worth a panic.
    match std::io::stdout().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(Fatal(format!("stdout: {e}")))
        }
        _ => {}
    }
    Ok(ExitCode::from(report.exit_code()))
}
