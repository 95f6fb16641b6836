//! The compiled policy: everything in the plugin config checked, resolved and
//! turned into matchers once, at `on_configure`, so that a request only runs
//! comparisons. A `Policy` value is proof that the configuration was valid.
//!
//! This is the one validator: [`Policy::check`] reports every error and
//! warning with its field path, in one pass. The filter refuses a
//! configuration with errors; `oam-authz` maps the same diagnostics onto
//! the OAM document instead of checking anything twice.

pub mod claims;
pub mod forward;
pub mod index;
pub mod provider;
pub mod rule;
pub mod sources;

use crate::config::{
    Mode, PeerIdentitySource, PluginConfig, SignatureBackendMode, TokenSource, SCHEMA_VERSION,
};
use crate::error::{Diagnostic, Diagnostics, FieldPath, Problem};
use crate::keys::manager::SourceSpec;
use crate::pattern::path::PathOptions;
use crate::pattern::spiffe::valid_trust_domain;
use forward::Forward;
use index::RuleIndex;
use provider::Provider;
use rule::{compile_role, compile_rule, RoleScope};
use std::collections::{BTreeSet, HashMap};

pub use rule::{Role, Rule, Subjects};

/// Plugin configs larger than this are refused before parsing.
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct Policy {
    pub version: String,
    pub mode: Mode,
    /// The local trust domain first, then its aliases.
    pub local_domains: Vec<String>,
    pub providers: Vec<Provider>,
    pub roles: Vec<Role>,
    pub rules: Vec<Rule>,
    pub forward: Forward,
    /// Every header we emit plus the operator's extra list: stripped on every request.
    pub strip_headers: Vec<String>,
    /// Distinct token locations, each with the providers that read it.
    pub token_sources: Vec<(TokenSource, Vec<usize>)>,
    /// Path index over `rules`.
    pub index: RuleIndex,
    pub signature_backend: SignatureBackendMode,
    /// Whose identity counts: the connection's certificate or the waypoint's
    /// filter state (`peer.rs`).
    pub peer_identity: PeerIdentitySource,
    /// How request paths are checked (docs/policy.md "How a decision is made").
    pub path_options: PathOptions,
    /// Warnings found while compiling (the policy loads with them).
    pub warnings: Vec<Diagnostic>,
}

impl Policy {
    /// Parse and compile the plugin configuration text.
    pub fn from_json(text: &str) -> Result<Policy, Diagnostics> {
        if text.len() > MAX_CONFIG_BYTES {
            return Err(Diagnostic::invalid(
                FieldPath::root(),
                format!("configuration is larger than {MAX_CONFIG_BYTES} bytes"),
            )
            .into());
        }
        let cfg = parse_config(text)?;
        let mut policy = Policy::compile(&cfg)?;
        if cfg.policy_version.is_none() {
            policy.version = format!("cfg-{:016x}", fnv1a64(text.as_bytes()));
        }
        Ok(policy)
    }

    /// Compile, or refuse with every error (warnings are kept in the policy).
    pub fn compile(cfg: &PluginConfig) -> Result<Policy, Diagnostics> {
        let (policy, d) = Policy::check(cfg);
        match policy {
            Some(mut p) => {
                p.warnings = d.into_vec();
                Ok(p)
            }
            None => Err(d.only_errors()),
        }
    }

    /// Every diagnostic of `cfg`, and the policy if there are no errors.
    pub fn check(cfg: &PluginConfig) -> (Option<Policy>, Diagnostics) {
        let mut d = Diagnostics::new();
        let policy = compile_all(&mut d, cfg);
        (policy.filter(|_| !d.has_errors()), d)
    }

    /// The rules covering an operation, in policy order (index-narrowed,
    /// then fully checked).
    pub fn covering_rules<'a>(
        &'a self,
        method: &'a str,
        host: &'a str,
        path: &'a str,
    ) -> impl Iterator<Item = (usize, &'a Rule)> + 'a {
        self.index
            .candidates(path)
            .into_iter()
            .filter_map(move |i| {
                let i = i as usize;
                self.rules
                    .get(i)
                    .filter(|r| r.covers(method, host, path))
                    .map(|r| (i, r))
            })
    }

    pub fn role_index(&self, name: &str) -> Option<usize> {
        self.roles.iter().position(|r| r.name == name)
    }

    /// The providers whose keys are fetched at run time, for the key manager.
    pub fn remote_sources(&self) -> impl Iterator<Item = SourceSpec<'_>> {
        self.providers.iter().enumerate().filter_map(|(index, p)| {
            p.remote().map(|remote| SourceSpec {
                index,
                name: p.name(),
                issuer: p.issuer(),
                algorithms: p.algorithms(),
                remote,
            })
        })
    }

    /// Names of roles given by index (as in `Decision::roles`).
    pub fn role_names(&self, roles: &[usize]) -> Vec<&str> {
        roles
            .iter()
            .filter_map(|i| self.roles.get(*i).map(|r| r.name.as_str()))
            .collect()
    }

    /// Name of a rule given by index (as in `Decision::rule`).
    pub fn rule_name(&self, rule: Option<usize>) -> Option<&str> {
        rule.and_then(|i| self.rules.get(i))
            .map(|r| r.name.as_str())
    }
}

fn check_version(d: &mut Diagnostics, cfg: &PluginConfig) -> String {
    if cfg.schema_version != SCHEMA_VERSION {
        d.error(
            FieldPath::root().field("schema_version"),
            Problem::UnsupportedSchemaVersion {
                found: cfg.schema_version,
                supported: SCHEMA_VERSION,
            },
        );
    }
    match &cfg.policy_version {
        Some(v) if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) => {
            d.invalid(
                FieldPath::root().field("policy_version"),
                "must be 1 to 128 printable characters",
            );
            String::new()
        }
        Some(v) => v.clone(),
        None => "unversioned".to_string(),
    }
}

/// The local trust domain, then its aliases.
fn local_domains(d: &mut Diagnostics, cfg: &PluginConfig) -> Vec<String> {
    let mut domains = vec![cfg.trust_domain.clone()];
    if !valid_trust_domain(&cfg.trust_domain) {
        d.invalid(
            FieldPath::root().field("trust_domain"),
            format!(
                "'{}': lowercase letters, digits, '.', '-' or '_' only (Istio's meshConfig.trustDomain)",
                cfg.trust_domain
            ),
        );
    }
    for (i, a) in cfg.trust_domain_aliases.iter().enumerate() {
        let path = FieldPath::root().field("trust_domain_aliases").index(i);
        if !valid_trust_domain(a) {
            d.invalid(
                path,
                format!("'{a}': lowercase letters, digits, '.', '-' or '_' only"),
            );
        } else if domains.contains(a) {
            d.error(path, Problem::duplicate(a));
        } else {
            domains.push(a.clone());
        }
    }
    domains
}

/// Providers by name; `None` in place of one with errors.
fn compile_providers(d: &mut Diagnostics, cfg: &PluginConfig) -> Vec<Option<Provider>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, p) in cfg.providers.iter().enumerate() {
        let path = FieldPath::root().field("providers").index(i);
        if !seen.insert(p.name.as_str()) {
            d.error(
                path.field("name"),
                Problem::Duplicate {
                    kind: "provider",
                    name: p.name.clone(),
                },
            );
        }
        if cfg.providers.iter().take(i).any(|q| q.issuer == p.issuer) {
            d.invalid(
                path.field("issuer"),
                format!("issuer '{}' is used by another provider; tokens are routed by issuer, so each provider needs its own", p.issuer),
            );
        }
        out.push(Provider::compile(p, &path, d));
    }
    out
}

fn compile_roles(
    d: &mut Diagnostics,
    cfg: &PluginConfig,
    scope: &RoleScope<'_>,
) -> Vec<Option<rule::Role>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, r) in cfg.roles.iter().enumerate() {
        let path = FieldPath::root().field("roles").index(i);
        if !seen.insert(r.name.as_str()) {
            d.error(
                path.field("name"),
                Problem::Duplicate {
                    kind: "role",
                    name: r.name.clone(),
                },
            );
        }
        out.push(compile_role(d, r, &path, scope));
    }
    out
}

fn compile_rules(
    d: &mut Diagnostics,
    cfg: &PluginConfig,
    role_index: &HashMap<&str, usize>,
) -> Vec<Option<Rule>> {
    if cfg.rules.is_empty() {
        d.invalid(
            FieldPath::root().field("rules"),
            "must not be empty: with no rules every request would be denied; say so with an explicit deny rule",
        );
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, r) in cfg.rules.iter().enumerate() {
        let path = FieldPath::root().field("rules").index(i);
        if !seen.insert(r.name.as_str()) {
            d.error(
                path.field("name"),
                Problem::Duplicate {
                    kind: "rule",
                    name: r.name.clone(),
                },
            );
        }
        out.push(compile_rule(d, r, &path, role_index));
    }
    out
}

/// A role no rule names is dead weight, and usually a typo in a rule.
fn warn_unused_roles(d: &mut Diagnostics, cfg: &PluginConfig) {
    for (i, r) in cfg.roles.iter().enumerate() {
        let used = cfg
            .rules
            .iter()
            .any(|rule| rule.roles.iter().flatten().any(|n| *n == r.name));
        if !used {
            d.warning(
                FieldPath::root().field("roles").index(i),
                Problem::invalid(format!("role '{}' is defined but no rule uses it", r.name)),
            );
        }
    }
}

/// Distinct token locations, each with the providers that read it.
fn token_sources(providers: &[Provider]) -> Vec<(TokenSource, Vec<usize>)> {
    let mut out: Vec<(TokenSource, Vec<usize>)> = Vec::new();
    for (i, p) in providers.iter().enumerate() {
        for s in p.sources() {
            match out.iter_mut().find(|(t, _)| t == s) {
                Some((_, v)) => v.push(i),
                None => out.push((s.clone(), vec![i])),
            }
        }
    }
    out
}

/// The parts of `cfg` that do not depend on its rules (trust domains,
/// providers, roles), checked as [`Policy::check`] checks them. For
/// settings shared by several policies, such as an OAM `mesh-identity`
/// policy, so that parts no rule uses are checked too.
#[cfg(not(target_arch = "wasm32"))]
pub fn check_identity(cfg: &PluginConfig) -> Diagnostics {
    let mut d = Diagnostics::new();
    let local_domains = local_domains(&mut d, cfg);
    compile_providers(&mut d, cfg);
    let (provider_index, provider_names) = provider_names(cfg);
    let scope = RoleScope {
        providers: &provider_index,
        provider_names: &provider_names,
        local_domains: &local_domains,
    };
    compile_roles(&mut d, cfg, &scope);
    d
}

/// Providers by name (those with errors included: a role naming one is not
/// reported again), and the names in configuration order.
fn provider_names(cfg: &PluginConfig) -> (HashMap<&str, usize>, Vec<String>) {
    let index = cfg
        .providers
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    (
        index,
        cfg.providers.iter().map(|p| p.name.clone()).collect(),
    )
}

/// Check every part, then assemble the policy if nothing was refused.
fn compile_all(d: &mut Diagnostics, cfg: &PluginConfig) -> Option<Policy> {
    let version = check_version(d, cfg);
    let local_domains = local_domains(d, cfg);
    let providers = compile_providers(d, cfg);
    let (provider_index, provider_names) = provider_names(cfg);
    let scope = RoleScope {
        providers: &provider_index,
        provider_names: &provider_names,
        local_domains: &local_domains,
    };
    let roles = compile_roles(d, cfg, &scope);
    let role_index: HashMap<&str, usize> = cfg
        .roles
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    let rules = compile_rules(d, cfg, &role_index);
    warn_unused_roles(d, cfg);
    let (forward, strip_headers) = forward::compile(d, cfg.forward.as_ref());
    if d.has_errors() {
        return None;
    }
    let providers: Vec<Provider> = providers.into_iter().collect::<Option<_>>()?;
    let roles: Vec<Role> = roles.into_iter().collect::<Option<_>>()?;
    let rules: Vec<Rule> = rules.into_iter().collect::<Option<_>>()?;
    let index = RuleIndex::build(&rules);
    Some(Policy {
        version,
        mode: cfg.mode,
        local_domains,
        token_sources: token_sources(&providers),
        providers,
        roles,
        rules,
        forward,
        strip_headers,
        index,
        signature_backend: cfg.signature_backend,
        peer_identity: cfg.peer_identity,
        path_options: PathOptions {
            allow_encoded_percent: cfg.allow_encoded_percent,
        },
        warnings: Vec::new(),
    })
}

/// Strict parse of the configuration text (see `config::parse`).
pub fn parse_config(text: &str) -> Result<PluginConfig, Diagnostics> {
    crate::config::parse(text)
}

/// FNV-1a: a stable, dependency-free fingerprint of the config text. Not a
/// security boundary, only a label for audit events.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
