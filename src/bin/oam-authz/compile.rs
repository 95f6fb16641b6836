//! `oam-authz compile`: WasmPlugin resources (or plain plugin configs).

use crate::common::{display_name, is_stdin, load_clean, out, Fatal, Loaded, ModeArg};
use crate::dataplane::DataplaneArgs;
use crate::module_pin;
use crate::outdir::generated_before;
use clap::{Args, ValueEnum};
use oam_authz::oam::{
    generated_header, idp_manifests, join_stdout, render, shadow_of, Finding, Format, Options,
    PluginSettings, Rendered,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum)]
pub enum OutFormat {
    /// Istio `extensions.istio.io/v1alpha1` WasmPlugin resources (YAML).
    Wasmplugin,
    /// The plain plugin configuration (JSON) for a standalone Envoy.
    Envoy,
}

/// `--image-pull-policy`, as Istio spells it.
#[derive(Clone, Copy, ValueEnum)]
pub enum PullPolicy {
    #[value(name = "IfNotPresent")]
    IfNotPresent,
    #[value(name = "Always")]
    Always,
}

#[derive(Args)]
pub struct CompileArgs {
    /// The OAM application (YAML); `-` reads standard input.
    app: PathBuf,
    /// Where Istio pulls the module from: oci://…, https://… or file://…
    #[arg(long)]
    url: Option<String>,
    /// Pinned in each WasmPlugin's sha256: the .wasm file for https:// and
    /// file:// URLs; for oci:// the image layout `make image` writes.
    #[arg(long, conflicts_with = "sha256")]
    module: Option<PathBuf>,
    /// The digest (64 hex digits) pinned in each WasmPlugin: the module's
    /// SHA-256 for https:// URLs, the image's manifest digest for oci://.
    #[arg(long)]
    sha256: Option<String>,
    /// When Istio pulls the module (default: Istio's, IfNotPresent except
    /// for an OCI ':latest' tag).
    #[arg(long, value_enum)]
    image_pull_policy: Option<PullPolicy>,
    /// A docker-registry Secret in the application's namespace, for a
    /// private registry.
    #[arg(long)]
    image_pull_secret: Option<String>,
    /// Also emit a deny-all plugin for each component without mesh-access.
    #[arg(long)]
    namespace_default: bool,
    /// Also emit the ServiceEntry/DestinationRule (or EnvoyFilter) each
    /// remoteJwks IdP needs for the sidecars to reach it.
    #[arg(long)]
    idp_manifests: bool,
    #[arg(long, value_enum, default_value = "wasmplugin")]
    format: OutFormat,
    /// Write one file per plugin into this directory instead of stdout (and
    /// remove the files an earlier run wrote there that are no longer made).
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// Override every component's mode (rollout: audit first, then enforce).
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Order among AUTHN-phase plugins (higher runs first; may be negative).
    #[arg(long, default_value_t = 1000, allow_negative_numbers = true)]
    priority: i64,
    /// Longest token lifetime a provider may allow, in seconds.
    #[arg(long, default_value_t = 86_400)]
    max_token_lifetime: u64,
    #[command(flatten)]
    dataplane: DataplaneArgs,
    /// An application with no mesh-access trait is not an error.
    #[arg(long)]
    allow_unprotected: bool,
    /// Enforce this (older) application and evaluate the one given as its
    /// shadow on every request, never enforced (docs/policy.md "Shadow policy").
    #[arg(long, value_name = "OLD")]
    shadow_of: Option<PathBuf>,
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

/// `--sha256` as given, or what `--module` pins for this URL, in every WasmPlugin.
fn module_digest(
    url: &str,
    module: Option<&PathBuf>,
    sha256: Option<String>,
) -> Result<Option<String>, Fatal> {
    if let Some(hex) = sha256 {
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Fatal(format!(
                "--sha256 '{hex}': 64 lowercase hex digits (sha256sum oam_authz.wasm, or the image digest make image prints)"
            )));
        }
        return Ok(Some(hex));
    }
    module_pin::pin(url, module.map(PathBuf::as_path))
}

/// Nothing pins a module pulled by a mutable reference: sidecars started at
/// different times may run different filters.
fn mutable_url_warning(url: &str, pinned: bool) -> Option<String> {
    if pinned || url.starts_with("file://") || url.contains("@sha256:") {
        return None;
    }
    let fix = "pin it with --module (the image layout of make image for oci://, the .wasm file otherwise) or --sha256 HEX (Istio then refuses any other bytes), or a digest (oci://…@sha256:…)";
    if let Some(rest) = url.strip_prefix("oci://") {
        let last = rest.rsplit('/').next().unwrap_or(rest);
        let tag = last.split_once(':').map_or("latest", |(_, t)| t);
        let latest = if tag == "latest" {
            ", and Istio re-pulls ':latest' on every change (imagePullPolicy defaults to Always for it)"
        } else {
            ""
        };
        return Some(format!(
            "warning: --url {url}: the tag '{tag}' is mutable and nothing pins the module: sidecars may run different filters over time{latest}; {fix}"
        ));
    }
    Some(format!(
        "warning: --url {url}: nothing pins the module: whatever the URL serves when a sidecar starts is run; {fix}"
    ))
}

/// A Kubernetes Secret name (RFC 1123 subdomain).
fn check_secret_name(name: &str) -> Result<(), Fatal> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(Fatal(format!(
            "--image-pull-secret '{name}': a Kubernetes Secret name (lowercase letters, digits, '-', '.')"
        )))
    }
}

fn settings(a: &CompileArgs, format: Format, url: String) -> Result<PluginSettings, Fatal> {
    let sha256 = module_digest(&url, a.module.as_ref(), a.sha256.clone())?;
    if let Some(s) = &a.image_pull_secret {
        check_secret_name(s)?;
    }
    if format == Format::WasmPlugin {
        if let Some(w) = mutable_url_warning(&url, sha256.is_some()) {
            eprintln!("{w}");
        }
    }
    Ok(PluginSettings {
        url,
        sha256,
        priority: a.priority,
        image_pull_policy: a.image_pull_policy.map(|p| {
            match p {
                PullPolicy::IfNotPresent => "IfNotPresent",
                PullPolicy::Always => "Always",
            }
            .to_string()
        }),
        image_pull_secret: a.image_pull_secret.clone(),
        ambient: a.dataplane.ambient(),
    })
}

/// `--shadow-of OLD`: OLD's components (the enforced policy, `--mode`
/// applies to it) with NEW's as their shadows.
fn shadowed(new: &Path, old: &Path, opts: &Options) -> Result<Result<Loaded, ExitCode>, Fatal> {
    let mut old_loaded = match load_clean(old, opts)? {
        Ok(l) => l,
        Err(code) => return Ok(Err(code)),
    };
    let new_opts = Options {
        mode: None,
        ..opts.clone()
    };
    let new_loaded = match load_clean(new, &new_opts)? {
        Ok(l) => l,
        Err(code) => return Ok(Err(code)),
    };
    let findings = shadow_of(
        &mut old_loaded.apps,
        &new_loaded.apps,
        &display_name(old),
        &display_name(new),
    );
    for f in &findings {
        eprintln!("{f}");
    }
    if findings.iter().any(Finding::is_error) {
        eprintln!(
            "{}: not compiled as the shadow of {}: fix the errors above",
            display_name(new),
            display_name(old)
        );
        return Ok(Err(ExitCode::from(1)));
    }
    Ok(Ok(old_loaded))
}

pub fn run(a: CompileArgs) -> Result<ExitCode, Fatal> {
    let format = match a.format {
        OutFormat::Wasmplugin => Format::WasmPlugin,
        OutFormat::Envoy => Format::Envoy,
    };
    if a.idp_manifests && format == Format::Envoy {
        return Err(Fatal(
            "--idp-manifests makes Istio resources; with --format envoy add the IdP cluster to the Envoy configuration (docs/operations.md, \"The cluster\")".into(),
        ));
    }
    let mut opts = Options {
        max_token_lifetime: a.max_token_lifetime,
        mode: a.mode.map(ModeArg::mode),
        allow_unprotected: a.allow_unprotected,
        ..Options::default()
    };
    a.dataplane.apply(&mut opts)?;
    let url = module_url(format, a.url.clone())?;
    let settings = settings(&a, format, url)?;
    let name = |p: &PathBuf| {
        if is_stdin(p) {
            display_name(p)
        } else {
            p.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        }
    };
    let (loaded, source) = match &a.shadow_of {
        None => match load_clean(&a.app, &opts)? {
            Ok(l) => (l, name(&a.app)),
            Err(code) => return Ok(code),
        },
        Some(old) => match shadowed(&a.app, old, &opts)? {
            Ok(l) => (l, format!("{} with the shadow {}", name(old), name(&a.app))),
            Err(code) => return Ok(code),
        },
    };
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
        if a.idp_manifests {
            let (docs, warnings) =
                idp_manifests(app, compiled, &generated_header(&source, &app.name))?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            rendered.extend(docs);
        }
    }
    match &a.out_dir {
        Some(dir) => write_out_dir(dir, &rendered, &loaded)?,
        None => out(&join_stdout(&rendered, format)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// `--out-dir`: write each file, removing what an earlier compile of the
/// same applications wrote and this one no longer generates.
fn write_out_dir(dir: &Path, rendered: &[Rendered], loaded: &Loaded) -> Result<(), Fatal> {
    std::fs::create_dir_all(dir).map_err(|e| Fatal(format!("{}: {e}", dir.display())))?;
    let written: BTreeSet<PathBuf> = rendered.iter().map(|r| dir.join(&r.file_name)).collect();
    for (app, _) in &loaded.apps {
        for stale in generated_before(dir, &app.name) {
            if !written.contains(&stale) {
                std::fs::remove_file(&stale)
                    .map_err(|e| Fatal(format!("{}: {e}", stale.display())))?;
                eprintln!(
                    "removed {} (written by an earlier compile of {}, no longer generated)",
                    stale.display(),
                    app.name
                );
            }
        }
    }
    for r in rendered {
        let p = dir.join(&r.file_name);
        std::fs::write(&p, &r.text).map_err(|e| Fatal(format!("{}: {e}", p.display())))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
