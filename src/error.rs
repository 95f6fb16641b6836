//! Configuration diagnostics: every error and warning names the field path
//! and what is wrong with it, e.g. `rules[3].paths[0]: '{**}' must be the
//! last segment`.
//!
//! Paths and messages are structured so that one validator serves two
//! vocabularies: the plugin configuration (snake_case, [`Naming::Snake`])
//! and the OAM trait and policy (camelCase, [`Naming::Camel`]), which the
//! OAM compiler maps onto its own document paths without re-checking.

use std::fmt;

/// How field names are spelled when a path or message is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Naming {
    /// The plugin configuration: `remote_jwks.refresh_seconds`.
    #[default]
    Snake,
    /// OAM properties: `remoteJwks.refreshSeconds`.
    Camel,
}

impl Naming {
    /// A field name in this naming (`one_of` -> `oneOf` in camelCase).
    pub fn field(self, snake: &str) -> String {
        match self {
            Naming::Snake => snake.to_string(),
            Naming::Camel => {
                let mut out = String::with_capacity(snake.len());
                let mut upper = false;
                for ch in snake.chars() {
                    if ch == '_' {
                        upper = true;
                    } else if upper {
                        out.extend(ch.to_uppercase());
                        upper = false;
                    } else {
                        out.push(ch);
                    }
                }
                out
            }
        }
    }
}

/// One segment of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    /// A configuration field, spelled per [`Naming`].
    Field(&'static str),
    /// A list index: `[3]`.
    Index(usize),
    /// A key chosen by the user (a header name in `claim_headers`): as written.
    Key(String),
    /// A path inside user data (JSON members of a JWK, a serde path),
    /// already formatted (`.keys[0].e`): as written.
    Raw(String),
}

/// Where in the configuration a diagnostic points.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(Vec<Seg>);

impl FieldPath {
    /// `self` followed by the segments of `rest`.
    pub fn join(&self, rest: &FieldPath) -> FieldPath {
        let mut v = self.0.clone();
        v.extend(rest.0.iter().cloned());
        FieldPath(v)
    }
    /// The document root.
    pub fn root() -> FieldPath {
        FieldPath(Vec::new())
    }
    pub fn field(&self, name: &'static str) -> FieldPath {
        self.with(Seg::Field(name))
    }
    pub fn index(&self, i: usize) -> FieldPath {
        self.with(Seg::Index(i))
    }
    pub fn key(&self, k: &str) -> FieldPath {
        self.with(Seg::Key(k.to_string()))
    }
    pub fn raw(&self, tail: &str) -> FieldPath {
        if tail.is_empty() {
            return self.clone();
        }
        self.with(Seg::Raw(tail.to_string()))
    }
    fn with(&self, s: Seg) -> FieldPath {
        let mut v = self.0.clone();
        v.push(s);
        FieldPath(v)
    }
    pub fn segments(&self) -> &[Seg] {
        &self.0
    }
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
    /// The path after its first `n` segments.
    pub fn tail(&self, n: usize) -> FieldPath {
        FieldPath(self.0.get(n..).unwrap_or_default().to_vec())
    }

    /// `rules[3].paths[0]`; a relative tail starts with `.` or `[` when
    /// `relative` is set (to be appended to another path).
    pub fn render(&self, naming: Naming, relative: bool) -> String {
        let mut out = String::new();
        for s in &self.0 {
            match s {
                Seg::Field(f) => {
                    if relative || !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&naming.field(f));
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
                Seg::Key(k) => {
                    if relative || !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Raw(r) => {
                    if !relative && out.is_empty() {
                        out.push_str(r.strip_prefix('.').unwrap_or(r));
                    } else {
                        out.push_str(r);
                    }
                }
            }
        }
        out
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(Naming::Snake, false))
    }
}

/// A part of a message: text, or the name of a configuration field (which
/// is spelled per [`Naming`] when shown).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    Text(String),
    Field(&'static str),
}

/// A message for the operator who has to fix the policy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Message(Vec<Part>);

impl Message {
    pub fn new(parts: Vec<Part>) -> Message {
        Message(parts)
    }
    pub fn render(&self, naming: Naming) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Part::Text(t) => t.clone(),
                Part::Field(f) => naming.field(f),
            })
            .collect()
    }
}

impl From<String> for Message {
    fn from(s: String) -> Message {
        Message(vec![Part::Text(s)])
    }
}

impl From<&str> for Message {
    fn from(s: &str) -> Message {
        Message(vec![Part::Text(s.to_string())])
    }
}

impl From<&str> for Part {
    fn from(s: &str) -> Part {
        Part::Text(s.to_string())
    }
}

impl From<String> for Part {
    fn from(s: String) -> Part {
        Part::Text(s)
    }
}

/// A field name inside a message: `msg!("set ", field("remote_jwks"))`.
pub fn field(name: &'static str) -> Part {
    Part::Field(name)
}

/// A [`Message`] from text and [`field`] parts.
macro_rules! msg {
    ($($part:expr),+ $(,)?) => {
        $crate::error::Message::new(vec![$($crate::error::Part::from($part)),+])
    };
}
pub(crate) use msg;

/// What is wrong with a configuration field.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Problem {
    /// The text is not valid JSON, or a field is unknown or mistyped (from serde).
    Syntax(String),
    UnsupportedSchemaVersion {
        found: u32,
        supported: u32,
    },
    /// A list or string that must not be empty is empty.
    Empty,
    /// A name that must be unique appears twice (`kind`: "role", "rule",
    /// ..., or "" for a plain list entry).
    Duplicate {
        kind: &'static str,
        name: String,
    },
    /// A reference to something that is not defined; `known` lists what is.
    Undefined {
        kind: &'static str,
        name: String,
        known: Vec<String>,
    },
    /// A value that does not have the required form; the message says which.
    Invalid(Message),
    /// A number outside its allowed range.
    OutOfRange {
        value: u64,
        min: u64,
        max: u64,
        /// Why the bound is what it is, if it depends on another field.
        note: Option<Message>,
    },
}

impl Problem {
    pub fn invalid(m: impl Into<Message>) -> Problem {
        Problem::Invalid(m.into())
    }
    /// A plain list entry listed twice.
    pub fn duplicate(name: &str) -> Problem {
        Problem::Duplicate {
            kind: "",
            name: name.to_string(),
        }
    }
    pub fn range(value: u64, min: u64, max: u64) -> Problem {
        Problem::OutOfRange {
            value,
            min,
            max,
            note: None,
        }
    }

    pub fn render(&self, naming: Naming) -> String {
        match self {
            Problem::Syntax(msg) => msg.clone(),
            Problem::UnsupportedSchemaVersion { found, supported } => format!(
                "schema_version {found} is not supported by this filter build (supported: {supported}); upgrade the filter or compile the policy for version {supported}"
            ),
            Problem::Empty => "must not be empty".to_string(),
            Problem::Duplicate { kind: "", name } => format!("duplicate name '{name}'"),
            Problem::Duplicate { kind, name } => format!("duplicate {kind} name '{name}'"),
            Problem::Undefined { kind, name, known } => {
                let known = if known.is_empty() {
                    format!("no {kind}s are defined")
                } else {
                    format!("defined: {}", known.join(", "))
                };
                format!("{kind} '{name}' is not defined ({known})")
            }
            Problem::Invalid(m) => m.render(naming),
            Problem::OutOfRange {
                value,
                min,
                max,
                note,
            } => {
                let note = note
                    .as_ref()
                    .map(|n| format!(" ({})", n.render(naming)))
                    .unwrap_or_default();
                format!("{value} is out of range (allowed {min}..={max}){note}")
            }
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(Naming::Snake))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about a configuration: an error (the configuration is
/// refused) or a warning (it loads, but probably not as meant).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    pub severity: Severity,
    pub path: FieldPath,
    pub problem: Problem,
}

impl Diagnostic {
    /// The same diagnostic, its path under `prefix`.
    pub fn under(mut self, prefix: &FieldPath) -> Diagnostic {
        self.path = prefix.join(&self.path);
        self
    }
    pub fn error(path: FieldPath, problem: Problem) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            path,
            problem,
        }
    }
    pub fn warning(path: FieldPath, problem: Problem) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            path,
            problem,
        }
    }
    pub fn invalid(path: FieldPath, m: impl Into<Message>) -> Diagnostic {
        Diagnostic::error(path, Problem::invalid(m))
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
    /// `path: message` in a naming.
    pub fn render(&self, naming: Naming) -> String {
        let path = self.path.render(naming, false);
        let msg = self.problem.render(naming);
        if path.is_empty() {
            msg
        } else {
            format!("{path}: {msg}")
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(Naming::Snake))
    }
}

/// Every diagnostic of one check, in the order found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub fn new() -> Diagnostics {
        Diagnostics::default()
    }
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn error(&mut self, path: FieldPath, problem: Problem) {
        self.push(Diagnostic::error(path, problem));
    }
    pub fn invalid(&mut self, path: FieldPath, m: impl Into<Message>) {
        self.push(Diagnostic::invalid(path, m));
    }
    pub fn warning(&mut self, path: FieldPath, problem: Problem) {
        self.push(Diagnostic::warning(path, problem));
    }
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
    pub fn error_count(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| !d.is_error())
    }
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }
    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Only the errors (a refused configuration).
    pub fn only_errors(self) -> Diagnostics {
        Diagnostics(self.0.into_iter().filter(Diagnostic::is_error).collect())
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Diagnostics {
        Diagnostics(vec![d])
    }
}

/// The errors, one per `; `-separated clause, in the plugin's naming: the
/// line the filter logs when it refuses a configuration.
impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for d in self.errors() {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_in_both_namings() {
        let p = FieldPath::root()
            .field("providers")
            .index(2)
            .field("remote_jwks")
            .field("refresh_seconds");
        assert_eq!(p.to_string(), "providers[2].remote_jwks.refresh_seconds");
        assert_eq!(
            p.tail(2).render(Naming::Camel, true),
            ".remoteJwks.refreshSeconds"
        );
        let j = FieldPath::root().field("jwks").raw(".keys[0].key_ops");
        assert_eq!(j.render(Naming::Camel, false), "jwks.keys[0].key_ops");
        let h = FieldPath::root()
            .field("forward")
            .field("claim_headers")
            .key("x_y");
        assert_eq!(h.render(Naming::Camel, false), "forward.claimHeaders.x_y");
        assert_eq!(FieldPath::root().raw(".a.b").to_string(), "a.b");
    }

    #[test]
    fn messages_name_fields_in_the_reader_s_naming() {
        let m = msg!("set either ", field("jwks"), " or ", field("remote_jwks"));
        assert_eq!(m.render(Naming::Snake), "set either jwks or remote_jwks");
        assert_eq!(m.render(Naming::Camel), "set either jwks or remoteJwks");
        let r = Problem::OutOfRange {
            value: 3,
            min: 5,
            max: 9,
            note: Some(msg!("at least ", field("refresh_seconds"))),
        };
        assert_eq!(
            r.render(Naming::Camel),
            "3 is out of range (allowed 5..=9) (at least refreshSeconds)"
        );
    }

    #[test]
    fn display_lists_every_error() {
        let mut d = Diagnostics::new();
        d.invalid(FieldPath::root().field("rules"), "a");
        d.warning(FieldPath::root().field("roles"), Problem::Empty);
        d.error(FieldPath::root().field("trust_domain"), Problem::Empty);
        assert_eq!(d.to_string(), "rules: a; trust_domain: must not be empty");
        assert_eq!(d.error_count(), 2);
    }
}
