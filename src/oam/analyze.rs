//! Static analysis of a compiled component policy: unreachable rules and
//! identities shared by several components.
//!
//! Coverage is decided conservatively: a rule is reported as unreachable only
//! when every request it matches is certainly decided by another rule first.

use super::finding::{Finding, Scope};
use super::load::{Application, Component};
use super::lower::{is_component_ref, Lowered, PathMap};
use crate::config::Effect;
use crate::pattern::hostname::HostPattern;
use crate::pattern::path::{PathPattern, Seg};
use crate::pattern::spiffe::PrincipalPattern;
use crate::policy::{Policy, Rule, Subjects};

fn subjects_cover(i: &Subjects, j: &Subjects) -> bool {
    match (i, j) {
        (Subjects::Everyone | Subjects::Public, _) => true,
        (Subjects::Roles(a), Subjects::Roles(b)) => b.iter().all(|r| a.contains(r)),
        (Subjects::Roles(_), _) => false,
    }
}

fn list_covers<T>(i: &Option<Vec<T>>, j: &Option<Vec<T>>, covers: impl Fn(&T, &T) -> bool) -> bool {
    match (i, j) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => b.iter().all(|y| a.iter().any(|x| covers(x, y))),
    }
}

fn host_covers(i: &HostPattern, j: &HostPattern) -> bool {
    match (i, j) {
        (HostPattern::Exact(a), HostPattern::Exact(b)) => a == b,
        (HostPattern::Subdomain(_), HostPattern::Exact(b)) => i.matches(b),
        (HostPattern::Subdomain(a), HostPattern::Subdomain(b)) => b.ends_with(a.as_str()),
        (HostPattern::Exact(_), HostPattern::Subdomain(_)) => false,
    }
}

fn segs_cover(a: &[Seg], b: &[Seg]) -> bool {
    match (a.split_first(), b.split_first()) {
        (None, None) => true,
        // `{**}` is last and matches one or more segments; b still has at
        // least one, and each of b's remaining segments matches at least one.
        (Some((Seg::Rest, _)), Some(_)) => true,
        (Some((Seg::One, ar)), Some((Seg::One | Seg::Lit(_), br))) => segs_cover(ar, br),
        (Some((Seg::Lit(x), ar)), Some((Seg::Lit(y), br))) if x == y => segs_cover(ar, br),
        _ => false,
    }
}

/// Does every canonical path matched by `j` also match `i`?
pub fn path_covers(i: &PathPattern, j: &PathPattern) -> bool {
    use PathPattern::*;
    match (i, j) {
        (Any, _) => true,
        // Every canonical path starts with the literal prefix of `j`.
        (Prefix(p), _) => {
            p == "/"
                || j.literal_prefix()
                    .is_some_and(|lp| lp.starts_with(p.as_str()))
        }
        (Exact(e), Exact(x)) => e == x,
        (Exact(e), Template(segs)) => {
            segs.iter().all(|s| matches!(s, Seg::Lit(_)))
                && j.literal_prefix().as_deref() == Some(e)
        }
        (Suffix(s), Exact(x)) => x.ends_with(s.as_str()),
        (Suffix(s), Suffix(t)) => t.ends_with(s.as_str()),
        (Suffix(s), Template(segs)) => match segs.last() {
            Some(Seg::Lit(l)) => format!("/{l}").ends_with(s.as_str()),
            _ => false,
        },
        (Template(_), Exact(x)) => i.matches(x),
        (Template(a), Template(b)) => segs_cover(a, b),
        _ => false,
    }
}

/// Does rule `i` match every request (method, host, path) that `j` matches?
pub fn operation_covers(i: &Rule, j: &Rule) -> bool {
    let any_path = Some(vec![PathPattern::Any]);
    let j_paths = if j.paths.is_some() {
        &j.paths
    } else {
        &any_path
    };
    list_covers(&i.methods, &j.methods, |a, b| a == b)
        && list_covers(&i.hosts, &j.hosts, host_covers)
        && list_covers(&i.paths, j_paths, path_covers)
}

fn effect_name(e: Effect) -> &'static str {
    match e {
        Effect::Allow => "allow",
        Effect::Deny => "deny",
    }
}

/// Rules that can never decide: an allow rule covered by a deny rule (deny
/// rules win wherever they are) or by an earlier allow rule for the same
/// callers; a deny rule covered by an earlier deny rule.
pub fn unreachable_rules(
    policy: &Policy,
    paths: &PathMap,
    scope: &Scope,
    findings: &mut Vec<Finding>,
) {
    for (jx, j) in policy.rules.iter().enumerate() {
        let shadow = policy.rules.iter().enumerate().find(|(ix, i)| {
            *ix != jx
                && match (i.effect, j.effect) {
                    (Effect::Deny, Effect::Allow) => true,
                    (Effect::Deny, Effect::Deny) | (Effect::Allow, Effect::Allow) => ix < &jx,
                    (Effect::Allow, Effect::Deny) => false,
                }
                && subjects_cover(&i.subjects, &j.subjects)
                && operation_covers(i, j)
        });
        let Some((ix, i)) = shadow else { continue };
        let why = match (i.effect, j.effect) {
            (Effect::Deny, Effect::Allow) => format!(
                "deny rule '{}' (rules[{ix}]) matches every request it matches, for the same callers, and deny rules win wherever they are",
                i.name
            ),
            _ => format!(
                "the earlier {} rule '{}' (rules[{ix}]) matches every request it matches, for the same callers",
                effect_name(i.effect),
                i.name
            ),
        };
        let path = paths.rules.get(jx).cloned().unwrap_or_default();
        findings.push(Finding::error(
            scope.clone(),
            path,
            format!(
                "{} rule '{}' is unreachable: {why}; remove it or narrow the other rule",
                effect_name(j.effect),
                j.name
            ),
        ));
    }
}

/// Do two optional lists (absent = any) share a value?
fn lists_overlap<T>(
    a: &Option<Vec<T>>,
    b: &Option<Vec<T>>,
    overlap: impl Fn(&T, &T) -> bool,
) -> bool {
    match (a, b) {
        (None, _) | (_, None) => true,
        (Some(a), Some(b)) => a.iter().any(|x| b.iter().any(|y| overlap(x, y))),
    }
}

fn hosts_overlap(a: &HostPattern, b: &HostPattern) -> bool {
    host_covers(a, b) || host_covers(b, a)
}

/// The paths `P` and `P/` a deny pattern `P/{**}` leaves open (`{**}` is
/// one or more segments), when `P` is literal.
fn rest_gaps(pattern: &PathPattern) -> Vec<String> {
    let PathPattern::Template(segs) = pattern else {
        return Vec::new();
    };
    let Some((Seg::Rest, lits)) = segs.split_last() else {
        return Vec::new();
    };
    let mut base = String::new();
    for seg in lits {
        match seg {
            Seg::Lit(l) => {
                base.push('/');
                base.push_str(l);
            }
            _ => return Vec::new(),
        }
    }
    if base.is_empty() {
        return vec!["/".to_string()];
    }
    let slash = format!("{base}/");
    vec![base, slash]
}

fn rule_matches_path(r: &Rule, path: &str) -> bool {
    r.paths
        .as_ref()
        .is_none_or(|ps| ps.iter().any(|p| p.matches(path)))
}

/// Warn when a deny rule `P/{**}` leaves `P` and `P/` to an allow rule:
/// `deny /orders/internal/{**}` with `allow /orders/*` lets
/// `/orders/internal/` through (as Istio's `/orders/internal/*` would).
pub fn deny_gaps(policy: &Policy, paths: &PathMap, scope: &Scope, findings: &mut Vec<Finding>) {
    let rules = &policy.rules;
    for (dx, deny) in rules.iter().enumerate() {
        if deny.effect != Effect::Deny {
            continue;
        }
        for (pi, pattern) in deny.paths.iter().flatten().enumerate() {
            let open: Vec<String> = rest_gaps(pattern)
                .into_iter()
                .filter(|gap| {
                    // Denied anyway by a deny rule at least as wide here?
                    !rules.iter().any(|o| {
                        o.effect == Effect::Deny
                            && rule_matches_path(o, gap)
                            && subjects_cover(&o.subjects, &deny.subjects)
                            && list_covers(&o.methods, &deny.methods, |a, b| a == b)
                            && list_covers(&o.hosts, &deny.hosts, host_covers)
                    })
                })
                .collect();
            let allowed: Vec<(usize, &Rule, Vec<&String>)> = rules
                .iter()
                .enumerate()
                .filter(|(_, a)| {
                    a.effect == Effect::Allow
                        && lists_overlap(&a.methods, &deny.methods, |x, y| x == y)
                        && lists_overlap(&a.hosts, &deny.hosts, hosts_overlap)
                })
                .map(|(ax, a)| {
                    (
                        ax,
                        a,
                        open.iter().filter(|g| rule_matches_path(a, g)).collect(),
                    )
                })
                .filter(|(_, _, gaps): &(usize, &Rule, Vec<&String>)| !gaps.is_empty())
                .collect();
            let Some((ax, allow, gaps)) = allowed.first() else {
                continue;
            };
            let quoted: Vec<String> = gaps.iter().map(|g| format!("'{g}'")).collect();
            let base = paths.rules.get(dx).cloned().unwrap_or_default();
            findings.push(Finding::warning(
                scope.clone(),
                format!("{base}.paths[{pi}]"),
                format!(
                    "deny rule '{}' path '{pattern}' matches only below its prefix ('{{**}}' is one or more segments), not {}; allow rule '{}' (rules[{ax}]) allows {}; add {} to the deny rule's paths if {} must be denied too",
                    deny.name,
                    quoted.join(" or "),
                    allow.name,
                    if gaps.len() == 1 { "it" } else { "them" },
                    quoted.join(" and "),
                    if gaps.len() == 1 { "it" } else { "they" },
                ),
            ));
        }
    }
}

/// The components of `app` that run as principal `p` (written as a
/// component name or a pattern naming one workload of the app's namespace).
fn sharing<'a>(app: &'a Application, p: &str, domains: &[String]) -> Vec<&'a Component> {
    let sa = if is_component_ref(p) {
        app.component(p).map(|c| c.service_account.clone())
    } else {
        PrincipalPattern::parse(p, domains)
            .ok()
            .as_ref()
            .and_then(|pat| {
                pat.exact_workload()
                    .map(|(ns, sa)| (ns.to_string(), sa.to_string()))
            })
            .filter(|(ns, _)| *ns == app.namespace)
            .map(|(_, sa)| sa)
    };
    match sa {
        Some(sa) => app
            .components
            .iter()
            .filter(|o| o.service_account == sa)
            .collect(),
        None => Vec::new(),
    }
}

/// Warn when a rule grants by an identity that several components share
/// (components run as `default` unless given a service account).
pub fn shared_identities(
    app: &Application,
    lowered: &Lowered<'_>,
    policy: &Policy,
    component_scope: &Scope,
    identity_scope: &Scope,
    findings: &mut Vec<Finding>,
) {
    let (origin, config, paths) = (&lowered.origin, &lowered.config, &lowered.paths);
    let mut domains = vec![config.trust_domain.clone()];
    domains.extend(config.trust_domain_aliases.iter().cloned());
    for (k, role) in origin.iter().enumerate() {
        let used = policy.rules.iter().any(|r| match &r.subjects {
            Subjects::Roles(rs) => rs.contains(&k),
            _ => false,
        });
        let (Some(list), true) = (&role.principals, used) else {
            continue;
        };
        let rpath = paths.roles.get(k).cloned().unwrap_or_default();
        let scope = if rpath.starts_with(&paths.root) {
            component_scope.clone()
        } else {
            identity_scope.clone()
        };
        for (j, p) in list.iter().enumerate() {
            let sharing = sharing(app, p, &domains);
            if sharing.len() < 2 {
                continue;
            }
            let sa = sharing
                .first()
                .map(|c| c.service_account.clone())
                .unwrap_or_default();
            let names: Vec<&str> = sharing.iter().map(|c| c.name.as_str()).collect();
            let fix = if is_component_ref(p) {
                format!(
                    "give '{p}' its own service account (the service-account trait or properties.serviceAccountName)"
                )
            } else {
                "give each of them its own service account".to_string()
            };
            findings.push(Finding::warning(
                scope.clone(),
                format!("{rpath}.principals[{j}]"),
                format!(
                    "principal '{p}' is spiffe://{}/ns/{}/sa/{sa}, an identity shared by components {}: all of them hold role '{}'; {fix}",
                    config.trust_domain,
                    app.namespace,
                    names.join(", "),
                    role.name
                ),
            ));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::path_covers;
    use crate::pattern::path::PathPattern;

    #[test]
    fn path_coverage_table() {
        let cases = [
            ("*", "/a", true),
            ("/*", "*.png", true),
            ("/api/*", "/api/v1/{*}", true),
            ("/api/*", "/api", false),
            ("/api/*", "/apix", false),
            ("/api", "/api", true),
            ("/api/{*}", "/api/v1", true),
            ("/api/{*}", "/api/{*}", true),
            ("/api/{*}", "/api/{**}", false),
            ("/api/{**}", "/api/{*}/x", true),
            ("/api/{**}", "/api/*", false),
            ("*.png", "/img/a.png", true),
            ("*.png", "/img/{*}/a.png", true),
            ("*.png", "/img/{*}", false),
            ("/a", "/b", false),
            ("/a/{*}", "/a/b/c", false),
        ];
        for (i, j, want) in cases {
            let (pi, pj) = (
                PathPattern::parse(i).unwrap(),
                PathPattern::parse(j).unwrap(),
            );
            assert_eq!(path_covers(&pi, &pj), want, "{i} covers {j}");
        }
    }
}
