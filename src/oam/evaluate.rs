//! Evaluate one request, as a person describes it, against a compiled
//! component: the same engine steps the filter runs (`Operation::parse`,
//! `authn::verify_token`, `decide_as`), with the trace for `explain` and
//! the decision for `test`.

use super::compile::CompiledComponent;
use super::load::Application;
use super::lower::is_component_ref;
use crate::decision::{Decision, Identity, Reason, TokenIdentity};
use crate::engine::authn::{verify_token, Refused};
use crate::engine::cache::TokenCache;
use crate::engine::trace::Trace;
use crate::engine::{decide_as, refused, Operation};
use crate::jwt::{parse_jwks, TokenError, VerifiedToken};
use crate::pattern::spiffe::SpiffeId;
use crate::policy::Policy;
use crate::request::token::TokenLocation;
use serde_json::{Map, Value};
use std::sync::Arc;

/// One request as a person describes it.
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// `spiffe://…`, or a component name of the application.
    pub principal: Option<String>,
    /// A compact JWS, verified with the provider's keys.
    pub token: Option<String>,
    /// Claims taken as verified (signature, `aud` and times not checked).
    pub claims: Option<Map<String, Value>>,
    /// Provider for `claims` (or to force one for `token`).
    pub provider: Option<String>,
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    pub now: u64,
    /// A JWK set to verify `token` with when its provider fetches its keys
    /// at run time (`remoteJwks`): offline there are no fetched keys.
    pub jwks: Option<Value>,
}

/// Who the caller was taken to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    /// No mTLS client certificate.
    None,
    Spiffe(SpiffeId),
    /// A component of the application, resolved to its SPIFFE ID.
    Component {
        name: String,
        id: SpiffeId,
    },
}

/// What became of the token or claims given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOutcome {
    None,
    /// The component's policy names no provider: the filter reads no token.
    Ignored,
    /// Verified by this provider (`offline`: with the keys of `--jwks`).
    Verified {
        provider: usize,
        offline: bool,
    },
    /// Refused, by this provider if one could be chosen.
    Refused(Refused),
    /// Claims taken as verified, as this provider's.
    Assumed {
        provider: usize,
    },
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub decision: Decision,
    pub trace: Trace,
    pub peer: Peer,
    pub token: TokenOutcome,
    /// Normalized host used for matching.
    pub host: String,
}

/// Resolve `--principal` (or a case's `principal`) to one identity, in
/// every form a policy names one: a component name (its SPIFFE ID),
/// `ns/<ns>/sa/<sa>` (in the policy's trust domain), or a SPIFFE ID.
/// Patterns (`ns/ci/*`, `*`) match many identities, so they are refused.
pub fn resolve_principal(
    app: &Application,
    trust_domain: &str,
    p: &str,
) -> Result<SpiffeId, String> {
    if p.contains('*') {
        return Err(format!(
            "principal '{p}' is a pattern; a request comes from one workload: write 'ns/<namespace>/sa/<service-account>', 'spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>' or a component name"
        ));
    }
    if let Some(path) = p.strip_prefix("ns/") {
        let mut it = path.split('/');
        return match (it.next(), it.next(), it.next(), it.next()) {
            (Some(ns), Some("sa"), Some(sa), None) => {
                SpiffeId::new(trust_domain, ns, sa).map_err(|e| format!("principal '{p}': {e}"))
            }
            _ => Err(format!(
                "principal '{p}': expected 'ns/<namespace>/sa/<service-account>'"
            )),
        };
    }
    if is_component_ref(p) {
        let c = app.component(p).ok_or_else(|| {
            format!(
                "principal '{p}' is neither a component of application '{}' nor an identity (ns/<ns>/sa/<sa> or spiffe://<td>/ns/<ns>/sa/<sa>)",
                app.name
            )
        })?;
        return SpiffeId::new(trust_domain, &app.namespace, &c.service_account)
            .map_err(|e| format!("principal '{p}': {e}"));
    }
    SpiffeId::parse(p).map_err(|e| format!("principal '{p}': {e}"))
}

fn resolve_peer(app: &Application, c: &CompiledComponent, input: &Input) -> Result<Peer, String> {
    Ok(match &input.principal {
        None => Peer::None,
        Some(p) => {
            let id = resolve_principal(app, &c.config.trust_domain, p)?;
            if is_component_ref(p) {
                Peer::Component {
                    name: p.clone(),
                    id,
                }
            } else {
                Peer::Spiffe(id)
            }
        }
    })
}

impl Peer {
    fn id(&self) -> Option<SpiffeId> {
        match self {
            Peer::None => None,
            Peer::Spiffe(id) | Peer::Component { id, .. } => Some(id.clone()),
        }
    }
}

pub fn evaluate(
    app: &Application,
    c: &CompiledComponent,
    input: &Input,
) -> Result<Outcome, String> {
    let policy = &c.policy;
    let peer = resolve_peer(app, c, input)?;
    let host = input.host.as_deref().unwrap_or(&c.component);
    let finish = |decision, trace, token, host: String| Outcome {
        decision,
        trace,
        peer: peer.clone(),
        token,
        host,
    };
    let op = match Operation::parse(&input.method, &input.path, host, policy.path_options) {
        Ok(op) => op,
        Err(reason) => {
            let d = refused(
                reason,
                Identity {
                    peer: peer.id(),
                    token: None,
                },
                None,
            );
            let host = crate::pattern::hostname::normalize_host(host);
            return Ok(finish(d, Trace::default(), TokenOutcome::None, host));
        }
    };
    let (token, outcome) = match authenticate(c, input)? {
        Ok(t) => t,
        Err(r) => {
            let reason = Reason::InvalidToken(r.error.clone());
            let d = refused(
                reason,
                Identity {
                    peer: peer.id(),
                    token: None,
                },
                None,
            );
            return Ok(finish(
                d,
                Trace::default(),
                TokenOutcome::Refused(r),
                op.host.into_owned(),
            ));
        }
    };
    let mut trace = Trace::default();
    let identity = Identity {
        peer: peer.id(),
        token,
    };
    let decision = decide_as(policy, identity, &op, Some(&mut trace));
    Ok(finish(decision, trace, outcome, op.host.into_owned()))
}

type Authenticated = Result<(Option<TokenIdentity>, TokenOutcome), Refused>;

/// The token or claims of `input`, as the filter would authenticate them.
/// `Err` is a usage problem (unknown provider, missing keys).
fn authenticate(c: &CompiledComponent, input: &Input) -> Result<Authenticated, String> {
    let policy = &c.policy;
    let location = TokenLocation::Header("authorization".into());
    if policy.providers.is_empty() && (input.token.is_some() || input.claims.is_some()) {
        return Ok(Ok((None, TokenOutcome::Ignored)));
    }
    if let Some(raw) = &input.token {
        return authenticate_token(c, input, raw, location);
    }
    let Some(claims) = &input.claims else {
        return Ok(Ok((None, TokenOutcome::None)));
    };
    let iss = claims.get("iss").and_then(Value::as_str);
    let i = match (&input.provider, iss) {
        (Some(name), _) => provider_index(c, name)?,
        (None, Some(iss)) => policy
            .providers
            .iter()
            .position(|p| p.issuer() == iss)
            .ok_or_else(|| {
                format!(
                    "claims: 'iss' '{iss}' matches no provider of component '{}' (providers: {}); give the provider by name",
                    c.component,
                    provider_names(c)
                )
            })?,
        (None, None) => match policy.providers.as_slice() {
            [_] => 0,
            _ => {
                return Err(format!(
                    "claims: no 'iss' claim and component '{}' has several providers ({}); give the provider by name",
                    c.component,
                    provider_names(c)
                ))
            }
        },
    };
    let Some(p) = policy.providers.get(i) else {
        return Err("internal: provider index out of range".into());
    };
    let token = Arc::new(VerifiedToken {
        issuer: iss.unwrap_or(p.issuer()).to_string(),
        subject: claims
            .get("sub")
            .and_then(Value::as_str)
            .map(str::to_string),
        expires_at: claims.get("exp").and_then(Value::as_u64).unwrap_or(0),
        claims: claims.clone(),
    });
    Ok(Ok((
        Some(TokenIdentity {
            provider: i,
            token,
            location,
        }),
        TokenOutcome::Assumed { provider: i },
    )))
}

/// A raw token, verified as the filter would: routed by issuer among the
/// component's providers (or the one named), with `--jwks` keys installed
/// for providers that fetch theirs at run time.
fn authenticate_token(
    c: &CompiledComponent,
    input: &Input,
    raw: &str,
    location: TokenLocation,
) -> Result<Authenticated, String> {
    let policy = &c.policy;
    let candidates: Vec<usize> = match &input.provider {
        Some(name) => vec![provider_index(c, name)?],
        None => (0..policy.providers.len()).collect(),
    };
    let offline = match &input.jwks {
        Some(jwks) => install_offline_keys(policy, jwks)?,
        None => Vec::new(),
    };
    let mut cache = TokenCache::disabled();
    match verify_token(policy, raw.trim(), &candidates, input.now, None, &mut cache) {
        Ok((provider, token)) => Ok(Ok((
            Some(TokenIdentity {
                provider,
                token,
                location,
            }),
            TokenOutcome::Verified {
                provider,
                offline: offline.contains(&provider),
            },
        ))),
        Err(r) => {
            if let (Some(i), TokenError::KeysUnavailable) = (r.provider, &r.error) {
                if let Some(remote) = policy.providers.get(i).and_then(|p| p.remote()) {
                    let name = policy.providers.get(i).map_or("", |p| p.name());
                    return Err(format!(
                        "provider '{name}' fetches its keys at run time ({}); pass --jwks FILE to verify offline",
                        remote.settings.url()
                    ));
                }
            }
            Ok(Err(r))
        }
    }
}

/// Offline, providers that fetch their keys at run time have none: install
/// the `--jwks` set (checked as strictly as inline keys) in each of them
/// whose algorithms it serves. Returns the providers that took it.
fn install_offline_keys(policy: &Policy, jwks: &Value) -> Result<Vec<usize>, String> {
    let mut took = Vec::new();
    let mut first_error = None;
    for (i, p) in policy.providers.iter().enumerate() {
        let Some(remote) = p.remote() else { continue };
        match parse_jwks(jwks, p.algorithms(), "--jwks") {
            Ok(set) => {
                remote.live.replace(Some(Arc::new(set)));
                took.push(i);
            }
            Err(e) => {
                first_error.get_or_insert_with(|| format!("provider '{}': {e}", p.name()));
            }
        }
    }
    match (took.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(took),
    }
}

fn provider_names(c: &CompiledComponent) -> String {
    let names: Vec<&str> = c.policy.providers.iter().map(|p| p.name()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn provider_index(c: &CompiledComponent, name: &str) -> Result<usize, String> {
    c.policy
        .providers
        .iter()
        .position(|p| p.name() == name)
        .ok_or_else(|| {
            format!(
                "provider '{name}' is not used by component '{}' (its providers: {})",
                c.component,
                provider_names(c)
            )
        })
}
