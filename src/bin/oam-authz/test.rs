//! `oam-authz test`: policy test cases, each a request and its expected decision.

use crate::common::{display_name, load_clean, now_unix, out, read, read_jwks, Fatal};
use clap::{Args, ValueEnum};
use oam_authz::oam::{
    case_coverage, parse_cases, run_selected, Case, CaseOutcome, CaseResult, Options, Report,
};
use std::path::PathBuf;
use std::process::ExitCode;

/// `--format` of `test`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TestFormat {
    /// `PASS  cases[0] name` per case, then the totals.
    Text,
    /// One JSON document: every case with its outcome, and the totals.
    Json,
    /// JUnit XML (one testsuite per cases file), for CI test reports.
    Junit,
}

#[derive(Args)]
pub struct TestArgs {
    /// The OAM application (YAML); `-` reads standard input.
    app: PathBuf,
    /// One or more cases files; `-` reads standard input.
    #[arg(required = true)]
    cases: Vec<PathBuf>,
    /// Unix time for cases that give none; default: now.
    #[arg(long)]
    now: Option<u64>,
    /// A JWK set (JSON file) to verify the cases' tokens with when their
    /// provider fetches its keys at run time (remoteJwks).
    #[arg(long)]
    jwks: Option<PathBuf>,
    /// Output format.
    #[arg(
        short = 'o',
        long = "format",
        visible_alias = "output",
        value_enum,
        default_value = "text"
    )]
    format: TestFormat,
    /// Run only the cases whose name contains PATTERN, or whose label is
    /// PATTERN (`cases[3]`); repeat for several.
    #[arg(long = "run", value_name = "PATTERN")]
    run: Vec<String>,
    /// Also report which rules and role conditions the cases exercise.
    #[arg(long)]
    coverage: bool,
    /// Exit 1 when coverage is below PCT percent (implies --coverage).
    #[arg(long, value_name = "PCT")]
    min_coverage: Option<f64>,
}

/// The cases of one file, run.
struct FileReport {
    file: String,
    report: Report,
}

fn selected(patterns: &[String], i: usize, case: &Case) -> bool {
    patterns.is_empty()
        || patterns
            .iter()
            .any(|p| case.name.contains(p.as_str()) || *p == format!("cases[{i}]"))
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
    let Some((app, compiled)) = loaded.apps.first() else {
        return Err(Fatal(format!("{}: no application", display_name(&a.app))));
    };
    let now = a.now.unwrap_or_else(now_unix);
    let mut files: Vec<FileReport> = Vec::new();
    for path in &a.cases {
        let name = display_name(path);
        let parsed = parse_cases(&read(path)?).map_err(|e| {
            // "12:5: cases[1].expect: …" carries its line: file:line:column.
            let sep = if e.starts_with(|c: char| c.is_ascii_digit()) {
                ":"
            } else {
                ": "
            };
            Fatal(format!("{name}{sep}{e}"))
        })?;
        let report = run_selected(app, compiled, &parsed, now, jwks.as_ref(), &|i, c| {
            selected(&a.run, i, c)
        });
        files.push(FileReport { file: name, report });
    }
    let total = |f: fn(&Report) -> usize| files.iter().map(|r| f(&r.report)).sum::<usize>();
    let (passed, failed, errors) = (
        total(|r| r.passed),
        total(|r| r.failed),
        total(|r| r.errors),
    );
    if passed + failed + errors == 0 {
        return Err(Fatal(format!(
            "--run {}: matches no case (a run that tests nothing cannot pass)",
            a.run.join(", --run ")
        )));
    }
    let coverage = (a.coverage || a.min_coverage.is_some()).then(|| {
        // Over every case file given: together they are the suite.
        let evaluated: Vec<_> = files
            .iter_mut()
            .flat_map(|f| std::mem::take(&mut f.report.evaluated))
            .collect();
        case_coverage(compiled, &evaluated)
    });
    match a.format {
        TestFormat::Text => print_text(&files, passed, failed, errors),
        TestFormat::Json => {
            let mut report = json(&files, passed, failed, errors);
            if let (Some(c), Some(obj)) = (&coverage, report.as_object_mut()) {
                obj.insert("coverage".into(), c.json());
            }
            out(&format!("{}\n", serde_json::to_string_pretty(&report)?));
        }
        TestFormat::Junit => out(&junit(&files, &app.name)),
    }
    let below = match coverage {
        // On stderr: it never mixes with a report on stdout (JUnit, JSON).
        Some(c) => {
            eprint!("{}", c.text());
            below_minimum(c.percent(), a.min_coverage)
        }
        None => false,
    };
    Ok(if errors > 0 {
        ExitCode::from(2)
    } else if failed > 0 || below {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_text(files: &[FileReport], passed: usize, failed: usize, errors: usize) {
    let several = files.len() > 1;
    for f in files {
        for l in &f.report.lines {
            if several {
                out(&format!("{}: {l}\n", f.file));
            } else {
                out(&format!("{l}\n"));
            }
        }
    }
    if errors > 0 {
        out(&format!(
            "{passed} passed, {failed} failed, {errors} could not be run\n"
        ));
    } else {
        out(&format!("{passed} passed, {failed} failed\n"));
    }
}

fn outcome(r: &CaseResult) -> (&'static str, Option<&str>) {
    match &r.outcome {
        CaseOutcome::Pass => ("pass", None),
        CaseOutcome::Fail(why) => ("fail", Some(why)),
        CaseOutcome::Error(why) => ("error", Some(why)),
    }
}

fn json(files: &[FileReport], passed: usize, failed: usize, errors: usize) -> serde_json::Value {
    let cases: Vec<serde_json::Value> = files
        .iter()
        .flat_map(|f| {
            f.report.results.iter().map(move |r| {
                let (status, why) = outcome(r);
                serde_json::json!({
                    "file": f.file,
                    "line": r.pos.map(|p| p.line),
                    "case": format!("cases[{}]", r.index),
                    "name": r.name,
                    "component": r.component,
                    "outcome": status,
                    "message": why,
                })
            })
        })
        .collect();
    serde_json::json!({
        "passed": passed,
        "failed": failed,
        "errors": errors,
        "cases": cases,
    })
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML as GitLab, GitHub test reporters and Jenkins read it.
fn junit(files: &[FileReport], app: &str) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"oam-authz test\">\n",
    );
    for f in files {
        let r = &f.report;
        s.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\">\n",
            xml(&f.file),
            r.results.len(),
            r.failed,
            r.errors
        ));
        for c in &r.results {
            let line = c
                .pos
                .map(|p| format!(" line=\"{}\"", p.line))
                .unwrap_or_default();
            s.push_str(&format!(
                "    <testcase name=\"cases[{}] {}\" classname=\"{}.{}\" file=\"{}\"{line}",
                c.index,
                xml(&c.name),
                xml(app),
                xml(&c.component),
                xml(&f.file)
            ));
            match &c.outcome {
                CaseOutcome::Pass => s.push_str("/>\n"),
                CaseOutcome::Fail(why) => s.push_str(&format!(
                    ">\n      <failure message=\"{}\"/>\n    </testcase>\n",
                    xml(why)
                )),
                CaseOutcome::Error(why) => s.push_str(&format!(
                    ">\n      <error message=\"{}\"/>\n    </testcase>\n",
                    xml(why)
                )),
            }
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}

/// Whether coverage is below `--min-coverage` (said on stderr).
fn below_minimum(percent: f64, min: Option<f64>) -> bool {
    let below = min.is_some_and(|m| percent < m);
    if let (true, Some(m)) = (below, min) {
        eprintln!("coverage {percent:.1}% is below --min-coverage {m}");
    }
    below
}
