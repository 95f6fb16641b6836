//! SPIFFE workload identities and the principal patterns that match them.
//!
//! Identities are parsed into parts and patterns compare parts: no string
//! prefix tricks and no regex built from an identity (Istio's 2026
//! `serviceAccounts` escaping bug came from exactly that).

use std::fmt;

/// A Kubernetes-style SPIFFE ID: `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`.
/// Held as its text with the positions of its parts: parsing a peer's SAN
/// (once per request) costs one allocation, and showing it none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    text: String,
    /// End of the trust domain, start and end of the namespace, start of
    /// the service account, in `text`.
    td_end: usize,
    ns: (usize, usize),
    sa_start: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpiffeError {
    NotSpiffe,
    BadTrustDomain,
    NotWorkloadPath,
    BadSegment,
}

impl fmt::Display for SpiffeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpiffeError::NotSpiffe => "must start with 'spiffe://'",
            SpiffeError::BadTrustDomain => {
                "trust domain must be lowercase letters, digits, '.', '-' or '_' (at most 255 characters)"
            }
            SpiffeError::NotWorkloadPath => "path must be '/ns/<namespace>/sa/<service-account>'",
            SpiffeError::BadSegment => {
                "namespace and service account must be non-empty DNS-style names (lowercase letters, digits, '-', '.')"
            }
        })
    }
}

/// Trust domain names as the SPIFFE spec allows them (lowercase only).
pub fn valid_trust_domain(td: &str) -> bool {
    !td.is_empty()
        && td.len() <= 255
        && td.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        })
}

/// Kubernetes namespace / service-account names (RFC 1123 subdomain charset).
fn valid_k8s_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
}

impl SpiffeId {
    pub fn parse(s: &str) -> Result<SpiffeId, SpiffeError> {
        let rest = s.strip_prefix("spiffe://").ok_or(SpiffeError::NotSpiffe)?;
        let (td, path) = rest.split_once('/').ok_or(SpiffeError::NotWorkloadPath)?;
        if !valid_trust_domain(td) {
            return Err(SpiffeError::BadTrustDomain);
        }
        let (namespace, service_account) = parse_ns_sa(path)?;
        Ok(SpiffeId::assemble(td, namespace, service_account))
    }

    fn assemble(td: &str, ns: &str, sa: &str) -> SpiffeId {
        let mut text = String::with_capacity(9 + td.len() + 4 + ns.len() + 4 + sa.len());
        text.push_str("spiffe://");
        text.push_str(td);
        let td_end = text.len();
        text.push_str("/ns/");
        let ns_start = text.len();
        text.push_str(ns);
        let ns_end = text.len();
        text.push_str("/sa/");
        let sa_start = text.len();
        text.push_str(sa);
        SpiffeId {
            text,
            td_end,
            ns: (ns_start, ns_end),
            sa_start,
        }
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn new(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<SpiffeId, SpiffeError> {
        if !valid_trust_domain(trust_domain) {
            return Err(SpiffeError::BadTrustDomain);
        }
        if !valid_k8s_name(namespace) || !valid_k8s_name(service_account) {
            return Err(SpiffeError::BadSegment);
        }
        Ok(SpiffeId::assemble(trust_domain, namespace, service_account))
    }

    pub fn trust_domain(&self) -> &str {
        self.text.get(9..self.td_end).unwrap_or_default()
    }
    pub fn namespace(&self) -> &str {
        self.text.get(self.ns.0..self.ns.1).unwrap_or_default()
    }
    pub fn service_account(&self) -> &str {
        self.text.get(self.sa_start..).unwrap_or_default()
    }
}

/// `ns/<ns>/sa/<sa>` with nothing before or after.
fn parse_ns_sa(path: &str) -> Result<(&str, &str), SpiffeError> {
    let mut it = path.split('/');
    match (it.next(), it.next(), it.next(), it.next(), it.next()) {
        (Some("ns"), Some(ns), Some("sa"), Some(sa), None) => {
            if valid_k8s_name(ns) && valid_k8s_name(sa) {
                Ok((ns, sa))
            } else {
                Err(SpiffeError::BadSegment)
            }
        }
        _ => Err(SpiffeError::NotWorkloadPath),
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Which trust domains a pattern accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DomainScope {
    /// The local trust domain or any alias (they name the same mesh).
    Local,
    /// Exactly this foreign trust domain.
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    Any,
    Namespace(String),
    Workload {
        namespace: String,
        service_account: String,
    },
}

/// A compiled principal pattern. See docs/policy.md "Principal patterns".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalPattern {
    scope: DomainScope,
    selector: Selector,
}

impl PrincipalPattern {
    /// `local` lists the local trust domain and its aliases.
    pub fn parse(pattern: &str, local: &[String]) -> Result<PrincipalPattern, String> {
        const FORMS: &str = "expected 'spiffe://<td>/ns/<ns>/sa/<sa>', 'spiffe://<td>/*', 'ns/<ns>/sa/<sa>', 'ns/<ns>/sa/*', 'ns/<ns>/*' or '*'";
        if pattern == "*" {
            return Ok(PrincipalPattern {
                scope: DomainScope::Local,
                selector: Selector::Any,
            });
        }
        let (scope, path) = if let Some(rest) = pattern.strip_prefix("spiffe://") {
            let (td, path) = rest
                .split_once('/')
                .ok_or_else(|| format!("'{pattern}': {FORMS}"))?;
            if !valid_trust_domain(td) {
                return Err(format!("'{pattern}': {}", SpiffeError::BadTrustDomain));
            }
            let scope = if local.iter().any(|l| l == td) {
                DomainScope::Local
            } else {
                DomainScope::Exact(td.to_string())
            };
            (scope, path)
        } else {
            (DomainScope::Local, pattern)
        };
        let segs: Vec<&str> = path.split('/').collect();
        let selector = match segs.as_slice() {
            ["*"] => Selector::Any,
            ["ns", ns, "*"] | ["ns", ns, "sa", "*"] if valid_k8s_name(ns) => {
                Selector::Namespace((*ns).to_string())
            }
            ["ns", ns, "sa", sa] if valid_k8s_name(ns) && valid_k8s_name(sa) => {
                Selector::Workload {
                    namespace: (*ns).to_string(),
                    service_account: (*sa).to_string(),
                }
            }
            _ => return Err(format!("'{pattern}': {FORMS}")),
        };
        Ok(PrincipalPattern { scope, selector })
    }

    /// `local` is the same list the pattern was compiled with.
    pub fn matches(&self, id: &SpiffeId, local: &[String]) -> bool {
        let domain_ok = match &self.scope {
            DomainScope::Local => local.iter().any(|d| d == id.trust_domain()),
            DomainScope::Exact(td) => td == id.trust_domain(),
        };
        domain_ok
            && match &self.selector {
                Selector::Any => true,
                Selector::Namespace(ns) => ns == id.namespace(),
                Selector::Workload {
                    namespace,
                    service_account,
                } => namespace == id.namespace() && service_account == id.service_account(),
            }
    }

    /// The exact workload this pattern names, if it names exactly one
    /// (used by `validate` to warn about shared identities).
    pub fn exact_workload(&self) -> Option<(&str, &str)> {
        match &self.selector {
            Selector::Workload {
                namespace,
                service_account,
            } => Some((namespace, service_account)),
            _ => None,
        }
    }
}

impl fmt::Display for PrincipalPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let td = match &self.scope {
            DomainScope::Local => "<local>",
            DomainScope::Exact(td) => td,
        };
        match &self.selector {
            Selector::Any => write!(f, "spiffe://{td}/*"),
            Selector::Namespace(ns) => write!(f, "spiffe://{td}/ns/{ns}/*"),
            Selector::Workload {
                namespace,
                service_account,
            } => {
                write!(f, "spiffe://{td}/ns/{namespace}/sa/{service_account}")
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn local() -> Vec<String> {
        vec!["cluster.local".into(), "old.example.com".into()]
    }

    #[test]
    fn parses_valid_ids_and_rejects_the_rest() {
        let ok = SpiffeId::parse("spiffe://cluster.local/ns/shop/sa/frontend").unwrap();
        assert_eq!(ok.trust_domain(), "cluster.local");
        assert_eq!(ok.namespace(), "shop");
        assert_eq!(ok.service_account(), "frontend");
        assert_eq!(ok.to_string(), "spiffe://cluster.local/ns/shop/sa/frontend");
        let bad = [
            ("", SpiffeError::NotSpiffe),
            ("http://cluster.local/ns/a/sa/b", SpiffeError::NotSpiffe),
            ("SPIFFE://cluster.local/ns/a/sa/b", SpiffeError::NotSpiffe),
            ("spiffe://cluster.local", SpiffeError::NotWorkloadPath),
            (
                "spiffe://Cluster.local/ns/a/sa/b",
                SpiffeError::BadTrustDomain,
            ),
            ("spiffe:///ns/a/sa/b", SpiffeError::BadTrustDomain),
            (
                "spiffe://cluster.local/ns/a/sa/b/extra",
                SpiffeError::NotWorkloadPath,
            ),
            ("spiffe://cluster.local/ns/a/sa/", SpiffeError::BadSegment),
            ("spiffe://cluster.local/ns//sa/b", SpiffeError::BadSegment),
            (
                "spiffe://cluster.local/ns/a/sa/b%2F",
                SpiffeError::BadSegment,
            ),
            ("spiffe://cluster.local/ns/a/sa/B", SpiffeError::BadSegment),
            (
                "spiffe://cluster.local/sa/b/ns/a",
                SpiffeError::NotWorkloadPath,
            ),
            (
                "spiffe://cluster.local/ns/a/sa/b?x",
                SpiffeError::BadSegment,
            ),
            (
                "spiffe://cluster.local//ns/a/sa/b",
                SpiffeError::NotWorkloadPath,
            ),
        ];
        for (input, want) in bad {
            assert_eq!(SpiffeId::parse(input), Err(want), "{input}");
        }
    }

    #[test]
    fn pattern_table() {
        let id = |s: &str| SpiffeId::parse(s).unwrap();
        let fe = id("spiffe://cluster.local/ns/shop/sa/frontend");
        let fe_alias = id("spiffe://old.example.com/ns/shop/sa/frontend");
        let be = id("spiffe://cluster.local/ns/shop/sa/backend");
        let other_ns = id("spiffe://cluster.local/ns/shopping/sa/frontend");
        let foreign = id("spiffe://partner.example/ns/shop/sa/frontend");
        // (pattern, id, expected)
        let cases = [
            ("spiffe://cluster.local/ns/shop/sa/frontend", &fe, true),
            (
                "spiffe://cluster.local/ns/shop/sa/frontend",
                &fe_alias,
                true,
            ),
            ("spiffe://cluster.local/ns/shop/sa/frontend", &be, false),
            (
                "spiffe://cluster.local/ns/shop/sa/frontend",
                &foreign,
                false,
            ),
            ("ns/shop/sa/frontend", &fe, true),
            ("ns/shop/sa/frontend", &fe_alias, true),
            ("ns/shop/sa/frontend", &foreign, false),
            ("ns/shop/sa/*", &be, true),
            ("ns/shop/sa/*", &other_ns, false),
            ("ns/shop/*", &fe, true),
            ("ns/shop/*", &other_ns, false),
            ("*", &fe, true),
            ("*", &foreign, false),
            ("spiffe://partner.example/*", &foreign, true),
            ("spiffe://partner.example/*", &fe, false),
            (
                "spiffe://partner.example/ns/shop/sa/frontend",
                &foreign,
                true,
            ),
            ("spiffe://partner.example/ns/shop/sa/frontend", &fe, false),
            ("spiffe://cluster.local/*", &fe_alias, true),
        ];
        for (pat, who, want) in cases {
            let p = PrincipalPattern::parse(pat, &local()).unwrap();
            assert_eq!(p.matches(who, &local()), want, "{pat} vs {who}");
        }
    }

    #[test]
    fn bad_patterns_are_refused_with_the_accepted_forms() {
        for pat in [
            "",
            "ns/shop",
            "ns/shop/sa",
            "ns/*/sa/x",
            "ns/shop/sa/fe*",
            "spiffe://cluster.local",
            "spiffe://cluster.local/ns/shop/sa/fe/x",
            "cluster.local/ns/a/sa/b",
            "**",
            "ns/Shop/*",
            "spiffe://UPPER/*",
        ] {
            let err = PrincipalPattern::parse(pat, &local()).unwrap_err();
            assert!(err.contains(&format!("'{pat}'")), "{pat}: {err}");
        }
    }
}
