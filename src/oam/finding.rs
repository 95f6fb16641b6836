//! Validation findings: one line each, usable as a pull-request check.
//!
//! Text form: `app.yaml:41:19: component orders: spec.components[1].traits[0].properties.rules[2].paths[0]: <message>`
//! (warnings say `warning:` before the message; the line and column are
//! those of the field, or of its nearest parent when it is missing). The
//! JSON form carries the same fields.

use super::position::Pos;
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// What a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// The file itself (not YAML, no application in it).
    File,
    Application(String),
    Component(String),
    Policy(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Finding {
    pub file: String,
    /// Where in `file` the field is (set when the file is loaded).
    pub pos: Option<Pos>,
    /// The application the finding is in, when it has a name.
    pub application: Option<String>,
    pub severity: Severity,
    pub scope: Scope,
    /// Field path from the document root, e.g. `spec.components[1].traits[0].properties.rules[2]`.
    pub path: String,
    pub message: String,
}

impl Finding {
    pub fn error(scope: Scope, path: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            file: String::new(),
            pos: None,
            application: None,
            severity: Severity::Error,
            scope,
            path: path.into(),
            message: message.into(),
        }
    }
    pub fn warning(scope: Scope, path: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Warning,
            ..Finding::error(scope, path, message)
        }
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// A stable rule name for CI tools (SARIF `ruleId`, Code Quality
    /// `check_name`): the field path without indices, after the trait or
    /// policy properties, e.g. `mesh-access.rules.paths`,
    /// `mesh-identity.providers.issuer`, `application.spec.components`.
    pub fn rule_id(&self) -> String {
        let mut plain = String::new();
        let mut depth = 0usize;
        for ch in self.path.chars() {
            match ch {
                '[' => depth += 1,
                ']' => depth = depth.saturating_sub(1),
                c if depth == 0 => plain.push(c),
                _ => {}
            }
        }
        let (kind, rest) = match plain.split_once(".properties") {
            Some((head, tail)) if head.contains("traits") => ("mesh-access", tail),
            Some((head, tail)) if head.contains("policies") => ("mesh-identity", tail),
            _ => ("application", plain.as_str()),
        };
        let rest = rest.trim_start_matches('.');
        match (kind, rest.is_empty()) {
            ("application", true) => "application".to_string(),
            (_, true) => kind.to_string(),
            _ => format!("{kind}.{rest}"),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::File => f.write_str("file"),
            Scope::Application(n) => write!(f, "application {n}"),
            Scope::Component(n) => write!(f, "component {n}"),
            Scope::Policy(n) => write!(f, "policy {n}"),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "",
            Severity::Warning => "warning: ",
        };
        write!(f, "{}", self.file)?;
        if let Some(p) = self.pos {
            write!(f, ":{}:{}", p.line, p.column)?;
        }
        if self.scope != Scope::File {
            write!(f, ": {}", self.scope)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {sev}{}", self.message)
    }
}

/// JSON shape of one finding (`validate --output json`).
#[derive(Debug, Serialize)]
pub struct FindingJson<'a> {
    pub file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<&'a str>,
    pub path: &'a str,
    pub message: &'a str,
}

impl<'a> From<&'a Finding> for FindingJson<'a> {
    fn from(f: &'a Finding) -> Self {
        let (mut application, mut component, mut policy) = (f.application.as_deref(), None, None);
        match &f.scope {
            Scope::File => {}
            Scope::Application(n) => application = application.or(Some(n.as_str())),
            Scope::Component(n) => component = Some(n.as_str()),
            Scope::Policy(n) => policy = Some(n.as_str()),
        }
        FindingJson {
            file: &f.file,
            line: f.pos.map(|p| p.line),
            column: f.pos.map(|p| p.column),
            severity: f.severity,
            application,
            component,
            policy,
            path: &f.path,
            message: &f.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_name_the_field_without_indices() {
        let table = [
            (
                "spec.components[1].traits[0].properties.rules[2].paths[0]",
                "mesh-access.rules.paths",
            ),
            (
                "spec.policies[0].properties.providers[1].issuer",
                "mesh-identity.providers.issuer",
            ),
            (
                "spec.components[1].traits[0].properties.identity.providers[0].audiences",
                "mesh-access.identity.providers.audiences",
            ),
            ("spec.components[2].traits[0].properties", "mesh-access"),
            ("spec.components", "application.spec.components"),
            (
                "spec.components[0].properties.traits[0]",
                "application.spec.components.properties.traits",
            ),
            ("", "application"),
        ];
        for (path, want) in table {
            let f = Finding::error(Scope::File, path, "m");
            assert_eq!(f.rule_id(), want, "{path}");
        }
    }
}
