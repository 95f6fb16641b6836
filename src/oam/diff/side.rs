//! One side of a diff (a compiled policy and the configuration it was
//! compiled from), and what roles mean, in words.

use crate::config::PluginConfig;
use crate::policy::Policy;

/// What the filter runs (`policy`) and the configuration it came from
/// (`config`: claim conditions are enumerated from its values).
#[derive(Clone, Copy)]
pub struct Side<'a> {
    pub config: &'a PluginConfig,
    pub policy: &'a Policy,
}

impl Side<'_> {
    /// The issuer whose token role `i` needs, if it needs one.
    pub fn role_issuer(&self, i: usize) -> Option<&str> {
        let role = self.policy.roles.get(i)?;
        let jwt = role.jwt.as_ref()?;
        self.policy.providers.get(jwt.provider).map(|p| p.issuer())
    }

    /// The provider (index) of an issuer.
    pub fn provider_of(&self, issuer: &str) -> Option<usize> {
        self.policy
            .providers
            .iter()
            .position(|p| p.issuer() == issuer)
    }
}

/// Role `i` of `policy` in words: its principal patterns (the local trust
/// domain written out) and its token condition.
pub fn describe_role(policy: &Policy, i: usize) -> String {
    let Some(role) = policy.roles.get(i) else {
        return String::new();
    };
    let local = policy.local_domains.first().map_or("", String::as_str);
    let mut parts = Vec::new();
    if let Some(ps) = &role.principals {
        let list: Vec<String> = ps
            .iter()
            .map(|p| p.to_string().replace("<local>", local))
            .collect();
        parts.push(if list.len() == 1 {
            format!("peer {}", list.join(""))
        } else {
            format!("peer one of {}", list.join(", "))
        });
    }
    if let Some(j) = &role.jwt {
        let issuer = policy.providers.get(j.provider).map_or("?", |p| p.issuer());
        let claims: Vec<String> = j.claims.iter().map(ToString::to_string).collect();
        parts.push(if claims.is_empty() {
            format!("a token of {issuer}")
        } else {
            format!("a token of {issuer} with {}", claims.join(" and "))
        });
    }
    parts.join(" AND ")
}

/// What makes two role definitions the same: the description, plus the
/// trust domains `<local>` stands for when a pattern is local.
pub fn role_key(policy: &Policy, i: usize) -> String {
    let uses_local = policy
        .roles
        .get(i)
        .and_then(|r| r.principals.as_ref())
        .is_some_and(|ps| ps.iter().any(|p| p.to_string().contains("<local>")));
    if uses_local {
        format!(
            "{} [local: {}]",
            describe_role(policy, i),
            policy.local_domains.join(", ")
        )
    } else {
        describe_role(policy, i)
    }
}
