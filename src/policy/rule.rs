//! Roles (who the caller must be) and rules (what they may do), compiled
//! from the plugin configuration with every problem reported.

use super::claims::ClaimTest;
use crate::config::{Effect, RoleConfig, RuleConfig};
use crate::error::{field, msg, Diagnostics, FieldPath, Problem};
use crate::pattern::hostname::{parse_method, HostPattern};
use crate::pattern::path::PathPattern;
use crate::pattern::spiffe::PrincipalPattern;
use std::collections::HashMap;

#[derive(Debug)]
pub struct Role {
    pub name: String,
    /// Any one pattern must match the peer. `None`: no mTLS condition.
    pub principals: Option<Vec<PrincipalPattern>>,
    pub jwt: Option<JwtRequirement>,
}

#[derive(Debug)]
pub struct JwtRequirement {
    /// Index into `Policy::providers`.
    pub provider: usize,
    pub claims: Vec<ClaimTest>,
}

/// Who a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subjects {
    /// `public: true` (allow) — no identity needed.
    Public,
    /// A `deny` rule without roles: everyone.
    Everyone,
    /// Holders of any of these roles (indices into `Policy::roles`).
    Roles(Vec<usize>),
}

#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub effect: Effect,
    pub subjects: Subjects,
    pub hosts: Option<Vec<HostPattern>>,
    pub methods: Option<Vec<String>>,
    pub paths: Option<Vec<PathPattern>>,
}

impl Rule {
    /// Whether the operation (method, normalized host, canonical path) is covered.
    pub fn covers(&self, method: &str, host: &str, path: &str) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|ms| ms.iter().any(|m| m == method))
            && self
                .hosts
                .as_ref()
                .is_none_or(|hs| hs.iter().any(|h| h.matches(host)))
            && self
                .paths
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|p| p.matches(path)))
    }
}

/// Role and rule names: 1 to 128 of letters, digits, `-_.:/`.
pub fn check_name(d: &mut Diagnostics, name: &str, path: FieldPath) -> bool {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'));
    if !ok {
        d.invalid(
            path,
            format!("'{name}': 1 to 128 of letters, digits, '-', '_', '.', ':', '/'"),
        );
    }
    ok
}

/// What a role may refer to: the providers by name, and the local trust
/// domains principal patterns are relative to.
pub struct RoleScope<'a> {
    pub providers: &'a HashMap<&'a str, usize>,
    /// Provider names in configuration order, for messages.
    pub provider_names: &'a [String],
    pub local_domains: &'a [String],
}

/// Compile role `r` at `path`. `None` if it has errors.
pub fn compile_role(
    d: &mut Diagnostics,
    r: &RoleConfig,
    path: &FieldPath,
    scope: &RoleScope<'_>,
) -> Option<Role> {
    let errors = d.error_count();
    check_name(d, &r.name, path.field("name"));
    if r.principals.is_none() && r.jwt.is_none() {
        d.invalid(
            path.clone(),
            msg!(
                format!("role '{}' has no conditions; give it '", r.name),
                field("principals"),
                "' (mTLS workloads), '",
                field("jwt"),
                "' (token claims) or both"
            ),
        );
    }
    let principals = r.principals.as_ref().map(|list| {
        if list.is_empty() {
            d.invalid(
                path.field("principals"),
                msg!(
                    "must not be empty; leave '",
                    field("principals"),
                    "' out if the role needs only a token"
                ),
            );
        }
        list.iter()
            .enumerate()
            .filter_map(
                |(j, p)| match PrincipalPattern::parse(p, scope.local_domains) {
                    Ok(pat) => Some(pat),
                    Err(e) => {
                        d.invalid(path.field("principals").index(j), e);
                        None
                    }
                },
            )
            .collect::<Vec<_>>()
    });
    let jwt = r.jwt.as_ref().and_then(|j| {
        let jpath = path.field("jwt");
        let provider = scope.providers.get(j.provider.as_str()).copied();
        if provider.is_none() {
            d.error(
                jpath.field("provider"),
                Problem::Undefined {
                    kind: "provider",
                    name: j.provider.clone(),
                    known: scope.provider_names.to_vec(),
                },
            );
        }
        let claims: Vec<ClaimTest> = j
            .claims
            .iter()
            .enumerate()
            .filter_map(|(k, c)| ClaimTest::compile(c, &jpath.field("claims").index(k), d))
            .collect();
        Some(JwtRequirement {
            provider: provider?,
            claims,
        })
    });
    if d.error_count() > errors {
        return None;
    }
    Some(Role {
        name: r.name.clone(),
        principals,
        jwt,
    })
}

/// Parse each item of an optional list; an empty list is an error (absent
/// means "any").
fn compile_list<T>(
    d: &mut Diagnostics,
    list: Option<&[String]>,
    path: FieldPath,
    name: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<Vec<T>> {
    let items = list?;
    if items.is_empty() {
        d.invalid(
            path.clone(),
            msg!(
                "must not be empty; leave '",
                field(name),
                "' out to match any"
            ),
        );
    }
    Some(
        items
            .iter()
            .enumerate()
            .filter_map(|(j, s)| match parse(s) {
                Ok(v) => Some(v),
                Err(e) => {
                    d.invalid(path.index(j), e);
                    None
                }
            })
            .collect(),
    )
}

/// Who rule `r` applies to, from its effect, `public` and resolved roles.
fn subjects(
    d: &mut Diagnostics,
    r: &RuleConfig,
    path: &FieldPath,
    roles: Option<Vec<usize>>,
) -> Option<Subjects> {
    let problem = match (r.effect, r.public, roles) {
        (Effect::Allow, true, None) => return Some(Subjects::Public),
        (Effect::Allow | Effect::Deny, false, Some(rs)) => return Some(Subjects::Roles(rs)),
        (Effect::Deny, false, None) => return Some(Subjects::Everyone),
        (Effect::Allow, true, Some(_)) => msg!(
            "'",
            field("public"),
            "' and '",
            field("roles"),
            "' exclude each other: a public rule needs no role"
        ),
        (Effect::Allow, false, None) => msg!(
            format!("allow rule '{}' says neither who may call ('", r.name),
            field("roles"),
            "') nor '",
            field("public"),
            ": true'"
        ),
        (Effect::Deny, true, _) => msg!(
            "'",
            field("public"),
            "' only applies to allow rules; a deny rule without '",
            field("roles"),
            "' applies to everyone"
        ),
    };
    d.invalid(path.clone(), problem);
    None
}

/// Compile rule `r` at `path`; `roles` maps role names to their indices.
/// `None` if it has errors.
pub fn compile_rule(
    d: &mut Diagnostics,
    r: &RuleConfig,
    path: &FieldPath,
    roles: &HashMap<&str, usize>,
) -> Option<Rule> {
    let errors = d.error_count();
    check_name(d, &r.name, path.field("name"));
    let resolved = r.roles.as_ref().map(|list| {
        if list.is_empty() {
            d.invalid(
                path.field("roles"),
                msg!(
                    "must not be empty; leave '",
                    field("roles"),
                    "' out of a deny rule to deny everyone"
                ),
            );
        }
        list.iter()
            .enumerate()
            .filter_map(|(j, name)| {
                let found = roles.get(name.as_str()).copied();
                if found.is_none() {
                    let mut known: Vec<&str> = roles.keys().copied().collect();
                    known.sort_unstable();
                    let known = if known.is_empty() {
                        "no roles are defined".to_string()
                    } else {
                        format!("defined: {}", known.join(", "))
                    };
                    d.invalid(
                        path.field("roles").index(j),
                        format!(
                            "rule '{}' names role '{name}', which is not defined ({known})",
                            r.name
                        ),
                    );
                }
                found
            })
            .collect::<Vec<_>>()
    });
    let subjects = subjects(d, r, path, resolved);
    let hosts = compile_list(
        d,
        r.hosts.as_deref(),
        path.field("hosts"),
        "hosts",
        HostPattern::parse,
    );
    let methods = compile_list(
        d,
        r.methods.as_deref(),
        path.field("methods"),
        "methods",
        parse_method,
    );
    let paths = compile_list(
        d,
        r.paths.as_deref(),
        path.field("paths"),
        "paths",
        PathPattern::parse,
    );
    if d.error_count() > errors {
        return None;
    }
    Some(Rule {
        name: r.name.clone(),
        effect: r.effect,
        subjects: subjects?,
        hosts,
        methods,
        paths,
    })
}
