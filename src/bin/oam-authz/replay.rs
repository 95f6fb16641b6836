//! `oam-authz replay POLICY --log FILE`: the recorded requests whose
//! decision POLICY would change (docs/cli.md "oam-authz replay").

use crate::common::{display_name, is_stdin, out, read, Fatal, Output};
use crate::diff::git_show;
use clap::Args;
use oam_authz::oam::{
    check_text, parse_audit_log, replay, replay_json, replay_text, Finding, Options, ReplayTarget,
};
use oam_authz::Policy;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct ReplayArgs {
    /// The policy to decide the events under: an OAM application or a
    /// plugin config (JSON); a file or REV:PATH (read with `git show`).
    policy: String,
    /// Envoy's log (or `kubectl logs` output) holding the audit lines; `-`
    /// (the default) reads standard input.
    #[arg(long, default_value = "-")]
    log: PathBuf,
    /// Replay every event under this component's policy (by default each
    /// event goes to the component whose policy version it names).
    #[arg(long)]
    component: Option<String>,
    /// text (people) or json (tools).
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    output: Output,
}

/// A plugin config is a JSON object (the byte of its opening brace).
const JSON_OBJECT: u8 = 0x7b;

/// POLICY: a file, or REV:PATH read with `git show`.
fn policy_text(policy: &str) -> Result<String, Fatal> {
    let path = Path::new(policy);
    if is_stdin(path) {
        return Err(Fatal(
            "POLICY cannot be '-': standard input is for the log (--log)".into(),
        ));
    }
    if path.exists() {
        read(path)
    } else if policy.contains(':') {
        git_show(policy)
    } else {
        Err(Fatal(format!(
            "{policy}: no such file (a git revision is written REV:PATH, e.g. HEAD~1:app.yaml)"
        )))
    }
}

pub fn run(a: ReplayArgs) -> Result<ExitCode, Fatal> {
    let text = policy_text(&a.policy)?;
    let log = read(&a.log)?;
    let (events, unreadable) = parse_audit_log(&log);
    let log_label = display_name(&a.log);
    let report = if text.trim_start().as_bytes().first() == Some(&JSON_OBJECT) {
        let policy = match Policy::from_json(&text) {
            Ok(p) => p,
            Err(d) => {
                eprintln!("{}: not a valid plugin config: {d}", a.policy);
                return Ok(ExitCode::from(1));
            }
        };
        let targets = [ReplayTarget {
            application: "plugin-config",
            component: "policy",
            policy: &policy,
        }];
        if let Some(c) = a.component.as_deref().filter(|c| *c != "policy") {
            return Err(Fatal(format!(
                "--component '{c}': a plugin config has one policy (its component is 'policy')"
            )));
        }
        replay(&a.policy, &log_label, &targets, events, unreadable, None)
    } else {
        let loaded = check_text(&text, &a.policy, &Options::default());
        for f in &loaded.findings {
            eprintln!("{f}");
        }
        if loaded.findings.iter().any(Finding::is_error) {
            eprintln!(
                "{}: not compiled: fix the errors above (oam-authz validate lists them all)",
                a.policy
            );
            return Ok(ExitCode::from(1));
        }
        let targets: Vec<ReplayTarget<'_>> = loaded
            .apps
            .iter()
            .flat_map(|(app, cs)| {
                cs.iter().map(move |c| ReplayTarget {
                    application: &app.name,
                    component: &c.component,
                    policy: &c.policy,
                })
            })
            .collect();
        if let Some(c) = &a.component {
            if !targets.iter().any(|t| t.component == c.as_str()) {
                let names: Vec<&str> = targets.iter().map(|t| t.component).collect();
                return Err(Fatal(format!(
                    "--component '{c}': {} protects no component of that name (protected: {})",
                    a.policy,
                    names.join(", ")
                )));
            }
        }
        replay(
            &a.policy,
            &log_label,
            &targets,
            events,
            unreadable,
            a.component.as_deref(),
        )
    };
    out(&match a.output {
        Output::Text => replay_text(&report),
        Output::Json => replay_json(&report),
    });
    Ok(ExitCode::from(report.exit_code()))
}
