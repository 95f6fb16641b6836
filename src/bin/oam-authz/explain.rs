//! `oam-authz explain`: the decision for one request, and why.

use crate::common::{find_component, load_clean, now_unix, out, read, read_jwks, Fatal, Output};
use clap::Args;
use oam_authz::oam::{evaluate, explain_json, explain_text, Input, Options};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct ExplainArgs {
    /// The OAM application (YAML); `-` reads standard input.
    app: PathBuf,
    #[arg(long)]
    component: String,
    /// The caller's SPIFFE ID, or a component name of the application.
    #[arg(long)]
    principal: Option<String>,
    /// A file holding a compact JWT (`-`: standard input); verified with the provider's keys.
    #[arg(long, conflicts_with = "claims")]
    token: Option<PathBuf>,
    /// Claims as JSON (or @file, @- for standard input), taken as verified: the signature is not checked.
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
    /// `text` (default) or `json`.
    #[arg(short, long, value_enum, default_value = "text")]
    output: Output,
    /// Exit 1 when the decision is DENY (0 on ALLOW), for scripts and CI.
    #[arg(long)]
    exit_code: bool,
}

/// `--claims`: a JSON object, inline or `@file`.
fn read_claims(
    text: Option<String>,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, Fatal> {
    let Some(text) = text else { return Ok(None) };
    let text = match text.strip_prefix('@') {
        Some(file) => read(Path::new(file))?,
        None => text,
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(m)) => Ok(Some(m)),
        Ok(_) => Err(Fatal("--claims: must be a JSON object".into())),
        Err(e) => Err(Fatal(format!("--claims: not valid JSON: {e}"))),
    }
}

pub fn run(a: ExplainArgs) -> Result<ExitCode, Fatal> {
    let jwks = read_jwks(a.jwks.as_deref())?;
    let loaded = match load_clean(&a.app, &Options::default())? {
        Ok(l) => l,
        Err(code) => return Ok(code),
    };
    let (app, c) = find_component(&loaded, &a.component)?;
    let token = match &a.token {
        Some(p) => Some(read(p)?.trim().to_string()),
        None => None,
    };
    let input = Input {
        principal: a.principal,
        token,
        claims: read_claims(a.claims)?,
        provider: a.provider,
        method: a.method,
        path: a.path,
        host: a.host,
        now: a.now.unwrap_or_else(now_unix),
        jwks,
    };
    let outcome = evaluate(app, c, &input).map_err(Fatal)?;
    match a.output {
        Output::Text => out(&explain_text(c, app, &input, &outcome)),
        Output::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&explain_json(c, app, &input, &outcome))?
        )),
    }
    Ok(if a.exit_code && !outcome.decision.allowed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
