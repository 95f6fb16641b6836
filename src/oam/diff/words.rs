//! Regions in words: who, what, how and the example, shared by the text,
//! Markdown and JSON renderings.

use super::callers::{AuthKind, Caller, CallerSpace, RoleFeature, TokenKind, NOW};
use super::component::{ComponentDiff, Example};
use super::eval::{Decided, Outcome};
use super::ops::{HostKind, OpSpace};
use super::regions::{Literal, Pair, PathRegion, What};

pub fn decided(d: &Decided) -> String {
    format!(
        "{} {} {}",
        if d.allowed { "allow" } else { "deny" },
        d.status,
        d.reason
    )
}

/// A region's change of decision, e.g. `deny 403 role_required -> allow
/// 200 role_granted`, or `deny (401 token_missing | 403 role_required) ->
/// deny 403 denied_by_rule` when only the reason changes, in several ways.
pub fn how(pairs: &[Pair]) -> String {
    let side = |pick: fn(&Pair) -> Decided| -> Vec<String> {
        let mut v: Vec<String> = pairs.iter().map(|p| decided(&pick(p))).collect();
        v.dedup();
        v.sort();
        v.dedup();
        v
    };
    let (olds, news) = (side(|p| p.0), side(|p| p.1));
    let group = |v: &[String]| {
        if v.len() == 1 {
            v.join("")
        } else {
            format!("({})", v.join(" | "))
        }
    };
    if olds.len() == 1 || news.len() == 1 {
        format!("{} -> {}", group(&olds), group(&news))
    } else {
        pairs
            .iter()
            .map(|(a, b)| format!("{} -> {}", decided(a), decided(b)))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

pub fn outcome(o: &Outcome) -> String {
    match &o.rule {
        Some(r) => format!("{}, rule '{r}'", decided(&o.decided)),
        None => decided(&o.decided),
    }
}

/// A role feature's name; a role defined on one side only, or defined
/// differently, says which side's definition it is.
pub fn role_label(f: &RoleFeature) -> String {
    match f.index {
        [Some(_), Some(_)] => f.name.clone(),
        [Some(_), None] => format!("{} (old)", f.name),
        _ => format!("{} (new)", f.name),
    }
}

fn side(k: usize) -> &'static str {
    if k == 0 {
        "old"
    } else {
        "new"
    }
}

/// The caller conditions of a region, e.g. `holds shop-admins; no token`.
pub fn who(callers: &CallerSpace, lits: &[Literal]) -> String {
    if lits.is_empty() {
        return "anyone".into();
    }
    let label = |i: &usize| callers.roles.get(*i).map(role_label).unwrap_or_default();
    let held: Vec<String> = lits
        .iter()
        .filter_map(|l| match l {
            Literal::Role(i, true) => Some(label(i)),
            _ => None,
        })
        .collect();
    let not_held: Vec<String> = lits
        .iter()
        .filter_map(|l| match l {
            Literal::Role(i, false) => Some(label(i)),
            _ => None,
        })
        .collect();
    let mut parts = Vec::new();
    if !held.is_empty() {
        parts.push(format!("holds {}", held.join(" and ")));
    }
    if !not_held.is_empty() {
        parts.push(format!("does not hold {}", not_held.join(" or ")));
    }
    let no_peer = lits.contains(&Literal::Peer(false));
    let no_token = lits.contains(&Literal::Token(TokenKind::None))
        || lits
            .iter()
            .any(|l| matches!(l, Literal::Auth(_, AuthKind::NoToken)));
    if no_peer && no_token {
        parts.push("no identity (no peer certificate, no token)".into());
    } else if no_peer {
        parts.push("no peer certificate".into());
    } else if lits.contains(&Literal::Peer(true)) {
        parts.push("a peer certificate".into());
    }
    if !no_token {
        parts.extend(token_phrase(callers, lits));
    } else if !no_peer {
        parts.push("no token".into());
    }
    parts.join("; ")
}

/// What a side did with the token, from the conditions on it.
fn judged(lits: &[Literal], k: usize) -> Option<String> {
    lits.iter()
        .find_map(|l| match l {
            Literal::Auth(j, AuthKind::Verified) if *j == k => Some("accepts".to_string()),
            Literal::Auth(j, AuthKind::Ignored) if *j == k => Some("ignores".to_string()),
            Literal::Auth(j, AuthKind::Refused(code)) if *j == k => {
                Some(format!("refuses ({code})"))
            }
            _ => None,
        })
        .or_else(|| {
            lits.iter().find_map(|l| match l {
                Literal::AuthOk(j, ok) if *j == k => {
                    Some(if *ok { "accepts" } else { "refuses" }.to_string())
                }
                _ => None,
            })
        })
}

fn token_phrase(callers: &CallerSpace, lits: &[Literal]) -> Option<String> {
    let issuer = lits.iter().find_map(|l| match l {
        Literal::Token(TokenKind::Issuer(i)) => Some(format!(
            "a token of {}",
            callers.issuers.get(*i).map_or("?", String::as_str)
        )),
        Literal::Token(TokenKind::Untrusted) => {
            Some("a token of an issuer neither revision trusts".to_string())
        }
        _ => None,
    });
    let said: Vec<String> = (0..2)
        .filter_map(|k| judged(lits, k).map(|v| format!("the {} revision {v}", side(k))))
        .collect();
    // A held role that needs a token rules out "no token".
    let has_token = lits.iter().any(|l| match l {
        Literal::Role(i, true) => callers.roles.get(*i).is_some_and(|f| f.needs_token),
        _ => false,
    });
    match issuer {
        Some(t) if said.is_empty() => Some(t),
        Some(t) => Some(format!("{t} that {}", said.join(" and "))),
        None if said.is_empty() => None,
        None if has_token
            || lits.iter().any(|l| {
                matches!(
                    l,
                    Literal::AuthOk(_, false)
                        | Literal::Auth(_, AuthKind::Refused(_) | AuthKind::Verified)
                )
            }) =>
        {
            Some(format!("a token that {}", said.join(" and ")))
        }
        None => Some(format!("no token, or a token that {}", said.join(" and "))),
    }
}

/// One set of operations, e.g. `GET, POST; any host; /orders/{*}`.
pub fn what(ops: &OpSpace, w: &What) -> String {
    format!(
        "{}; {}; {}",
        methods(ops, &w.methods),
        hosts(ops, &w.hosts),
        paths(ops, &w.paths)
    )
}

pub fn methods(ops: &OpSpace, set: &[usize]) -> String {
    if set.len() == ops.methods.len() {
        return "any method".into();
    }
    let has_other = set
        .iter()
        .any(|i| ops.methods.get(*i).is_some_and(|a| a.method.is_none()));
    if has_other {
        let missing: Vec<&str> = ops
            .methods
            .iter()
            .enumerate()
            .filter(|(i, _)| !set.contains(i))
            .filter_map(|(_, a)| a.method.as_deref())
            .collect();
        return format!("any method except {}", missing.join(", "));
    }
    let names: Vec<&str> = set
        .iter()
        .filter_map(|i| ops.methods.get(*i).and_then(|a| a.method.as_deref()))
        .collect();
    names.join(", ")
}

pub fn hosts(ops: &OpSpace, set: &[usize]) -> String {
    if set.len() == ops.hosts.len() {
        return "any host".into();
    }
    let inside = |d: &str, k: &HostKind| match k {
        HostKind::Exact(h) => h.len() > d.len() && h.ends_with(d),
        HostKind::Under(e) => e != d && e.ends_with(d),
        HostKind::Other => false,
    };
    let mut out = Vec::new();
    for i in set {
        let Some(a) = ops.hosts.get(*i) else { continue };
        out.push(match &a.kind {
            HostKind::Exact(h) => h.clone(),
            HostKind::Other => "any host no rule names".to_string(),
            HostKind::Under(d) => {
                let excluded: Vec<String> = ops
                    .hosts
                    .iter()
                    .enumerate()
                    .filter(|(j, b)| !set.contains(j) && inside(d, &b.kind))
                    .map(|(_, b)| match &b.kind {
                        HostKind::Under(e) => format!("*{e}"),
                        HostKind::Exact(h) => h.clone(),
                        HostKind::Other => String::new(),
                    })
                    .collect();
                if excluded.is_empty() {
                    format!("*{d}")
                } else {
                    format!("*{d} except {}", excluded.join(", "))
                }
            }
        });
    }
    out.join(", ")
}

pub fn paths(ops: &OpSpace, r: &PathRegion) -> String {
    let show = |list: &[usize]| -> Vec<String> {
        list.iter()
            .filter_map(|i| ops.path_patterns.get(*i).map(ToString::to_string))
            .collect()
    };
    let matching = show(&r.matching);
    let except = show(&r.except);
    let base = if matching.is_empty() {
        "any path".to_string()
    } else {
        matching.join(" and ")
    };
    if except.is_empty() {
        base
    } else if matching.is_empty() {
        format!("any path except {}", except.join(", "))
    } else {
        format!("{base} except {}", except.join(", "))
    }
}

/// The claims of an example token as compact JSON.
pub fn claims(c: &Caller) -> Option<String> {
    c.token
        .as_ref()
        .map(|t| serde_json::Value::Object(t.claims.clone()).to_string())
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '/' | '.' | '_' | '-' | ':' | '@' | '%' | '~' | '+' | ',')
        });
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `oam-authz explain` arguments reproducing an example (after the file),
/// when `explain --claims` can: it takes claims as verified, so it cannot
/// show a difference in token verification (audience, lifetime, issuer).
pub fn explain_args(d: &ComponentDiff, e: &Example) -> Option<String> {
    let refused = |o: &Outcome| {
        !o.decided.allowed && o.decided.status == 401 && o.decided.reason != "token_missing"
    };
    if !d.explainable || (e.caller.token.is_some() && (refused(&e.old) || refused(&e.new))) {
        return None;
    }
    let mut out = vec![format!("--component {}", d.component)];
    if let Some(p) = &e.caller.peer {
        out.push(format!("--principal {p}"));
    }
    if let Some(c) = claims(&e.caller) {
        out.push(format!("--claims {}", shell_quote(&c)));
    }
    out.push(format!(
        "--method {} --host {} --path {} --now {NOW}",
        e.method,
        e.host,
        shell_quote(&e.path)
    ));
    Some(out.join(" "))
}
