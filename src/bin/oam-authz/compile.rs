//! `oam-authz compile`: WasmPlugin resources (or plain plugin configs).

use crate::common::{load_clean, Fatal, ModeArg};
use crate::dataplane::DataplaneArgs;
use crate::module_pin;
use clap::{Args, ValueEnum};
use oam_authz::oam::{join_stdout, render, Format, Options, PluginSettings};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum)]
pub enum OutFormat {
    /// Istio `extensions.istio.io/v1alpha1` WasmPlugin resources (YAML).
    Wasmplugin,
    /// The plain plugin configuration (JSON) for a standalone Envoy.
    Envoy,
}

#[derive(Args)]
pub struct CompileArgs {
    /// The OAM application (YAML).
    app: PathBuf,
    /// Where Istio pulls the module from: oci://…, https://… or file://…
    #[arg(long)]
    url: Option<String>,
    /// Pinned in each WasmPlugin's sha256: the .wasm file for https:// and
    /// file:// URLs; for oci:// the image layout `make image` writes.
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
    #[command(flatten)]
    dataplane: DataplaneArgs,
}

/// `--url`: required for WasmPlugins, one of the schemes Istio pulls from.
fn module_url(format: Format, url: Option<String>) -> Result<String, Fatal> {
    match (format, url) {
        (Format::WasmPlugin, None) => Err(Fatal(
            "--url is required for WasmPlugin output: where Istio pulls the module from (oci://registry/repo:tag, https://… or file://…)".into(),
        )),
        (_, Some(u)) => {
            if !["oci://", "https://", "http://", "file://"]
                .iter()
                .any(|s| u.starts_with(s))
            {
                return Err(Fatal(format!(
                    "--url '{u}': Istio accepts oci://, https://, http:// or file:// URLs"
                )));
            }
            Ok(u)
        }
        (Format::Envoy, None) => Ok(String::new()),
    }
}

pub fn run(a: CompileArgs) -> Result<ExitCode, Fatal> {
    let format = match a.format {
        OutFormat::Wasmplugin => Format::WasmPlugin,
        OutFormat::Envoy => Format::Envoy,
    };
    let url = module_url(format, a.url)?;
    let sha256 = module_pin::pin(&url, a.module.as_deref())?;
    let mut opts = Options {
        max_token_lifetime: a.max_token_lifetime,
        mode: a.mode.map(ModeArg::mode),
        ..Options::default()
    };
    a.dataplane.apply(&mut opts)?;
    let loaded = match load_clean(&a.app, &opts)? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let settings = PluginSettings {
        url,
        sha256,
        priority: a.priority,
        ambient: a.dataplane.ambient(),
    };
    let source = a
        .app
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut rendered = Vec::new();
    for (app, compiled) in &loaded.apps {
        rendered.extend(render(
            app,
            &source,
            compiled,
            format,
            &settings,
            a.namespace_default,
        )?);
    }
    match a.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| Fatal(format!("{}: {e}", dir.display())))?;
            for r in &rendered {
                let p = dir.join(&r.file_name);
                std::fs::write(&p, &r.text).map_err(|e| Fatal(format!("{}: {e}", p.display())))?;
                eprintln!("wrote {}", p.display());
            }
        }
        None => print!("{}", join_stdout(&rendered, format)?),
    }
    Ok(ExitCode::SUCCESS)
}
