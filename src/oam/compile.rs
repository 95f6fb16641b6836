//! OAM application -> one plugin configuration per protected component.
//!
//! Every check reports the OAM field path (`spec.components[1].traits[0]
//! .properties.rules[2].paths[0]`), not the path in the generated config.
//! After our own checks, the generated configuration is compiled with the
//! engine (`Policy::compile`), exactly as the filter will at load time; an
//! engine error is translated back to the OAM path, so nothing the filter
//! would refuse can pass `validate`.

use super::analyze;
use super::finding::{Finding, Scope};
use super::load::{AccessTrait, Application, Component};
use super::lower::{is_component_ref, PathMap};
use super::model::{
    AccessRole, AccessRule, ClaimMatch, Forward, MeshIdentity, ProviderSpec, RemoteJwks,
};
use crate::config::{
    ClaimCondition, Effect, ForwardConfig, JwtCondition, Mode, PluginConfig, ProviderConfig,
    RemoteJwksConfig, RoleConfig, RuleConfig, SCHEMA_VERSION,
};
use crate::error::ConfigError;
use crate::pattern::hostname::{parse_method, HostPattern};
use crate::pattern::path::PathPattern;
use crate::pattern::spiffe::{valid_trust_domain, PrincipalPattern};
use crate::policy::claims::ClaimTest;
use crate::policy::provider::Provider;
use crate::policy::provider::{DEFAULT_MAX_LIFETIME, MAX_CLOCK_SKEW};
use crate::policy::Policy;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// Default trust domain of an Istio mesh.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

#[derive(Debug, Clone)]
pub struct Options {
    /// Longest `maxLifetimeSeconds` a provider may allow (org policy).
    pub max_token_lifetime: u64,
    /// Override every component's mode (rollout: audit first).
    pub mode: Option<Mode>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_token_lifetime: DEFAULT_MAX_LIFETIME,
            mode: None,
        }
    }
}

#[derive(Debug)]
pub struct CompiledComponent {
    pub component: String,
    pub namespace: String,
    pub config: PluginConfig,
    pub policy: Policy,
    pub paths: PathMap,
}

/// The identity in effect for one component.
struct IdentityCtx<'a> {
    scope: Scope,
    path: String,
    spec: &'a MeshIdentity,
}

/// Compile every protected component. Components with errors are left out
/// of the result; all findings (errors and warnings) are returned, deduplicated.
pub fn compile_app(app: &Application, opts: &Options) -> (Vec<CompiledComponent>, Vec<Finding>) {
    let mut findings = Vec::new();
    let default_identity = MeshIdentity::default();
    let app_identity = match &app.identity {
        Some(p) => IdentityCtx {
            scope: Scope::Policy(p.name.clone()),
            path: p.path.clone(),
            spec: &p.spec,
        },
        None => IdentityCtx {
            scope: Scope::Application(app.name.clone()),
            path: "spec.policies".into(),
            spec: &default_identity,
        },
    };
    let app_identity_ok = check_identity(app, &app_identity, opts, &mut findings);

    let mut out = Vec::new();
    if app.identity_invalid {
        return (out, findings);
    }
    for comp in &app.components {
        let Some(access) = &comp.access else { continue };
        let scope = Scope::Component(comp.name.clone());
        let (ctx, identity_ok) = match &access.spec.identity {
            Some(id) => {
                if let Some(p) = &app.identity {
                    findings.push(Finding::warning(
                        scope.clone(),
                        format!("{}.identity", access.path),
                        format!(
                            "this component's own identity settings replace the application's mesh-identity policy '{}' for it",
                            p.name
                        ),
                    ));
                }
                let ctx = IdentityCtx {
                    scope: scope.clone(),
                    path: format!("{}.identity", access.path),
                    spec: id,
                };
                let ok = check_identity(app, &ctx, opts, &mut findings);
                (ctx, ok)
            }
            None => (
                IdentityCtx {
                    scope: app_identity.scope.clone(),
                    path: app_identity.path.clone(),
                    spec: app_identity.spec,
                },
                app_identity_ok,
            ),
        };
        if let Some(c) =
            compile_component(app, comp, access, &ctx, identity_ok, opts, &mut findings)
        {
            out.push(c);
        }
    }
    if !app
        .components
        .iter()
        .any(|c| c.access.is_some() || c.access_invalid)
    {
        findings.push(Finding::warning(
            Scope::Application(app.name.clone()),
            "spec.components",
            "no component has a mesh-access trait: nothing to protect, nothing is generated",
        ));
    }
    let mut seen = BTreeSet::new();
    findings.retain(|f| seen.insert(f.clone()));
    (out, findings)
}

fn local_domains(id: &MeshIdentity) -> Vec<String> {
    let mut v = vec![id
        .trust_domain
        .clone()
        .unwrap_or_else(|| DEFAULT_TRUST_DOMAIN.into())];
    v.extend(id.trust_domain_aliases.iter().cloned());
    v
}

/// Check the identity settings once (providers, trust domain, shared
/// roles). Returns whether they are free of errors.
fn check_identity(
    app: &Application,
    ctx: &IdentityCtx<'_>,
    opts: &Options,
    findings: &mut Vec<Finding>,
) -> bool {
    let before = findings.iter().filter(|f| f.is_error()).count();
    let err = |findings: &mut Vec<Finding>, path: String, msg: String| {
        findings.push(Finding::error(ctx.scope.clone(), path, msg));
    };
    let id = ctx.spec;
    if let Some(td) = &id.trust_domain {
        if !valid_trust_domain(td) {
            err(
                findings,
                format!("{}.trustDomain", ctx.path),
                format!("'{td}': lowercase letters, digits, '.', '-' or '_' only (Istio's meshConfig.trustDomain)"),
            );
        }
    }
    for (i, a) in id.trust_domain_aliases.iter().enumerate() {
        if !valid_trust_domain(a) {
            err(
                findings,
                format!("{}.trustDomainAliases[{i}]", ctx.path),
                format!("'{a}': lowercase letters, digits, '.', '-' or '_' only"),
            );
        }
    }
    let mut names = BTreeSet::new();
    for (i, p) in id.providers.iter().enumerate() {
        let ppath = format!("{}.providers[{i}]", ctx.path);
        if !names.insert(p.name.clone()) {
            err(
                findings,
                format!("{ppath}.name"),
                format!("duplicate provider name '{}'", p.name),
            );
            continue;
        }
        check_provider(p, &ppath, &ctx.scope, opts, findings);
    }
    let provider_names: Vec<&str> = id.providers.iter().map(|p| p.name.as_str()).collect();
    let domains = local_domains(id);
    let mut role_names = BTreeSet::new();
    for (i, r) in id.roles.iter().enumerate() {
        let rpath = format!("{}.roles[{i}]", ctx.path);
        if !role_names.insert(r.name.clone()) {
            err(
                findings,
                format!("{rpath}.name"),
                format!("duplicate role name '{}'", r.name),
            );
        }
        check_role(
            app,
            r,
            &rpath,
            &ctx.scope,
            &provider_names,
            &domains,
            findings,
        );
    }
    findings.iter().filter(|f| f.is_error()).count() == before
}

fn check_provider(
    p: &ProviderSpec,
    ppath: &str,
    scope: &Scope,
    opts: &Options,
    findings: &mut Vec<Finding>,
) {
    let before = findings.len();
    let err = |findings: &mut Vec<Finding>, field: &str, msg: String| {
        findings.push(Finding::error(
            scope.clone(),
            format!("{ppath}.{field}"),
            msg,
        ));
    };
    match &p.audiences {
        None => err(
            findings,
            "audiences",
            format!(
                "provider '{}' has no audience: without one, a token that {} minted for any other service would be accepted here; list the audience your callers request (the 'aud' claim)",
                p.name, p.issuer
            ),
        ),
        Some(a) if a.is_empty() => err(
            findings,
            "audiences",
            format!(
                "provider '{}' has an empty audience list; list at least one expected 'aud' value",
                p.name
            ),
        ),
        Some(_) => {}
    }
    if p.algorithms.is_none() {
        err(
            findings,
            "algorithms",
            format!(
                "required: the signing algorithms accepted from '{}', e.g. [RS256] (the allow-list stops algorithm-confusion attacks)",
                p.issuer
            ),
        );
    }
    match (&p.jwks, &p.remote_jwks) {
        (None, None) => err(
            findings,
            "jwks",
            format!(
                "required: the public keys of '{}', either inline (jwks: {{keys: [...]}}) or fetched by the filter at run time (remoteJwks: {{uri: <JWKS URL>, cluster: <Envoy cluster of the IdP>}})",
                p.issuer
            ),
        ),
        (Some(_), Some(_)) => err(
            findings,
            "remoteJwks",
            "set either jwks (inline keys) or remoteJwks (keys fetched at run time), not both".into(),
        ),
        _ => {}
    }
    let lifetime = p.max_lifetime_seconds.unwrap_or(DEFAULT_MAX_LIFETIME);
    if lifetime > opts.max_token_lifetime {
        let what = match p.max_lifetime_seconds {
            Some(v) => format!("maxLifetimeSeconds {v}"),
            None => format!("the default token lifetime of {DEFAULT_MAX_LIFETIME} s"),
        };
        err(
            findings,
            "maxLifetimeSeconds",
            format!(
                "{what} is over the limit of {} s: a stolen token would stay usable that long; CI and workload tokens live minutes (GitLab and Buildkite: 5-60 min, Kubernetes projected tokens: 1 h)",
                opts.max_token_lifetime
            ),
        );
    }
    if let Some(skew) = p.clock_skew_seconds {
        if skew > MAX_CLOCK_SKEW {
            err(
                findings,
                "clockSkewSeconds",
                format!("{skew} is over the limit of {MAX_CLOCK_SKEW} s"),
            );
        }
    }
    if findings.len() > before {
        return;
    }
    // Everything else (JWKS keys, remoteJwks URL, cluster and ranges,
    // algorithm names, token sources) is checked by the engine itself.
    if let Err(e) = Provider::compile(&provider_config(p), "p") {
        let rest = e.path.strip_prefix("p").unwrap_or(&e.path);
        let mut msg = e.problem.to_string();
        if rest.starts_with(".remote_jwks") {
            // The engine names its own (snake_case) fields in some messages.
            msg = msg.replace("refresh_seconds", "refreshSeconds");
        }
        findings.push(Finding::error(
            scope.clone(),
            format!("{ppath}{}", camel_path(rest)),
            msg,
        ));
    }
}

pub fn provider_config(p: &ProviderSpec) -> ProviderConfig {
    ProviderConfig {
        name: p.name.clone(),
        issuer: p.issuer.clone(),
        audiences: p.audiences.clone().unwrap_or_default(),
        algorithms: p.algorithms.clone().unwrap_or_default(),
        jwks: p.jwks.as_ref().map(canonical_json),
        remote_jwks: p.remote_jwks.as_ref().map(remote_jwks_config),
        from: p.from.clone(),
        clock_skew_seconds: p.clock_skew_seconds,
        max_lifetime_seconds: p.max_lifetime_seconds,
        forward_token: p.forward_token,
    }
}

pub fn remote_jwks_config(r: &RemoteJwks) -> RemoteJwksConfig {
    RemoteJwksConfig {
        uri: r.uri.clone(),
        cluster: r.cluster.clone(),
        refresh_seconds: r.refresh_seconds,
        timeout_ms: r.timeout_ms,
        max_stale_seconds: r.max_stale_seconds,
        min_refetch_interval_seconds: r.min_refetch_interval_seconds,
        discovery: r.discovery,
    }
}

/// Objects with sorted keys, whatever serde_json's map flavour, so that the
/// output never depends on input key order or crate features.
pub fn canonical_json(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let sorted: BTreeMap<&String, serde_json::Value> =
                m.iter().map(|(k, v)| (k, canonical_json(v))).collect();
            serde_json::Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.iter().map(canonical_json).collect())
        }
        other => other.clone(),
    }
}

fn component_list(app: &Application) -> String {
    app.components
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks of one role definition (shared or component role).
fn check_role(
    app: &Application,
    r: &AccessRole,
    rpath: &str,
    scope: &Scope,
    providers: &[&str],
    domains: &[String],
    findings: &mut Vec<Finding>,
) {
    let err = |findings: &mut Vec<Finding>, path: String, msg: String| {
        findings.push(Finding::error(scope.clone(), path, msg));
    };
    if !valid_name(&r.name) {
        err(
            findings,
            format!("{rpath}.name"),
            format!(
                "'{}': 1 to 128 of letters, digits, '-', '_', '.', ':', '/'",
                r.name
            ),
        );
    }
    if r.principals.is_none() && r.jwt.is_none() {
        err(
            findings,
            rpath.to_string(),
            format!(
                "role '{}' has no conditions; give it 'principals' (mTLS workloads), 'jwt' (token claims) or both",
                r.name
            ),
        );
    }
    if let Some(list) = &r.principals {
        if list.is_empty() {
            err(
                findings,
                format!("{rpath}.principals"),
                "must not be empty; leave 'principals' out if the role needs only a token".into(),
            );
        }
        for (j, p) in list.iter().enumerate() {
            let ppath = format!("{rpath}.principals[{j}]");
            if is_component_ref(p) {
                if app.component(p).is_none() {
                    err(
                        findings,
                        ppath,
                        format!(
                            "principal '{p}' names no component of application '{}' (components: {}); for a workload outside the application write 'ns/<namespace>/sa/<service-account>'",
                            app.name,
                            component_list(app)
                        ),
                    );
                }
            } else if let Err(e) = PrincipalPattern::parse(p, domains) {
                err(findings, ppath, e);
            }
        }
    }
    if let Some(j) = &r.jwt {
        if !providers.contains(&j.provider.as_str()) {
            let known = if providers.is_empty() {
                "none are defined: add a mesh-identity policy with providers".to_string()
            } else {
                format!("defined: {}", providers.join(", "))
            };
            err(
                findings,
                format!("{rpath}.jwt.provider"),
                format!("provider '{}' is not defined ({known})", j.provider),
            );
        }
        for (k, c) in j.claims.iter().enumerate() {
            let cpath = format!("{rpath}.jwt.claims[{k}]");
            if let Err(e) = ClaimTest::compile(&claim_condition(c), "c") {
                let rest = e.path.strip_prefix("c").unwrap_or(&e.path);
                err(
                    findings,
                    format!("{cpath}{}", camel_path(rest)),
                    e.problem.to_string(),
                );
            }
            check_claim_preset(c, &cpath, scope, findings);
        }
    }
}

/// Claims that real issuers send as strings although they look boolean.
fn check_claim_preset(c: &ClaimMatch, cpath: &str, scope: &Scope, findings: &mut Vec<Finding>) {
    const STRING_BOOLEANS: &[&str] = &["ref_protected", "environment_protected"];
    if STRING_BOOLEANS.contains(&c.claim.as_str()) {
        let has_bool = c.equals.as_ref().is_some_and(serde_json::Value::is_boolean)
            || c.one_of
                .as_ref()
                .is_some_and(|l| l.iter().any(serde_json::Value::is_boolean));
        if has_bool {
            findings.push(Finding::error(
                scope.clone(),
                format!("{cpath}.equals"),
                format!(
                    "GitLab sends '{}' as the string \"true\" or \"false\"; a boolean never equals it, so this condition can never hold: quote the value (equals: \"true\")",
                    c.claim
                ),
            ));
        }
    }
}

pub fn claim_condition(c: &ClaimMatch) -> ClaimCondition {
    ClaimCondition {
        claim: c.claim.clone(),
        equals: c.equals.clone(),
        one_of: c.one_of.clone(),
        contains: c.contains.clone(),
        scope_contains: c.scope_contains.clone(),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/'))
}

/// Resolve principals: component names become `ns/<ns>/sa/<sa>`.
fn resolve_principals(app: &Application, list: &[String]) -> Vec<String> {
    list.iter()
        .map(|p| match app.component(p) {
            Some(c) if is_component_ref(p) => {
                format!("ns/{}/sa/{}", app.namespace, c.service_account)
            }
            _ => p.clone(),
        })
        .collect()
}

fn role_config(app: &Application, r: &AccessRole) -> RoleConfig {
    RoleConfig {
        name: r.name.clone(),
        principals: r.principals.as_ref().map(|l| resolve_principals(app, l)),
        jwt: r.jwt.as_ref().map(|j| JwtCondition {
            provider: j.provider.clone(),
            claims: j.claims.iter().map(claim_condition).collect(),
        }),
    }
}

fn forward_config(f: &Forward) -> ForwardConfig {
    ForwardConfig {
        principal_header: f.principal_header.clone(),
        subject_header: f.subject_header.clone(),
        issuer_header: f.issuer_header.clone(),
        roles_header: f.roles_header.clone(),
        claim_headers: f.claim_headers.clone(),
        strip_headers: f.strip_headers.clone(),
    }
}

/// Parses one list item of a rule, returning the engine's message.
type Parser = fn(&str) -> Result<(), String>;

fn check_rule(
    rule: &AccessRule,
    path: &str,
    scope: &Scope,
    defined: &BTreeMap<String, String>,
    findings: &mut Vec<Finding>,
) {
    let err = |findings: &mut Vec<Finding>, path: String, msg: String| {
        findings.push(Finding::error(scope.clone(), path, msg));
    };
    if !valid_name(&rule.name) {
        err(
            findings,
            format!("{path}.name"),
            format!(
                "'{}': 1 to 128 of letters, digits, '-', '_', '.', ':', '/'",
                rule.name
            ),
        );
    }
    if let Some(roles) = &rule.roles {
        if roles.is_empty() {
            err(
                findings,
                format!("{path}.roles"),
                "must not be empty; leave 'roles' out of a deny rule to deny everyone".into(),
            );
        }
        for (j, name) in roles.iter().enumerate() {
            if !defined.contains_key(name) {
                let known = if defined.is_empty() {
                    "no roles are defined".to_string()
                } else {
                    format!(
                        "defined: {}",
                        defined.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                };
                err(
                    findings,
                    format!("{path}.roles[{j}]"),
                    format!(
                        "rule '{}' names role '{name}', which is not defined ({known})",
                        rule.name
                    ),
                );
            }
        }
    }
    match (rule.effect, rule.public, rule.roles.is_some()) {
        (Effect::Allow, true, true) => err(
            findings,
            format!("{path}.public"),
            "'public' and 'roles' exclude each other: a public rule needs no role".into(),
        ),
        (Effect::Allow, false, false) => err(
            findings,
            path.to_string(),
            format!(
                "allow rule '{}' says neither who may call ('roles') nor 'public: true'",
                rule.name
            ),
        ),
        (Effect::Deny, true, _) => err(
            findings,
            format!("{path}.public"),
            "'public' only applies to allow rules; a deny rule without 'roles' applies to everyone"
                .into(),
        ),
        _ => {}
    }
    let lists: [(&str, &Option<Vec<String>>, Parser); 3] = [
        ("methods", &rule.methods, |m| parse_method(m).map(|_| ())),
        ("hosts", &rule.hosts, |h| HostPattern::parse(h).map(|_| ())),
        ("paths", &rule.paths, |p| PathPattern::parse(p).map(|_| ())),
    ];
    for (field, list, parse) in lists {
        let Some(list) = list else { continue };
        if list.is_empty() {
            err(
                findings,
                format!("{path}.{field}"),
                format!("must not be empty; leave '{field}' out to match any"),
            );
        }
        for (j, item) in list.iter().enumerate() {
            if let Err(e) = parse(item) {
                err(findings, format!("{path}.{field}[{j}]"), e);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn compile_component(
    app: &Application,
    comp: &Component,
    access: &AccessTrait,
    ctx: &IdentityCtx<'_>,
    identity_ok: bool,
    opts: &Options,
    findings: &mut Vec<Finding>,
) -> Option<CompiledComponent> {
    let scope = Scope::Component(comp.name.clone());
    let errors_before = findings.iter().filter(|f| f.is_error()).count();
    let spec = &access.spec;
    let root = &access.path;
    let provider_names: Vec<&str> = ctx.spec.providers.iter().map(|p| p.name.as_str()).collect();
    let domains = local_domains(ctx.spec);

    // Roles in scope: this component's, then the shared ones.
    let mut defined: BTreeMap<String, String> = BTreeMap::new();
    for (i, r) in spec.roles.iter().enumerate() {
        let rpath = format!("{root}.roles[{i}]");
        if defined.contains_key(&r.name) {
            findings.push(Finding::error(
                scope.clone(),
                format!("{rpath}.name"),
                format!("duplicate role name '{}'", r.name),
            ));
        }
        if let Some(shared) = ctx.spec.roles.iter().position(|s| s.name == r.name) {
            findings.push(Finding::error(
                scope.clone(),
                format!("{rpath}.name"),
                format!(
                    "role '{}' is also a shared role ({}.roles[{shared}]); rename one so rules are unambiguous",
                    r.name, ctx.path
                ),
            ));
        }
        check_role(app, r, &rpath, &scope, &provider_names, &domains, findings);
        defined.insert(r.name.clone(), rpath);
    }
    for (i, r) in ctx.spec.roles.iter().enumerate() {
        defined
            .entry(r.name.clone())
            .or_insert_with(|| format!("{}.roles[{i}]", ctx.path));
    }

    if spec.rules.is_empty() {
        findings.push(Finding::error(
            scope.clone(),
            format!("{root}.rules"),
            "required: at least one rule (with none, every request would be denied; say so with an explicit deny rule)",
        ));
    }
    let mut rule_names = BTreeSet::new();
    let mut used: BTreeSet<&str> = BTreeSet::new();
    for (i, rule) in spec.rules.iter().enumerate() {
        let path = format!("{root}.rules[{i}]");
        if !rule_names.insert(rule.name.as_str()) {
            findings.push(Finding::error(
                scope.clone(),
                format!("{path}.name"),
                format!("duplicate rule name '{}'", rule.name),
            ));
        }
        check_rule(rule, &path, &scope, &defined, findings);
        for r in rule.roles.iter().flatten() {
            used.insert(r.as_str());
        }
    }
    for (i, r) in spec.roles.iter().enumerate() {
        if !used.contains(r.name.as_str()) {
            findings.push(Finding::warning(
                scope.clone(),
                format!("{root}.roles[{i}]"),
                format!("role '{}' is defined but no rule uses it", r.name),
            ));
        }
    }

    // Assemble the plugin configuration.
    let mut paths = PathMap {
        root: root.clone(),
        identity: ctx.path.clone(),
        ..PathMap::default()
    };
    let mut roles = Vec::new();
    let mut origin: Vec<&AccessRole> = Vec::new();
    for (i, r) in spec.roles.iter().enumerate() {
        roles.push(role_config(app, r));
        origin.push(r);
        paths.roles.push(format!("{root}.roles[{i}]"));
    }
    for (i, r) in ctx.spec.roles.iter().enumerate() {
        if used.contains(r.name.as_str()) && !spec.roles.iter().any(|l| l.name == r.name) {
            roles.push(role_config(app, r));
            origin.push(r);
            paths.roles.push(format!("{}.roles[{i}]", ctx.path));
        }
    }
    let needed: BTreeSet<&str> = roles
        .iter()
        .filter_map(|r| r.jwt.as_ref().map(|j| j.provider.as_str()))
        .collect();
    let mut providers = Vec::new();
    for (i, p) in ctx.spec.providers.iter().enumerate() {
        if needed.contains(p.name.as_str()) {
            providers.push(provider_config(p));
            paths.providers.push(format!("{}.providers[{i}]", ctx.path));
        }
    }
    let rules: Vec<RuleConfig> = spec
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            paths.rules.push(format!("{root}.rules[{i}]"));
            RuleConfig {
                name: r.name.clone(),
                effect: r.effect,
                roles: r.roles.clone(),
                public: r.public,
                hosts: r.hosts.clone(),
                methods: r.methods.clone(),
                paths: r.paths.clone(),
            }
        })
        .collect();
    let mut config = PluginConfig {
        signature_backend: Default::default(),
        schema_version: SCHEMA_VERSION,
        policy_version: None,
        mode: opts.mode.or(spec.mode).unwrap_or_default(),
        trust_domain: domains
            .first()
            .cloned()
            .unwrap_or_else(|| DEFAULT_TRUST_DOMAIN.into()),
        trust_domain_aliases: ctx.spec.trust_domain_aliases.clone(),
        providers,
        roles,
        rules,
        forward: spec.forward.as_ref().map(forward_config),
    };

    let errors_now = findings.iter().filter(|f| f.is_error()).count();
    if errors_now > errors_before || !identity_ok {
        return None;
    }
    config.policy_version = Some(match &spec.policy_version {
        Some(v) => v.clone(),
        None => format!("{}/{}@{}", app.name, comp.name, config_hash(&config)),
    });
    let policy = match Policy::compile(&config) {
        Ok(p) => p,
        Err(e) => {
            let (scope, path) = translate(&e, &paths, &scope, &ctx.scope);
            findings.push(Finding::error(scope, path, e.problem.to_string()));
            return None;
        }
    };
    analyze::shared_identities(
        app, &origin, &config, &paths, &policy, &scope, &ctx.scope, findings,
    );
    analyze::unreachable_rules(&policy, &paths, &scope, findings);
    if findings.iter().filter(|f| f.is_error()).count() > errors_before {
        return None;
    }
    Some(CompiledComponent {
        component: comp.name.clone(),
        namespace: app.namespace.clone(),
        config,
        policy,
        paths,
    })
}

/// First 12 hex digits of the SHA-256 of the configuration (without its
/// version label): changes whenever the policy changes, never otherwise.
fn config_hash(cfg: &PluginConfig) -> String {
    let text = serde_json::to_vec(cfg).unwrap_or_default();
    let digest = Sha256::digest(&text);
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// `one_of` -> `oneOf` for each field segment of a config path suffix, up to
/// a segment whose children are user data (JWKS members, header names).
pub fn camel_path(rest: &str) -> String {
    let mut out = String::new();
    let mut raw = false;
    for (n, seg) in rest.split('.').enumerate() {
        if n > 0 {
            out.push('.');
        }
        if raw || seg.is_empty() {
            out.push_str(seg);
            continue;
        }
        let (name, index) = match seg.find('[') {
            Some(i) => seg.split_at(i),
            None => (seg, ""),
        };
        let mut upper = false;
        for ch in name.chars() {
            if ch == '_' {
                upper = true;
            } else if upper {
                out.extend(ch.to_uppercase());
                upper = false;
            } else {
                out.push(ch);
            }
        }
        out.push_str(index);
        if name == "jwks" || name == "claim_headers" {
            raw = true;
        }
    }
    out
}

/// Map an engine error path (`rules[3].paths[0]`) back to the OAM path.
fn translate(
    e: &ConfigError,
    map: &PathMap,
    component: &Scope,
    identity: &Scope,
) -> (Scope, String) {
    let p = e.path.as_str();
    let indexed = |prefix: &str, list: &[String]| -> Option<String> {
        let rest = p.strip_prefix(prefix)?.strip_prefix('[')?;
        let (idx, tail) = rest.split_once(']')?;
        let base = list.get(idx.parse::<usize>().ok()?)?;
        Some(format!("{base}{}", camel_path(tail)))
    };
    if let Some(s) = indexed("rules", &map.rules).or_else(|| indexed("roles", &map.roles)) {
        return (component.clone(), s);
    }
    if let Some(s) = indexed("providers", &map.providers) {
        return (identity.clone(), s);
    }
    if p.starts_with("trust_domain") {
        return (
            identity.clone(),
            format!("{}.{}", map.identity, camel_path(p)),
        );
    }
    if p.is_empty() {
        return (component.clone(), map.root.clone());
    }
    (component.clone(), format!("{}.{}", map.root, camel_path(p)))
}

#[cfg(test)]
mod tests {
    use super::camel_path;

    #[test]
    fn camel_paths() {
        assert_eq!(
            camel_path(".jwt.claims[0].one_of[1]"),
            ".jwt.claims[0].oneOf[1]"
        );
        assert_eq!(camel_path("max_lifetime_seconds"), "maxLifetimeSeconds");
        assert_eq!(camel_path(".jwks.keys[0].key_ops"), ".jwks.keys[0].key_ops");
        assert_eq!(
            camel_path("forward.claim_headers.x_y"),
            "forward.claimHeaders.x_y"
        );
    }
}
