//! The operation space of two policies cut into cells: every method, host
//! and path atom the rules of either policy tell apart. Within one cell
//! every rule of both policies covers all operations or none, so the
//! covering rules (and with them the decision, for a given caller) are
//! constant on a cell. See docs/diff.md "Operations".

use super::error::DiffError;
use super::paths::{membership, path_atoms, PathAtom};
use crate::pattern::hostname::HostPattern;
use crate::pattern::path::PathPattern;
use crate::policy::{Policy, Rule};

/// A method named by some rule, or (`None`) every method no rule names.
#[derive(Debug, Clone)]
pub struct MethodAtom {
    pub method: Option<String>,
    pub example: String,
}

/// A class of normalized hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKind {
    /// A host some rule names exactly.
    Exact(String),
    /// Subdomains of `.d` (stored as in `HostPattern::Subdomain`) other
    /// than the named hosts and the subdomains of deeper patterns.
    Under(String),
    /// Hosts no pattern matches.
    Other,
}

#[derive(Debug, Clone)]
pub struct HostAtom {
    pub kind: HostKind,
    /// `member[i]`: whether the hosts of this atom match host pattern `i`.
    pub member: Vec<bool>,
    pub example: String,
}

/// One cell: indices into `methods`, `hosts`, `paths`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cell {
    pub m: usize,
    pub h: usize,
    pub p: usize,
}

#[derive(Debug)]
pub struct OpSpace {
    pub methods: Vec<MethodAtom>,
    pub host_patterns: Vec<HostPattern>,
    pub hosts: Vec<HostAtom>,
    pub path_patterns: Vec<PathPattern>,
    pub paths: Vec<PathAtom>,
}

/// Methods in the order people read them, then the rest alphabetically.
const COMMON: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

fn method_rank(m: &str) -> (usize, String) {
    (
        COMMON.iter().position(|c| *c == m).unwrap_or(COMMON.len()),
        m.to_string(),
    )
}

fn rules<'a>(policies: &'a [&'a Policy]) -> impl Iterator<Item = &'a Rule> + 'a {
    policies.iter().flat_map(|p| p.rules.iter())
}

fn method_atoms(policies: &[&Policy]) -> Vec<MethodAtom> {
    let mut named: Vec<String> = rules(policies)
        .flat_map(|r| r.methods.iter().flatten().cloned())
        .collect();
    named.sort_by_key(|m| method_rank(m));
    named.dedup();
    let other = ["PATCH", "OPTIONS", "PUT", "DELETE", "POST", "GET", "HEAD"]
        .iter()
        .map(|m| (*m).to_string())
        .chain((0..).map(|i| format!("X-OTHER-{i}")))
        .find(|m| !named.contains(m))
        .unwrap_or_default();
    let mut out: Vec<MethodAtom> = named
        .into_iter()
        .map(|m| MethodAtom {
            example: m.clone(),
            method: Some(m),
        })
        .collect();
    out.push(MethodAtom {
        method: None,
        example: other,
    });
    out
}

fn host_member(patterns: &[HostPattern], host: &str) -> Vec<bool> {
    patterns.iter().map(|p| p.matches(host)).collect()
}

/// Candidate hosts for each atom: every named host, a fresh label under
/// each `*.d`, and a host no pattern matches. They reach every membership
/// vector a host can have: a host that is not named matches exactly the
/// patterns `*.d` whose `.d` is a suffix of its deepest matching one.
fn host_atoms(patterns: &[HostPattern], default_host: &str) -> Vec<HostAtom> {
    let mut out: Vec<HostAtom> = Vec::new();
    let mut push = |kind: HostKind, example: String| {
        let member = host_member(patterns, &example);
        if !out.iter().any(|a| a.member == member) {
            out.push(HostAtom {
                kind,
                member,
                example,
            });
        }
    };
    let named = |h: &str| patterns.contains(&HostPattern::Exact(h.to_string()));
    for p in patterns {
        if let HostPattern::Exact(h) = p {
            push(HostKind::Exact(h.clone()), h.clone());
        }
    }
    for p in patterns {
        if let HostPattern::Subdomain(d) = p {
            let example = ["x", "y", "z", "other"]
                .iter()
                .map(|l| format!("{l}{d}"))
                .chain((0..).map(|i| format!("x{i}{d}")))
                .find(|h| !named(h))
                .unwrap_or_default();
            push(HostKind::Under(d.clone()), example);
        }
    }
    let other = [default_host.to_string(), "unlisted.invalid".to_string()]
        .into_iter()
        .chain((0..).map(|i| format!("unlisted-{i}.invalid")))
        .find(|h| !h.is_empty() && host_member(patterns, h).iter().all(|m| !m))
        .unwrap_or_default();
    push(HostKind::Other, other);
    out
}

impl OpSpace {
    /// The cells of the rules of `policies`. `default_host` is the example
    /// host when no pattern distinguishes hosts (the component name).
    pub fn build(policies: &[&Policy], default_host: &str) -> Result<OpSpace, DiffError> {
        let mut host_patterns: Vec<HostPattern> = Vec::new();
        let mut path_patterns: Vec<PathPattern> = Vec::new();
        for r in rules(policies) {
            for h in r.hosts.iter().flatten() {
                if !host_patterns.contains(h) {
                    host_patterns.push(h.clone());
                }
            }
            for p in r.paths.iter().flatten() {
                if !path_patterns.contains(p) {
                    path_patterns.push(p.clone());
                }
            }
        }
        Ok(OpSpace {
            methods: method_atoms(policies),
            hosts: host_atoms(&host_patterns, default_host),
            paths: path_atoms(&path_patterns)?,
            host_patterns,
            path_patterns,
        })
    }

    pub fn cells(&self) -> impl Iterator<Item = Cell> + '_ {
        (0..self.paths.len()).flat_map(move |p| {
            (0..self.hosts.len())
                .flat_map(move |h| (0..self.methods.len()).map(move |m| Cell { m, h, p }))
        })
    }

    pub fn cell_count(&self) -> usize {
        self.methods.len() * self.hosts.len() * self.paths.len()
    }

    /// The example operation of a cell: method, host, path.
    pub fn example(&self, c: Cell) -> (&str, &str, &str) {
        (
            self.methods.get(c.m).map_or("", |a| a.example.as_str()),
            self.hosts.get(c.h).map_or("", |a| a.example.as_str()),
            self.paths.get(c.p).map_or("", |a| a.example.as_str()),
        )
    }

    /// The cell of an operation (normalized host, canonical path); `None`
    /// would mean an atom is missing, which the property test checks never happens.
    pub fn locate(&self, method: &str, host: &str, path: &str) -> Option<Cell> {
        let m = self
            .methods
            .iter()
            .position(|a| a.method.as_deref() == Some(method))
            .or_else(|| self.methods.iter().position(|a| a.method.is_none()))?;
        let hm = host_member(&self.host_patterns, host);
        let h = self.hosts.iter().position(|a| a.member == hm)?;
        let pm = membership(&self.path_patterns, path);
        let p = self.paths.iter().position(|a| a.member == pm)?;
        Some(Cell { m, h, p })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn host_atoms_cover_named_hosts_subdomains_and_the_rest() {
        let pats: Vec<HostPattern> = [
            "api.example.com",
            "*.example.com",
            "*.eu.example.com",
            "x.example.com",
        ]
        .iter()
        .map(|h| HostPattern::parse(h).unwrap())
        .collect();
        let atoms = host_atoms(&pats, "orders");
        let kinds: Vec<&HostKind> = atoms.iter().map(|a| &a.kind).collect();
        assert_eq!(atoms.len(), 5, "{atoms:?}");
        assert!(kinds.contains(&&HostKind::Other));
        // x.example.com is named, so the example under *.example.com is another label.
        let under = atoms
            .iter()
            .find(|a| a.kind == HostKind::Under(".example.com".into()))
            .unwrap();
        assert_eq!(under.example, "y.example.com");
        for host in [
            "a.b.eu.example.com",
            "eu.example.com",
            "example.com",
            "api.example.com",
            "zz",
        ] {
            let m = host_member(&pats, host);
            assert!(atoms.iter().any(|a| a.member == m), "{host}");
        }
        assert_eq!(
            atoms
                .iter()
                .find(|a| a.kind == HostKind::Other)
                .unwrap()
                .example,
            "orders"
        );
    }
}
