//! The plugin-configuration types, one-to-one with the JSON.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The only schema version this build understands.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    pub schema_version: u32,
    /// Free-form label carried into every audit event (e.g. a git SHA). When
    /// absent, a hash of the configuration text is used instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    #[serde(default)]
    pub mode: Mode,
    pub trust_domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trust_domain_aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleConfig>,
    pub rules: Vec<RuleConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<ForwardConfig>,
    /// Where RSA/ECDSA signatures are checked. Default `auto`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub signature_backend: SignatureBackendMode,
    /// Where the caller's SPIFFE identity comes from. Default `auto`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub peer_identity: PeerIdentitySource,
    /// Accept `%25` followed by two hex digits in request paths (a literal
    /// `%`); default false: refused as `path_not_canonical` (double encoding).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_encoded_percent: bool,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// `auto`: Envoy's native `verify_signature` (BoringSSL) for RS*/ES* when the
/// host offers it and passes a self-test, else pure wasm. `wasm`: always pure
/// wasm. `host`: refuse the configuration unless the native verifier works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureBackendMode {
    #[default]
    Auto,
    Wasm,
    Host,
}

/// Where the caller's SPIFFE identity comes from (docs/policy.md "Peer
/// identity"); never from a request header.
/// `connection`: the URI SAN of the connection's verified client certificate
/// (a sidecar). `istio_waypoint`: the `io.istio.peer_principal` filter state
/// an Istio waypoint sets from the HBONE tunnel's client certificate.
/// `auto`: the certificate when the connection is mTLS, else the filter state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerIdentitySource {
    #[default]
    Auto,
    Connection,
    IstioWaypoint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    Audit,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    /// JWS algorithms accepted from this issuer, e.g. `["RS256"]`.
    pub algorithms: Vec<String>,
    /// Inline JSON Web Key Set (`{"keys": [...]}`). Exactly one of `jwks`
    /// and `remote_jwks` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// A JWKS fetched by the filter from the identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_jwks: Option<RemoteJwksConfig>,
    /// Where to look for the token. Default: `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<TokenSource>>,
    /// Tolerance applied to `exp`, `nbf` and `iat`. Default 30 s, max 300 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_skew_seconds: Option<u64>,
    /// Tokens whose `exp - iat` exceeds this are refused. Default 86400 (1 day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime_seconds: Option<u64>,
    /// Keep the token on the request sent upstream. Default false: it is removed.
    #[serde(default)]
    pub forward_token: bool,
    /// The claim holding the audience. Default `aud`; Amazon Cognito access
    /// tokens carry the app client id in `client_id` and have no `aud`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience_claim: Option<String>,
    /// Accept an `http://` issuer on a non-loopback host (test environments).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_http_issuer: bool,
}

/// A JWKS the filter fetches itself (docs/operations.md "Key management").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteJwksConfig {
    /// The JWKS URL; with `discovery`, the OpenID discovery document URL
    /// (default `<issuer>/.well-known/openid-configuration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The Envoy cluster that reaches the identity provider.
    pub cluster: String,
    /// Refresh interval. Default 300 s, 1..=86400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_seconds: Option<u64>,
    /// Timeout of one HTTP request. Default 5000 ms, 100..=60000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// How long the last good key set may be used while fetches fail.
    /// Default 86400 s (or `refresh_seconds` if longer), up to 7 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_stale_seconds: Option<u64>,
    /// Minimum time between fetch starts triggered by unknown `kid`s. Default 30 s, 1..=3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_refetch_interval_seconds: Option<u64>,
    /// `uri` is an OpenID discovery document whose `jwks_uri` is fetched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub discovery: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum TokenSource {
    /// `{"header": {"name": "x-token", "prefix": "Token "}}`
    Header {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    /// `{"query": "access_token"}`
    Query(String),
    /// `{"cookie": "id_token"}`
    Cookie(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    pub name: String,
    /// mTLS peer patterns; any one matching is enough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principals: Option<Vec<String>>,
    /// Token conditions. With `principals` also set, both must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtCondition>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtCondition {
    pub provider: String,
    /// All conditions must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimCondition>,
}

/// One test on one claim. Exactly one operator field must be set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimCondition {
    /// Dotted path into the claim set, e.g. `realm_access.roles`.
    pub claim: String,
    /// The claim equals this JSON scalar (string, number or boolean).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<serde_json::Value>,
    /// The claim equals one of these scalars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<serde_json::Value>>,
    /// The claim is an array containing this scalar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<serde_json::Value>,
    /// The claim is a space-delimited string (OAuth `scope`) holding this word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_contains: Option<String>,
    /// The claim is a string starting with this text (GitLab subgroups:
    /// `namespace_path` prefix `platform/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    #[default]
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    #[serde(default)]
    pub effect: Effect,
    /// Caller must hold one of these roles. For `deny` rules, absent means everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Allow without any identity (no token, no client certificate needed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
    /// Absent means any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Absent means any method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Absent means any path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// Header receiving the peer's SPIFFE ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_header: Option<String>,
    /// Header receiving the token's `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_header: Option<String>,
    /// Header receiving the token's `iss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_header: Option<String>,
    /// Header receiving the held roles, comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles_header: Option<String>,
    /// header name -> claim path, for string/number/bool claims.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claim_headers: BTreeMap<String, String>,
    /// More client-settable headers to remove on every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strip_headers: Vec<String>,
}
