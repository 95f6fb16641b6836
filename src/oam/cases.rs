//! Policy unit tests (`oam-authz test app.yaml cases.yaml`), like `opa test`:
//! each case is a request and the decision it must get.
//!
//! ```yaml
//! now: 1767225600            # optional default for every case (unix seconds)
//! cases:
//!   - name: frontend lists orders
//!     component: orders
//!     principal: frontend     # a component name, ns/<ns>/sa/<sa> or spiffe://…
//!     claims: {iss: https://example.okta.com, groups: [shop-admins]}
//!     provider: okta          # optional, chosen by 'iss' otherwise
//!     method: GET
//!     path: /orders/42
//!     host: orders.shop.example.com
//!     expect: {decision: allow, status: 200, reason: role_granted, rule: read-orders}
//! ```

use super::compile::CompiledComponent;
use super::evaluate::{evaluate, Input};
use super::load::{strict, Application};
use super::position::{positions, Pos, Positions};
use serde::Deserialize;
use serde_json::{Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    #[serde(default)]
    pub now: Option<u64>,
    pub cases: Vec<Case>,
    /// Where each case starts in the file.
    #[serde(skip)]
    positions: Positions,
}

impl CaseFile {
    /// Line and column of `cases[i]`.
    pub fn position(&self, i: usize) -> Option<Pos> {
        self.positions.find(&format!("cases[{i}]"))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub component: String,
    #[serde(default)]
    pub principal: Option<String>,
    #[serde(default)]
    pub claims: Option<Map<String, Value>>,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default = "get")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub now: Option<u64>,
    pub expect: Expect,
}

fn get() -> String {
    "GET".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub decision: Verdict,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub rule: Option<String>,
}

/// Parse a cases file; errors name the field path (and line). A file
/// without cases is refused: a suite that tests nothing must not pass.
pub fn parse(text: &str) -> Result<CaseFile, String> {
    let value: Value = serde_norway::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let pos = positions(text).into_iter().next().unwrap_or_default();
    let mut file = strict::<CaseFile>(&value, "").map_err(|(path, msg)| {
        let path = path.trim_start_matches('.');
        match pos.find(path) {
            Some(p) => format!("{}:{}: {path}: {msg}", p.line, p.column),
            None => format!("{path}: {msg}"),
        }
    })?;
    if file.cases.is_empty() {
        return Err("cases: the file has no cases: a suite that tests nothing cannot pass".into());
    }
    file.positions = pos;
    Ok(file)
}

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// The decision differs from `expect`.
    Fail(String),
    /// The case cannot be run as written (unknown component or provider, a
    /// principal that is not one identity, token and claims both given).
    Error(String),
}

/// One case's result.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// `cases[i]`, its index in its file.
    pub index: usize,
    pub name: String,
    pub component: String,
    pub pos: Option<Pos>,
    pub outcome: Outcome,
}

#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub passed: usize,
    pub failed: usize,
    /// Cases that could not be run (`Outcome::Error`).
    pub errors: usize,
    pub results: Vec<CaseResult>,
    /// What each evaluated case went through, for `test --coverage`.
    pub evaluated: Vec<Evaluated>,
}

/// One case's decision and trace (cases that could not be evaluated have none).
#[derive(Debug)]
pub struct Evaluated {
    /// Index into the case file's `cases`.
    pub case: usize,
    pub component: String,
    pub outcome: super::evaluate::Outcome,
}

impl Evaluated {
    fn of(case: usize, c: &CompiledComponent, outcome: super::evaluate::Outcome) -> Evaluated {
        Evaluated {
            case,
            component: c.component.clone(),
            outcome,
        }
    }
}

/// Run every case; `now` is the fallback clock.
/// `jwks`: keys for tokens of providers with `remoteJwks` (`test --jwks`).
pub fn run(
    app: &Application,
    compiled: &[CompiledComponent],
    file: &CaseFile,
    now: u64,
    jwks: Option<&Value>,
) -> Report {
    run_selected(app, compiled, file, now, jwks, &|_, _| true)
}

/// As [`run`], for the cases `select(index, case)` keeps (`test --run`).
pub fn run_selected(
    app: &Application,
    compiled: &[CompiledComponent],
    file: &CaseFile,
    now: u64,
    jwks: Option<&Value>,
    select: &dyn Fn(usize, &Case) -> bool,
) -> Report {
    let mut report = Report::default();
    for (i, case) in file.cases.iter().enumerate() {
        if !select(i, case) {
            continue;
        }
        let label = format!("cases[{i}] {}", case.name);
        let at = file
            .position(i)
            .map(|p| format!(" (line {})", p.line))
            .unwrap_or_default();
        let outcome = run_case(
            app,
            compiled,
            case,
            case.now.or(file.now).unwrap_or(now),
            jwks,
            (i, &mut report.evaluated),
        );
        match &outcome {
            Outcome::Pass => {
                report.passed += 1;
                report.lines.push(format!("PASS  {label}"));
            }
            Outcome::Fail(why) => {
                report.failed += 1;
                report.lines.push(format!("FAIL  {label}{at}: {why}"));
            }
            Outcome::Error(why) => {
                report.errors += 1;
                report.lines.push(format!("ERROR {label}{at}: {why}"));
            }
        }
        report.results.push(CaseResult {
            index: i,
            name: case.name.clone(),
            component: case.component.clone(),
            pos: file.position(i),
            outcome,
        });
    }
    report
}

fn run_case(
    app: &Application,
    compiled: &[CompiledComponent],
    case: &Case,
    now: u64,
    jwks: Option<&Value>,
    evaluated: (usize, &mut Vec<Evaluated>),
) -> Outcome {
    match check_case(app, compiled, case, now, jwks, evaluated) {
        Ok(None) => Outcome::Pass,
        Ok(Some(why)) => Outcome::Fail(why),
        Err(why) => Outcome::Error(why),
    }
}

/// `Ok(None)`: as expected; `Ok(Some(why))`: another decision; `Err`: the
/// case cannot be run.
fn check_case(
    app: &Application,
    compiled: &[CompiledComponent],
    case: &Case,
    now: u64,
    jwks: Option<&Value>,
    (index, evaluated): (usize, &mut Vec<Evaluated>),
) -> Result<Option<String>, String> {
    let c = compiled
        .iter()
        .find(|c| c.component == case.component)
        .ok_or_else(|| {
            let names: Vec<&str> = compiled.iter().map(|c| c.component.as_str()).collect();
            format!(
                "component '{}' is not protected by a mesh-access trait (protected: {})",
                case.component,
                names.join(", ")
            )
        })?;
    if case.token.is_some() && case.claims.is_some() {
        return Err("give 'token' or 'claims', not both".into());
    }
    let input = Input {
        principal: case.principal.clone(),
        token: case.token.clone(),
        claims: case.claims.clone(),
        provider: case.provider.clone(),
        method: case.method.clone(),
        path: case.path.clone(),
        host: case.host.clone(),
        now,
        jwks: jwks.cloned(),
    };
    let o = evaluate(app, c, &input)?;
    evaluated.push(Evaluated::of(index, c, o.clone()));
    let d = &o.decision;
    let got_verdict = if d.allowed() {
        Verdict::Allow
    } else {
        Verdict::Deny
    };
    let e = &case.expect;
    let ok = got_verdict == e.decision
        && e.status.is_none_or(|s| s == d.status())
        && e.reason.as_deref().is_none_or(|r| r == d.reason.code())
        && e.rule
            .as_deref()
            .is_none_or(|r| c.policy.rule_name(d.rule) == Some(r));
    if ok {
        return Ok(None);
    }
    let show = |v: Verdict| match v {
        Verdict::Allow => "allow",
        Verdict::Deny => "deny",
    };
    let mut want = vec![show(e.decision).to_string()];
    want.extend(e.status.map(|s| s.to_string()));
    want.extend(e.reason.clone());
    want.extend(e.rule.as_ref().map(|r| format!("rule '{r}'")));
    let mut got = vec![
        show(got_verdict).to_string(),
        d.status().to_string(),
        d.reason.code().to_string(),
    ];
    got.extend(c.policy.rule_name(d.rule).map(|r| format!("rule '{r}'")));
    let roles = c.policy.role_names(&d.roles);
    let roles = if roles.is_empty() {
        "none".to_string()
    } else {
        roles.join(", ")
    };
    Ok(Some(format!(
        "expected {}, got {} (roles held: {roles}; run 'oam-authz explain' for the trace)",
        want.join(" "),
        got.join(" ")
    )))
}
