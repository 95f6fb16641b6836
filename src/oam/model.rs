//! The OAM vocabulary of oam-authz, as written in an `Application`:
//!
//! - the component trait `mesh-access` ([`MeshAccess`]): roles, rules, mode;
//! - the application policy `mesh-identity` ([`MeshIdentity`]): JWT providers,
//!   trust domain and aliases, and shared (claim-to-role) roles.
//!
//! Field names are camelCase, as everywhere in Kubernetes and KubeVela; the
//! compiler maps them onto the snake_case plugin configuration
//! (`crate::config`). Every struct denies unknown fields: a typo such as
//! `method:` for `methods:` would otherwise silently widen a rule to every
//! method. The JSON Schemas in `istio/schemas/` describe the same shapes.

use crate::config::{Effect, Mode, PeerIdentitySource, TokenSource};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Trait type name of the component trait.
pub const TRAIT_MESH_ACCESS: &str = "mesh-access";
/// Policy type name of the application policy.
pub const POLICY_MESH_IDENTITY: &str = "mesh-identity";
/// KubeVela's built-in trait that sets a component's service account.
pub const TRAIT_SERVICE_ACCOUNT: &str = "service-account";

/// `traits[].properties` of a `mesh-access` trait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MeshAccess {
    /// `enforce` (default) or `audit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// Label for audit events. Default: `<app>/<component>@<config hash>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// Roles local to this component.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<AccessRole>,
    /// Rules, in order. Deny rules win wherever they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<AccessRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<Forward>,
    /// Where the caller's identity comes from: `auto` (default),
    /// `connection` or `istio_waypoint` (docs/policy.md "Peer identity").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_identity: Option<PeerIdentitySource>,
    /// Where the filter runs, hence how the WasmPlugin attaches: `sidecar`
    /// (default: `selector`) or `ambient` (`targetRefs`: the component's
    /// Service, whose waypoint runs it). `compile --ambient` overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane: Option<Dataplane>,
    /// Ambient only: attach to this waypoint `Gateway` (same namespace)
    /// instead of the Service. Implies `dataplane: ambient`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waypoint: Option<String>,
    /// Accept `%25` followed by two hex digits in request paths (paths that
    /// really carry a literal `%`). Default: refused as double encoding.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_encoded_percent: bool,
    /// Identity settings for this component only. KubeVela renders a trait
    /// without access to the application's policies, so the KubeVela trait
    /// takes them here; with the CLI, prefer the `mesh-identity` policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<MeshIdentity>,
    /// Roles and rules evaluated next to these on every request, never
    /// enforced (docs/policy.md "Shadow policy").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowAccess>,
    /// What each audit event records for `oam-authz replay`
    /// (docs/operations.md "What an event records").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditSpec>,
}

/// `audit` of a `mesh-access` trait: the plugin config's `audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AuditSpec {
    /// Claim paths recorded (default: those the roles consult, and `aud`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Vec<String>>,
}

/// `shadow` of a `mesh-access` trait: the next rule set, tried on live
/// traffic. Identity, data plane, peer identity and forwarding are the
/// component's own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShadowAccess {
    /// Default: `<app>/<component>@<hash>` of the shadow's own configuration
    /// (the version it gets once enforced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<AccessRole>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<AccessRule>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_encoded_percent: bool,
}

/// Istio's two data planes (docs/cli.md "Ambient").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dataplane {
    Sidecar,
    Ambient,
}

/// A role: who the caller must be. `principals` (mTLS) and `jwt` (token);
/// with both, both must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessRole {
    pub name: String,
    /// Component names of this application, or SPIFFE principal patterns
    /// (`ns/<ns>/sa/<sa>`, `ns/<ns>/*`, `spiffe://<td>/ns/<ns>/sa/<sa>`, `*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principals: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtRequirement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JwtRequirement {
    /// Name of a provider of the `mesh-identity` policy.
    pub provider: String,
    /// All must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimMatch>,
}

/// One test on one claim; exactly one operator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClaimMatch {
    /// Dotted path into the claims, e.g. `realm_access.roles`.
    pub claim: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_contains: Option<String>,
    /// The claim is a string starting with this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccessRule {
    pub name: String,
    /// `allow` (default) or `deny`.
    #[serde(default)]
    pub effect: Effect,
    /// Role names: this component's roles or shared roles of `mesh-identity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// No identity needed (allow rules only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Forward {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles_header: Option<String>,
    /// header name -> claim path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claim_headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strip_headers: Vec<String>,
}

/// `policies[].properties` of a `mesh-identity` policy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MeshIdentity {
    /// Default `cluster.local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_domain_aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderSpec>,
    /// Named reusable roles (claim-to-role mappings), usable by every
    /// component's rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<AccessRole>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderSpec {
    pub name: String,
    pub issuer: String,
    /// Required; optional here only so that a missing list gets a precise message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
    /// Required allow-list, e.g. `[RS256]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithms: Option<Vec<String>>,
    /// Inline JWK set `{keys: [...]}`. Exactly one of `jwks` and `remoteJwks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Value>,
    /// Keys fetched by the filter from the identity provider at run time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_jwks: Option<RemoteJwks>,
    /// Token locations; default `Authorization: Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<TokenSource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward_token: bool,
    /// The claim holding the audience (default `aud`; Cognito access tokens: `client_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience_claim: Option<String>,
    /// Accept an `http://` issuer on a non-loopback host (test environments only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_http_issuer: bool,
}

/// `remoteJwks` of a provider: the filter fetches the key set itself
/// (docs/operations.md "Key management"). Maps one-to-one onto the plugin
/// configuration's `remote_jwks`; ranges and defaults are the engine's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RemoteJwks {
    /// The JWKS URL; with `discovery`, the OpenID discovery document
    /// (default `<issuer>/.well-known/openid-configuration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The Envoy cluster that reaches the identity provider.
    pub cluster: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stale_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_refetch_interval_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub discovery: bool,
}
