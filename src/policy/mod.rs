//! The compiled policy: everything in the plugin config checked, resolved and
//! turned into matchers once, at `on_configure`, so that a request only runs
//! comparisons. A `Policy` value is proof that the configuration was valid.

use crate::config::{
    Effect, ForwardConfig, Mode, PluginConfig, RuleConfig, SignatureBackendMode, TokenSource,
    SCHEMA_VERSION,
};
use crate::error::{ConfigError, Problem};
use crate::keys::manager::SourceSpec;
use crate::pattern::hostname::{parse_method, HostPattern};
use crate::pattern::path::PathPattern;
use crate::pattern::spiffe::{valid_trust_domain, PrincipalPattern};
use crate::policy::claims::ClaimTest;
use crate::policy::index::RuleIndex;
use crate::policy::provider::Provider;
use std::collections::{BTreeSet, HashMap};

pub mod claims;
pub mod index;
pub mod provider;

/// Plugin configs larger than this are refused before parsing.
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug)]
pub struct Role {
    pub name: String,
    /// Any one pattern must match the peer. `None`: no mTLS condition.
    pub principals: Option<Vec<PrincipalPattern>>,
    pub jwt: Option<JwtRequirement>,
}

#[derive(Debug)]
pub struct JwtRequirement {
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

/// Headers set upstream on allowed requests, all lowercase.
#[derive(Debug, Default)]
pub struct Forward {
    pub principal_header: Option<String>,
    pub subject_header: Option<String>,
    pub issuer_header: Option<String>,
    pub roles_header: Option<String>,
    pub claim_headers: Vec<(String, String)>,
}

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
}

impl Policy {
    /// Parse and compile the plugin configuration text.
    pub fn from_json(text: &str) -> Result<Policy, ConfigError> {
        if text.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::invalid(
                "",
                format!("configuration is larger than {MAX_CONFIG_BYTES} bytes"),
            ));
        }
        let cfg = parse_config(text)?;
        let mut policy = Policy::compile(&cfg)?;
        if cfg.policy_version.is_none() {
            policy.version = format!("cfg-{:016x}", fnv1a64(text.as_bytes()));
        }
        Ok(policy)
    }

    pub fn compile(cfg: &PluginConfig) -> Result<Policy, ConfigError> {
        if cfg.schema_version != SCHEMA_VERSION {
            return Err(ConfigError::new(
                "schema_version",
                Problem::UnsupportedSchemaVersion {
                    found: cfg.schema_version,
                    supported: SCHEMA_VERSION,
                },
            ));
        }
        let version = match &cfg.policy_version {
            Some(v) if v.is_empty() || v.len() > 128 || v.chars().any(char::is_control) => {
                return Err(ConfigError::invalid(
                    "policy_version",
                    "must be 1 to 128 printable characters",
                ))
            }
            Some(v) => v.clone(),
            None => "unversioned".to_string(),
        };

        let mut local_domains = Vec::new();
        if !valid_trust_domain(&cfg.trust_domain) {
            return Err(ConfigError::invalid(
                "trust_domain",
                format!(
                    "'{}': lowercase letters, digits, '.', '-' or '_' only",
                    cfg.trust_domain
                ),
            ));
        }
        local_domains.push(cfg.trust_domain.clone());
        for (i, a) in cfg.trust_domain_aliases.iter().enumerate() {
            let path = format!("trust_domain_aliases[{i}]");
            if !valid_trust_domain(a) {
                return Err(ConfigError::invalid(
                    path,
                    format!("'{a}': lowercase letters, digits, '.', '-' or '_' only"),
                ));
            }
            if local_domains.contains(a) {
                return Err(ConfigError::new(path, Problem::Duplicate(a.clone())));
            }
            local_domains.push(a.clone());
        }

        let mut providers = Vec::new();
        let mut provider_index = HashMap::new();
        for (i, p) in cfg.providers.iter().enumerate() {
            let path = format!("providers[{i}]");
            if provider_index.insert(p.name.clone(), i).is_some() {
                return Err(ConfigError::new(
                    format!("{path}.name"),
                    Problem::Duplicate(p.name.clone()),
                ));
            }
            if cfg.providers.iter().take(i).any(|q| q.issuer == p.issuer) {
                return Err(ConfigError::invalid(
                    format!("{path}.issuer"),
                    format!("issuer '{}' is used by another provider; tokens are routed by issuer, so each provider needs its own", p.issuer),
                ));
            }
            providers.push(Provider::compile(p, &path)?);
        }

        let mut roles = Vec::new();
        let mut role_index = HashMap::new();
        for (i, r) in cfg.roles.iter().enumerate() {
            let path = format!("roles[{i}]");
            check_name(&r.name, &format!("{path}.name"))?;
            if role_index.insert(r.name.clone(), i).is_some() {
                return Err(ConfigError::new(
                    format!("{path}.name"),
                    Problem::Duplicate(r.name.clone()),
                ));
            }
            if r.principals.is_none() && r.jwt.is_none() {
                return Err(ConfigError::invalid(
                    path,
                    format!(
                        "role '{}' has no conditions; give it 'principals', 'jwt' or both",
                        r.name
                    ),
                ));
            }
            let principals = match &r.principals {
                None => None,
                Some(list) if list.is_empty() => {
                    return Err(ConfigError::new(
                        format!("{path}.principals"),
                        Problem::Empty,
                    ))
                }
                Some(list) => Some(
                    list.iter()
                        .enumerate()
                        .map(|(j, p)| {
                            PrincipalPattern::parse(p, &local_domains).map_err(|e| {
                                ConfigError::invalid(format!("{path}.principals[{j}]"), e)
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            let jwt = match &r.jwt {
                None => None,
                Some(j) => {
                    let provider = *provider_index.get(&j.provider).ok_or_else(|| {
                        ConfigError::new(
                            format!("{path}.jwt.provider"),
                            Problem::Undefined {
                                kind: "provider",
                                name: j.provider.clone(),
                            },
                        )
                    })?;
                    let claims = j
                        .claims
                        .iter()
                        .enumerate()
                        .map(|(k, c)| ClaimTest::compile(c, &format!("{path}.jwt.claims[{k}]")))
                        .collect::<Result<Vec<_>, _>>()?;
                    Some(JwtRequirement { provider, claims })
                }
            };
            roles.push(Role {
                name: r.name.clone(),
                principals,
                jwt,
            });
        }

        if cfg.rules.is_empty() {
            return Err(ConfigError::invalid(
                "rules",
                "must not be empty: with no rules every request would be denied",
            ));
        }
        let mut rules = Vec::new();
        let mut rule_names = BTreeSet::new();
        for (i, r) in cfg.rules.iter().enumerate() {
            rules.push(compile_rule(
                r,
                &format!("rules[{i}]"),
                &role_index,
                &mut rule_names,
            )?);
        }

        let (forward, strip_headers) = compile_forward(cfg.forward.as_ref())?;

        let mut token_sources: Vec<(TokenSource, Vec<usize>)> = Vec::new();
        for (i, p) in providers.iter().enumerate() {
            for s in p.sources() {
                match token_sources.iter_mut().find(|(t, _)| t == s) {
                    Some((_, v)) => v.push(i),
                    None => token_sources.push((s.clone(), vec![i])),
                }
            }
        }

        let index = RuleIndex::build(&rules);
        Ok(Policy {
            version,
            mode: cfg.mode,
            local_domains,
            providers,
            roles,
            rules,
            forward,
            strip_headers,
            token_sources,
            index,
            signature_backend: cfg.signature_backend,
        })
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

/// Strict JSON parse with the serde error turned into a field-path message.
pub fn parse_config(text: &str) -> Result<PluginConfig, ConfigError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigError::new(path, Problem::Syntax(e.into_inner().to_string()))
    })
}

fn check_name(name: &str, path: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            path,
            format!("'{name}': 1 to 128 of letters, digits, '-', '_', '.', ':', '/'"),
        ))
    }
}

fn compile_rule(
    r: &RuleConfig,
    path: &str,
    role_index: &HashMap<String, usize>,
    names: &mut BTreeSet<String>,
) -> Result<Rule, ConfigError> {
    check_name(&r.name, &format!("{path}.name"))?;
    if !names.insert(r.name.clone()) {
        return Err(ConfigError::new(
            format!("{path}.name"),
            Problem::Duplicate(r.name.clone()),
        ));
    }
    let roles = match &r.roles {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(ConfigError::new(format!("{path}.roles"), Problem::Empty))
        }
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(j, name)| {
                    role_index.get(name).copied().ok_or_else(|| {
                        ConfigError::new(
                            format!("{path}.roles[{j}]"),
                            Problem::Undefined {
                                kind: "role",
                                name: name.clone(),
                            },
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let subjects = match (r.effect, r.public, roles) {
        (Effect::Allow, true, None) => Subjects::Public,
        (Effect::Allow, true, Some(_)) => {
            return Err(ConfigError::invalid(path, "'public' and 'roles' exclude each other: a public rule needs no role"))
        }
        (Effect::Allow, false, None) => {
            return Err(ConfigError::invalid(
                path,
                "an allow rule needs 'roles' (who may call) or 'public: true' (anyone, no identity needed)",
            ))
        }
        (Effect::Allow, false, Some(rs)) | (Effect::Deny, false, Some(rs)) => Subjects::Roles(rs),
        (Effect::Deny, false, None) => Subjects::Everyone,
        (Effect::Deny, true, _) => {
            return Err(ConfigError::invalid(path, "'public' only applies to allow rules; a deny rule without 'roles' applies to everyone"))
        }
    };
    let hosts = compile_list(
        r.hosts.as_deref(),
        &format!("{path}.hosts"),
        HostPattern::parse,
    )?;
    let methods = compile_list(
        r.methods.as_deref(),
        &format!("{path}.methods"),
        parse_method,
    )?;
    let paths = compile_list(
        r.paths.as_deref(),
        &format!("{path}.paths"),
        PathPattern::parse,
    )?;
    Ok(Rule {
        name: r.name.clone(),
        effect: r.effect,
        subjects,
        hosts,
        methods,
        paths,
    })
}

fn compile_list<T>(
    list: Option<&[String]>,
    path: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<Vec<T>>, ConfigError> {
    match list {
        None => Ok(None),
        Some([]) => Err(ConfigError::invalid(
            path,
            "must not be empty; leave the field out to match any",
        )),
        Some(items) => items
            .iter()
            .enumerate()
            .map(|(j, s)| parse(s).map_err(|e| ConfigError::invalid(format!("{path}[{j}]"), e)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
    }
}

/// Header names we may set or strip: lowercase RFC 9110 tokens, and never one
/// that Envoy or HTTP semantics depend on.
fn check_header_name(name: &str, path: &str) -> Result<String, ConfigError> {
    const RESERVED: &[&str] = &[
        "host",
        "authorization",
        "cookie",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "te",
        "upgrade",
        "x-request-id",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-envoy-original-path",
        "proxy-authorization",
    ];
    let lower = name.to_ascii_lowercase();
    let token = !lower.is_empty()
        && lower.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    if !token {
        return Err(ConfigError::invalid(
            path,
            format!("'{name}': a header name of letters, digits, '-', '_', '.'"),
        ));
    }
    if RESERVED.contains(&lower.as_str()) {
        return Err(ConfigError::invalid(
            path,
            format!("'{name}' is a reserved header and cannot carry identity"),
        ));
    }
    Ok(lower)
}

fn compile_forward(cfg: Option<&ForwardConfig>) -> Result<(Forward, Vec<String>), ConfigError> {
    let Some(cfg) = cfg else {
        return Ok((Forward::default(), Vec::new()));
    };
    let mut strip: Vec<String> = Vec::new();
    let one = |name: &Option<String>,
               field: &str,
               strip: &mut Vec<String>|
     -> Result<Option<String>, ConfigError> {
        match name {
            None => Ok(None),
            Some(n) => {
                let path = format!("forward.{field}");
                let h = check_header_name(n, &path)?;
                if strip.contains(&h) {
                    return Err(ConfigError::new(path, Problem::Duplicate(h)));
                }
                strip.push(h.clone());
                Ok(Some(h))
            }
        }
    };
    let principal_header = one(&cfg.principal_header, "principal_header", &mut strip)?;
    let subject_header = one(&cfg.subject_header, "subject_header", &mut strip)?;
    let issuer_header = one(&cfg.issuer_header, "issuer_header", &mut strip)?;
    let roles_header = one(&cfg.roles_header, "roles_header", &mut strip)?;
    let mut claim_headers = Vec::new();
    for (h, claim) in &cfg.claim_headers {
        let path = format!("forward.claim_headers.{h}");
        let name =
            one(&Some(h.clone()), &format!("claim_headers.{h}"), &mut strip)?.unwrap_or_default();
        if claim.is_empty() || claim.split('.').any(str::is_empty) {
            return Err(ConfigError::invalid(
                path,
                format!("'{claim}': a dotted claim path such as 'email' or 'realm_access.roles'"),
            ));
        }
        claim_headers.push((name, claim.clone()));
    }
    for (i, h) in cfg.strip_headers.iter().enumerate() {
        let path = format!("forward.strip_headers[{i}]");
        let h = check_header_name(h, &path)?;
        if !strip.contains(&h) {
            strip.push(h);
        }
    }
    Ok((
        Forward {
            principal_header,
            subject_header,
            issuer_header,
            roles_header,
            claim_headers,
        },
        strip,
    ))
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
