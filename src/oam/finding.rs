//! Validation findings: one line each, usable as a pull-request check.
//!
//! Text form: `app.yaml: component orders: spec.components[1].traits[0].properties.rules[2].paths[0]: <message>`
//! (warnings say `warning:` before the message). The JSON form carries the
//! same fields.

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
    Application(String),
    Component(String),
    Policy(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Finding {
    pub file: String,
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
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
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
        if self.path.is_empty() {
            write!(f, "{}: {}: {sev}{}", self.file, self.scope, self.message)
        } else {
            write!(
                f,
                "{}: {}: {}: {sev}{}",
                self.file, self.scope, self.path, self.message
            )
        }
    }
}

/// JSON shape of one finding (`validate --output json`).
#[derive(Debug, Serialize)]
pub struct FindingJson<'a> {
    pub file: &'a str,
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
        let (mut application, mut component, mut policy) = (None, None, None);
        match &f.scope {
            Scope::Application(n) => application = Some(n.as_str()),
            Scope::Component(n) => component = Some(n.as_str()),
            Scope::Policy(n) => policy = Some(n.as_str()),
        }
        FindingJson {
            file: &f.file,
            severity: f.severity,
            application,
            component,
            policy,
            path: &f.path,
            message: &f.message,
        }
    }
}
