//! Configuration errors: every one names the field path and what is wrong with it,
//! e.g. `rules[3].paths[0]: '{**}' must be the last segment`.

use std::fmt;

/// What is wrong with a configuration field. The message is meant for the
/// operator who has to fix the policy, so it says what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The text is not valid JSON, or a field is unknown or mistyped (from serde).
    Syntax(String),
    UnsupportedSchemaVersion {
        found: u32,
        supported: u32,
    },
    /// A list or string that must not be empty is empty.
    Empty,
    /// A name that must be unique appears twice.
    Duplicate(String),
    /// A reference to something that is not defined (a role, a provider).
    Undefined {
        kind: &'static str,
        name: String,
    },
    /// A value that does not have the required form; the string says which form.
    Invalid(String),
    /// A number outside its allowed range.
    OutOfRange {
        value: u64,
        min: u64,
        max: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Syntax(msg) => write!(f, "{msg}"),
            Problem::UnsupportedSchemaVersion { found, supported } => write!(
                f,
                "schema_version {found} is not supported by this filter build (supported: {supported}); upgrade the filter or compile the policy for version {supported}"
            ),
            Problem::Empty => write!(f, "must not be empty"),
            Problem::Duplicate(name) => write!(f, "duplicate name '{name}'"),
            Problem::Undefined { kind, name } => write!(f, "{kind} '{name}' is not defined"),
            Problem::Invalid(msg) => write!(f, "{msg}"),
            Problem::OutOfRange { value, min, max } => {
                write!(f, "{value} is out of range (allowed {min}..={max})")
            }
        }
    }
}

/// A configuration error at a field path such as `providers[0].jwks.keys[2].n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub problem: Problem,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, problem: Problem) -> Self {
        ConfigError {
            path: path.into(),
            problem,
        }
    }
    pub fn invalid(path: impl Into<String>, msg: impl Into<String>) -> Self {
        ConfigError::new(path, Problem::Invalid(msg.into()))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "{}: {}", self.path, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}
