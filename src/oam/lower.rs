//! OAM application -> plugin configuration, plus the checks that exist only
//! in OAM (component references, a component role shadowing a shared one,
//! issuer presets, the organisation's token-lifetime limit).
//!
//! Lowering checks nothing the engine checks: a lowered configuration goes
//! to `Policy::check` as it is, and the compiler maps the engine's field
//! paths back through the [`PathMap`] built here.

use super::finding::{Finding, Scope};
use super::load::{AccessTrait, Application, Component};
use super::model::{
    AccessRole, ClaimMatch, Dataplane, Forward, MeshAccess, MeshIdentity, ProviderSpec, RemoteJwks,
    ShadowAccess,
};
use crate::config::{
    AuditConfig, ClaimCondition, ForwardConfig, JwtCondition, Mode, PeerIdentitySource,
    PluginConfig, ProviderConfig, RemoteJwksConfig, RoleConfig, RuleConfig, SCHEMA_VERSION,
};
use crate::policy::provider::DEFAULT_MAX_LIFETIME;
use std::collections::{BTreeMap, BTreeSet};

/// Default trust domain of an Istio mesh.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

#[derive(Debug, Clone)]
pub struct Options {
    /// Longest `maxLifetimeSeconds` a provider may allow (org policy).
    pub max_token_lifetime: u64,
    /// Override every component's mode (rollout: audit first).
    pub mode: Option<Mode>,
    /// Override every component's data plane (`compile --ambient`).
    pub dataplane: Option<Dataplane>,
    /// Attach every component to this waypoint (`compile --waypoint`).
    pub waypoint: Option<String>,
    /// An application without any mesh-access trait is not an error
    /// (`--allow-unprotected`).
    pub allow_unprotected: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_token_lifetime: DEFAULT_MAX_LIFETIME,
            mode: None,
            dataplane: None,
            waypoint: None,
            allow_unprotected: false,
        }
    }
}

/// Where a component's WasmPlugin attaches (docs/cli.md "Ambient").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attach {
    /// `selector` on the component's labels: its sidecars run the filter.
    Sidecar,
    /// `targetRefs` to the component's Service: the waypoint serving it
    /// runs the filter for that Service's traffic only.
    Service,
    /// `targetRefs` to a waypoint `Gateway`: it runs the filter on every
    /// request it carries, for whichever Service.
    Waypoint(String),
}

/// Names of Kubernetes objects (a waypoint `Gateway`): an RFC 1123 subdomain.
pub fn waypoint_name_problem(name: &str) -> Option<String> {
    if super::load::valid_dns_subdomain(name) {
        return None;
    }
    Some(format!(
        "waypoint '{name}' is not a Kubernetes object name (lowercase letters, digits, '-' and '.', at most 253 characters)"
    ))
}

/// The component's attachment, from the trait and the command's overrides,
/// with the OAM-only checks of that choice.
fn attach(
    spec: &MeshAccess,
    root: &str,
    scope: &Scope,
    opts: &Options,
    findings: &mut Vec<Finding>,
) -> Attach {
    let waypoint = opts.waypoint.clone().or_else(|| spec.waypoint.clone());
    let implied = waypoint.as_ref().map(|_| Dataplane::Ambient);
    let dataplane = opts.dataplane.or(spec.dataplane).or(implied);
    if opts.dataplane.is_none()
        && spec.dataplane == Some(Dataplane::Sidecar)
        && spec.waypoint.is_some()
    {
        findings.push(Finding::error(
            scope.clone(),
            format!("{root}.waypoint"),
            "a waypoint applies only to the ambient data plane: remove 'waypoint', or set dataplane: ambient",
        ));
    }
    if let (Some(w), None) = (&spec.waypoint, &opts.waypoint) {
        if let Some(problem) = waypoint_name_problem(w) {
            findings.push(Finding::error(
                scope.clone(),
                format!("{root}.waypoint"),
                problem,
            ));
        }
    }
    if dataplane != Some(Dataplane::Ambient) {
        return Attach::Sidecar;
    }
    if spec.peer_identity == Some(PeerIdentitySource::Connection) {
        findings.push(Finding::error(
            scope.clone(),
            format!("{root}.peerIdentity"),
            "'connection' sees no caller on a waypoint: its HTTP filters run on an internal connection without TLS; use 'auto' (the default) or 'istio_waypoint'",
        ));
    }
    match waypoint {
        Some(w) => Attach::Waypoint(w),
        None => Attach::Service,
    }
}

/// A principal that names a component of the application (a bare name).
pub fn is_component_ref(p: &str) -> bool {
    !p.contains('/') && p != "*" && !p.starts_with("spiffe:")
}

/// Where each part of a generated config came from: OAM paths by index of
/// the config's rules, roles and providers.
#[derive(Debug, Clone, Default)]
pub struct PathMap {
    /// The trait's `properties`.
    pub root: String,
    /// The identity's `properties` (policy, or the trait's `identity`).
    pub identity: String,
    pub rules: Vec<String>,
    pub roles: Vec<String>,
    /// Every provider of the identity, as `Lowered::checked` lists them.
    pub providers: Vec<String>,
    /// The providers `Lowered::config` keeps (those its roles need).
    pub config_providers: Vec<String>,
    /// Of the shadow (`shadow.…` paths), if there is one.
    pub shadow: Option<Box<PathMap>>,
}

impl PathMap {
    /// The map of `Lowered::config` rather than `checked`.
    pub fn of_config(&self) -> PathMap {
        PathMap {
            providers: self.config_providers.clone(),
            shadow: self.shadow.as_ref().map(|s| Box::new(s.of_config())),
            ..self.clone()
        }
    }
}

/// The identity in effect for one component: the application's
/// `mesh-identity` policy, or the trait's own `identity`.
#[derive(Debug, Clone)]
pub struct IdentityCtx<'a> {
    pub scope: Scope,
    /// Path of its `properties`.
    pub path: String,
    pub spec: &'a MeshIdentity,
}

impl IdentityCtx<'_> {
    pub fn local_domains(&self) -> Vec<String> {
        let mut v = vec![self
            .spec
            .trust_domain
            .clone()
            .unwrap_or_else(|| DEFAULT_TRUST_DOMAIN.into())];
        v.extend(self.spec.trust_domain_aliases.iter().cloned());
        v
    }
}

/// A lowered component (or identity): the configuration, where its parts
/// came from, the roles as written (for analyses), and OAM-only findings.
#[derive(Debug)]
pub struct Lowered<'a> {
    /// What the filter gets: only the providers its roles need.
    pub config: PluginConfig,
    /// What is validated: `config` with every provider of the identity, so
    /// that a role naming an undefined provider hears which ones exist.
    /// `config` is a subset of it, so it cannot fail where this passed.
    pub checked: PluginConfig,
    /// Paths of `checked` (its rules and roles are those of `config`).
    pub paths: PathMap,
    /// The OAM role behind each `config.roles[i]`.
    pub origin: Vec<&'a AccessRole>,
    /// Where the WasmPlugin attaches (`Sidecar` for identity settings).
    pub attach: Attach,
    pub findings: Vec<Finding>,
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
        audience_claim: p.audience_claim.clone(),
        allow_http_issuer: p.allow_http_issuer,
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

pub fn claim_condition(c: &ClaimMatch) -> ClaimCondition {
    ClaimCondition {
        claim: c.claim.clone(),
        equals: c.equals.clone(),
        one_of: c.one_of.clone(),
        contains: c.contains.clone(),
        scope_contains: c.scope_contains.clone(),
        prefix: c.prefix.clone(),
    }
}

/// Resolve principals: component names become `ns/<ns>/sa/<sa>`. Unknown
/// names are left as written (and reported by [`check_role_refs`]).
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

fn component_list(app: &Application) -> String {
    app.components
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// OAM-only: principals that name a component must name one of this app.
fn check_role_refs(
    app: &Application,
    r: &AccessRole,
    rpath: &str,
    scope: &Scope,
    out: &mut Vec<Finding>,
) {
    for (j, p) in r.principals.iter().flatten().enumerate() {
        if is_component_ref(p) && app.component(p).is_none() {
            out.push(Finding::error(
                scope.clone(),
                format!("{rpath}.principals[{j}]"),
                format!(
                    "principal '{p}' names no component of application '{}' (components: {}); for a workload outside the application write 'ns/<namespace>/sa/<service-account>'",
                    app.name,
                    component_list(app)
                ),
            ));
        }
    }
    for (k, c) in r.jwt.iter().flat_map(|j| j.claims.iter()).enumerate() {
        check_claim_preset(c, &format!("{rpath}.jwt.claims[{k}]"), scope, out);
    }
}

/// OAM-only preset: a prefix on a GitLab group or project path that does not
/// end at a path boundary also matches sibling groups anyone can create
/// (`platform` matches `platform-evil/x`).
fn check_prefix_preset(c: &ClaimMatch, cpath: &str, scope: &Scope, out: &mut Vec<Finding>) {
    const PATH_CLAIMS: &[&str] = &["namespace_path", "project_path"];
    let Some(prefix) = &c.prefix else { return };
    if PATH_CLAIMS.contains(&c.claim.as_str()) && !prefix.is_empty() && !prefix.ends_with('/') {
        out.push(Finding::warning(
            scope.clone(),
            format!("{cpath}.prefix"),
            format!(
                "prefix '{prefix}' on '{}' also matches '{prefix}-other/…' and '{prefix}x/…', groups anyone may create on the GitLab instance; end it with '/' ('{prefix}/' matches the subgroups and projects of '{prefix}') and match '{prefix}' itself with equals",
                c.claim
            ),
        ));
    }
}

/// OAM-only preset: claims real issuers send as strings although they look
/// boolean.
fn check_claim_preset(c: &ClaimMatch, cpath: &str, scope: &Scope, out: &mut Vec<Finding>) {
    check_prefix_preset(c, cpath, scope, out);
    const STRING_BOOLEANS: &[&str] = &["ref_protected", "environment_protected"];
    if STRING_BOOLEANS.contains(&c.claim.as_str()) {
        let has_bool = c.equals.as_ref().is_some_and(serde_json::Value::is_boolean)
            || c.one_of
                .as_ref()
                .is_some_and(|l| l.iter().any(serde_json::Value::is_boolean));
        if has_bool {
            out.push(Finding::error(
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

/// OAM-only: the organisation's cap on token lifetimes (`--max-token-lifetime`).
fn check_lifetime(
    p: &ProviderSpec,
    ppath: &str,
    scope: &Scope,
    opts: &Options,
    out: &mut Vec<Finding>,
) {
    let lifetime = p.max_lifetime_seconds.unwrap_or(DEFAULT_MAX_LIFETIME);
    if lifetime <= opts.max_token_lifetime {
        return;
    }
    let what = match p.max_lifetime_seconds {
        Some(v) => format!("maxLifetimeSeconds {v}"),
        None => format!("the default token lifetime of {DEFAULT_MAX_LIFETIME} s"),
    };
    out.push(Finding::error(
        scope.clone(),
        format!("{ppath}.maxLifetimeSeconds"),
        format!(
            "{what} is over the limit of {} s: a stolen token would stay usable that long; CI and workload tokens live minutes (GitLab and Buildkite: 5-60 min, Kubernetes projected tokens: 1 h)",
            opts.max_token_lifetime
        ),
    ));
}

/// The identity settings alone: every provider and shared role, so that
/// those no component uses are checked too.
pub fn lower_identity<'a>(app: &Application, ctx: &IdentityCtx<'a>, opts: &Options) -> Lowered<'a> {
    let mut findings = Vec::new();
    let mut paths = PathMap {
        root: ctx.path.clone(),
        identity: ctx.path.clone(),
        ..PathMap::default()
    };
    for (i, p) in ctx.spec.providers.iter().enumerate() {
        let ppath = format!("{}.providers[{i}]", ctx.path);
        check_lifetime(p, &ppath, &ctx.scope, opts, &mut findings);
        paths.providers.push(ppath);
    }
    for (i, r) in ctx.spec.roles.iter().enumerate() {
        let rpath = format!("{}.roles[{i}]", ctx.path);
        check_role_refs(app, r, &rpath, &ctx.scope, &mut findings);
        paths.roles.push(rpath);
    }
    let domains = ctx.local_domains();
    let config = PluginConfig {
        signature_backend: Default::default(),
        peer_identity: Default::default(),
        audit: None,
        shadow: None,
        schema_version: SCHEMA_VERSION,
        policy_version: None,
        mode: Mode::default(),
        trust_domain: domains.first().cloned().unwrap_or_default(),
        trust_domain_aliases: ctx.spec.trust_domain_aliases.clone(),
        providers: ctx.spec.providers.iter().map(provider_config).collect(),
        roles: ctx.spec.roles.iter().map(|r| role_config(app, r)).collect(),
        rules: Vec::new(),
        forward: None,
        allow_encoded_percent: false,
    };
    Lowered {
        checked: config.clone(),
        config,
        paths,
        origin: ctx.spec.roles.iter().collect(),
        attach: Attach::Sidecar,
        findings,
    }
}

/// The component's roles, then the shared roles its rules name (each
/// with its OAM path in `paths.roles`), and the OAM role behind each.
fn component_roles<'a>(
    app: &Application,
    access: &'a AccessTrait,
    ctx: &IdentityCtx<'a>,
    scope: &Scope,
    paths: &mut PathMap,
    findings: &mut Vec<Finding>,
) -> (Vec<RoleConfig>, Vec<&'a AccessRole>) {
    let spec = &access.spec;
    let root = &access.path;
    let mut roles = Vec::new();
    let mut origin: Vec<&AccessRole> = Vec::new();
    for (i, r) in spec.roles.iter().enumerate() {
        let rpath = format!("{root}.roles[{i}]");
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
        check_role_refs(app, r, &rpath, scope, findings);
        roles.push(role_config(app, r));
        origin.push(r);
        paths.roles.push(rpath);
    }
    let used: BTreeSet<&str> = spec
        .rules
        .iter()
        .flat_map(|r| r.roles.iter().flatten())
        .map(String::as_str)
        .collect();
    for (i, r) in ctx.spec.roles.iter().enumerate() {
        if used.contains(r.name.as_str()) && !spec.roles.iter().any(|l| l.name == r.name) {
            roles.push(role_config(app, r));
            origin.push(r);
            paths.roles.push(format!("{}.roles[{i}]", ctx.path));
        }
    }
    (roles, origin)
}

/// One protected component: its roles, then the shared roles its rules
/// name; the providers those roles need; its rules as written.
pub fn lower_component<'a>(
    app: &Application,
    comp: &Component,
    access: &'a AccessTrait,
    ctx: &IdentityCtx<'a>,
    opts: &Options,
) -> Lowered<'a> {
    let scope = Scope::Component(comp.name.clone());
    let spec = &access.spec;
    let root = &access.path;
    let mut findings = Vec::new();
    let mut paths = PathMap {
        root: root.clone(),
        identity: ctx.path.clone(),
        ..PathMap::default()
    };
    let (roles, origin) = component_roles(app, access, ctx, &scope, &mut paths, &mut findings);
    let needed: BTreeSet<&str> = roles
        .iter()
        .filter_map(|r| r.jwt.as_ref().map(|j| j.provider.as_str()))
        .collect();
    let mut providers = Vec::new();
    for (i, p) in ctx.spec.providers.iter().enumerate() {
        let ppath = format!("{}.providers[{i}]", ctx.path);
        if needed.contains(p.name.as_str()) {
            providers.push(provider_config(p));
            paths.config_providers.push(ppath.clone());
        }
        paths.providers.push(ppath);
    }
    let rules = rule_configs(spec, root, &mut paths);
    let domains = ctx.local_domains();
    let config = PluginConfig {
        signature_backend: Default::default(),
        schema_version: SCHEMA_VERSION,
        policy_version: spec.policy_version.clone(),
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
        peer_identity: spec.peer_identity.unwrap_or_default(),
        allow_encoded_percent: spec.allow_encoded_percent,
        audit: spec.audit.as_ref().map(|a| AuditConfig {
            claims: a.claims.clone(),
        }),
        shadow: None,
    };
    let attach = attach(spec, root, &scope, opts, &mut findings);
    let mut checked = PluginConfig {
        providers: ctx.spec.providers.iter().map(provider_config).collect(),
        ..config.clone()
    };
    let mut config = config;
    if let Some(s) = &spec.shadow {
        let shadow = lower_shadow(app, comp, access, s, ctx, opts);
        findings.extend(shadow.findings);
        config.shadow = Some(Box::new(shadow.config));
        checked.shadow = Some(Box::new(shadow.checked));
        paths.shadow = Some(Box::new(shadow.paths));
    }
    Lowered {
        config,
        checked,
        paths,
        origin,
        attach,
        findings,
    }
}

/// The trait's rules as written, each path recorded in `paths`.
fn rule_configs(spec: &MeshAccess, root: &str, paths: &mut PathMap) -> Vec<RuleConfig> {
    spec.rules
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
        .collect()
}

/// The trait's `shadow`, lowered as a component of its own with the
/// component's identity, data plane and forwarding (mode: enforce, the only
/// one a shadow has).
fn lower_shadow(
    app: &Application,
    comp: &Component,
    access: &AccessTrait,
    s: &ShadowAccess,
    ctx: &IdentityCtx<'_>,
    opts: &Options,
) -> Lowered<'static> {
    let spec = &access.spec;
    let trait_ = AccessTrait {
        path: format!("{}.shadow", access.path),
        spec: MeshAccess {
            mode: None,
            policy_version: s.policy_version.clone(),
            roles: s.roles.clone(),
            rules: s.rules.clone(),
            allow_encoded_percent: s.allow_encoded_percent,
            shadow: None,
            audit: None,
            identity: None,
            ..spec.clone()
        },
    };
    let opts = Options {
        mode: None,
        ..opts.clone()
    };
    let l = lower_component(app, comp, &trait_, ctx, &opts);
    // Attachment findings are the component's, reported once.
    let findings = l
        .findings
        .into_iter()
        .filter(|f| f.path.starts_with(&trait_.path))
        .collect();
    Lowered {
        config: l.config,
        checked: l.checked,
        paths: l.paths,
        origin: Vec::new(),
        attach: l.attach,
        findings,
    }
}
