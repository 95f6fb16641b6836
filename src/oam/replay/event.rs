//! Audit events as replay reads them (the fields `audit.rs` writes).

use crate::decision::Reason;
use crate::policy::Policy;
use serde_json::{Map, Value};

/// A decision as an event writes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Outcome {
    pub allowed: bool,
    pub status: u16,
    pub reason: String,
    pub rule: Option<String>,
}

impl Outcome {
    pub(super) fn of(policy: &Policy, reason: &Reason, rule: Option<usize>) -> Outcome {
        Outcome {
            allowed: reason.is_allow(),
            status: reason.status(),
            reason: reason.code().to_string(),
            rule: policy.rule_name(rule).map(str::to_string),
        }
    }

    fn word(&self) -> &'static str {
        if self.allowed {
            "allow"
        } else {
            "deny"
        }
    }

    /// `allow 200 role_granted (rule 'read')`.
    pub fn describe(&self) -> String {
        let rule = match &self.rule {
            Some(r) => format!(" (rule '{r}')"),
            None => String::new(),
        };
        format!("{} {} {}{rule}", self.word(), self.status, self.reason)
    }
}

/// One audit event, as far as replay reads it.
#[derive(Debug, Clone)]
pub struct Event {
    pub request_id: String,
    pub policy: String,
    pub recorded: Outcome,
    pub peer: Option<String>,
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub method: String,
    pub host: String,
    pub path: String,
    /// `None`: the event has no replay facts.
    pub facts: Option<Facts>,
}

#[derive(Debug, Clone)]
pub struct Facts {
    pub token: Option<TokenFacts>,
    pub token_sources: Vec<String>,
    pub claims: Option<Map<String, Value>>,
}

#[derive(Debug, Clone)]
pub struct TokenFacts {
    pub from: String,
    /// Name and settings digest of the provider that judged it.
    pub provider: Option<(String, String)>,
    /// The settings digests of every provider that read that place.
    pub candidates: Vec<String>,
}

/// Prefix of the audit lines (`audit::AUDIT_PREFIX`).
const PREFIX: &str = "oam-authz-audit ";

/// The events of a log (Envoy's, or `kubectl logs`): every line holding
/// the audit prefix; and how many such lines were not events.
pub fn parse_log(text: &str) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut bad = 0;
    for line in text.lines() {
        let Some(at) = line.find(PREFIX) else {
            continue;
        };
        let json = line.get(at + PREFIX.len()..).unwrap_or_default().trim();
        match serde_json::from_str::<Value>(json)
            .ok()
            .and_then(|v| event(&v))
        {
            Some(e) => events.push(e),
            None => bad += 1,
        }
    }
    (events, bad)
}

fn event(v: &Value) -> Option<Event> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let decision = s("decision")?;
    let recorded = Outcome {
        allowed: decision == "allow",
        status: u16::try_from(v.get("status")?.as_u64()?).ok()?,
        reason: s("reason")?,
        rule: s("rule"),
    };
    let facts = v
        .get("token_sources")
        .and_then(Value::as_array)
        .map(|list| {
            let token = v
                .get("token")
                .and_then(Value::as_object)
                .map(|t| TokenFacts {
                    from: t
                        .get("from")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    provider: match (
                        t.get("provider").and_then(Value::as_str),
                        t.get("digest").and_then(Value::as_str),
                    ) {
                        (Some(n), Some(d)) => Some((n.to_string(), d.to_string())),
                        _ => None,
                    },
                    candidates: t
                        .get("candidates")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            Facts {
                token,
                token_sources: list
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                claims: v.get("claims").and_then(Value::as_object).cloned(),
            }
        });
    Some(Event {
        request_id: s("request_id").unwrap_or_default(),
        policy: s("policy").unwrap_or_default(),
        recorded,
        peer: s("peer"),
        iss: s("iss"),
        sub: s("sub"),
        method: s("method")?,
        host: s("host")?,
        path: s("path")?,
        facts,
    })
}
