//! A diff as text (people), Markdown (a merge-request comment) and JSON
//! (tools). Every rendering shows the same regions, notes and caveats.

use super::callers::CallerSpace;
use super::component::{ComponentDiff, Example, Found, Presence, Report};
use super::ops::{HostKind, OpSpace};
use super::regions::{Change, Literal};
use super::words::{
    claims, explain_args, hosts, how, methods, outcome, paths, role_label, what, who,
};
use serde_json::{json, Value};
use std::fmt::Write as _;

fn verdict(r: &Report) -> &'static str {
    match r.change() {
        None => "no decision changes",
        Some(Change::Widened) => "access widened",
        Some(Change::Narrowed) => "access narrowed, none widened",
        Some(Change::Changed) => "decisions changed (status or reason), no access widened",
    }
}

fn counts(d: &ComponentDiff) -> String {
    let n = |c: Change| d.regions.iter().filter(|f| f.region.change == c).count();
    let mut parts = Vec::new();
    for c in [Change::Widened, Change::Narrowed, Change::Changed] {
        if n(c) > 0 {
            parts.push(format!("{} {}", n(c), c.word()));
        }
    }
    format!(
        "{} region{} ({})",
        d.regions.len(),
        if d.regions.len() == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// The role features a component's regions name.
fn named_roles(d: &ComponentDiff) -> Vec<usize> {
    let mut out: Vec<usize> = d
        .regions
        .iter()
        .flat_map(|f| f.region.who.iter())
        .filter_map(|l| match l {
            Literal::Role(i, _) => Some(*i),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn example_line(e: &Example) -> String {
    let mut s = format!("{} {} (host {})", e.method, e.path, e.host);
    match &e.caller.peer {
        Some(p) => {
            let _ = write!(s, ", peer {p}");
        }
        None => s.push_str(", no peer certificate"),
    }
    match claims(&e.caller) {
        Some(c) => {
            let _ = write!(s, ", token claims {c}");
        }
        None => s.push_str(", no token"),
    }
    s
}

/// The regions where only a token refusal's reason changes, in one line.
fn folded(d: &ComponentDiff) -> Option<String> {
    let list: Vec<String> = d
        .regions
        .iter()
        .filter(|f| f.region.refusal_reason_only())
        .flat_map(|f| {
            f.region
                .pairs
                .iter()
                .map(|(a, b)| format!("{} -> {}", a.reason, b.reason))
        })
        .collect();
    let mut kinds = list.clone();
    kinds.sort();
    kinds.dedup();
    (!list.is_empty()).then(|| {
        format!(
            "+ {} region{} where a token both revisions refuse (401) is refused for another reason ({}); --output json lists them",
            list.len(),
            if list.len() == 1 { "" } else { "s" },
            kinds.join(", ")
        )
    })
}

fn text_region(
    out: &mut String,
    n: usize,
    d: &ComponentDiff,
    f: &Found,
    ops: &OpSpace,
    callers: &CallerSpace,
) {
    let r = &f.region;
    let e = &f.example;
    let _ = writeln!(out, "  [{n}] {}: {}", r.change.word(), how(&r.pairs));
    let _ = writeln!(out, "      who:     {}", who(callers, &r.who));
    for (i, (w, _)) in r.what.iter().enumerate() {
        let _ = writeln!(
            out,
            "      {}{}",
            if i == 0 { "what:    " } else { "         " },
            what(ops, w)
        );
    }
    let _ = writeln!(out, "      example: {}", example_line(e));
    let _ = writeln!(out, "               old: {}", outcome(&e.old));
    let _ = writeln!(out, "               new: {}", outcome(&e.new));
    if !e.confirmed {
        let _ = writeln!(out, "               NOT CONFIRMED: re-running the example gave other decisions (a bug: please report it)");
    }
    if let Some(args) = explain_args(d, e) {
        let _ = writeln!(out, "      explain: {args}");
    }
}

fn text_component(out: &mut String, d: &ComponentDiff) {
    let name = format!("{}/{}", d.application, d.component);
    if d.presence == Presence::Both && d.regions.is_empty() && d.notes.is_empty() {
        let _ = writeln!(out, "component {name}: no change");
        return;
    }
    match d.presence {
        Presence::Both => {
            let _ = writeln!(out, "component {name}: {}", counts(d));
        }
        _ => {
            let _ = writeln!(out, "component {name}:");
        }
    }
    for n in &d.notes {
        let _ = writeln!(out, "  note: {}", n.text);
    }
    for c in &d.caveats {
        let _ = writeln!(out, "  not exact: {c}");
    }
    let (Some(ops), Some(callers)) = (&d.ops, &d.callers) else {
        return;
    };
    let roles = named_roles(d);
    if !roles.is_empty() {
        let _ = writeln!(out, "  roles:");
        for i in roles {
            if let Some(f) = callers.roles.get(i) {
                let _ = writeln!(out, "    {}: {}", role_label(f), f.description);
            }
        }
    }
    let shown = d.regions.iter().filter(|f| !f.region.refusal_reason_only());
    for (n, f) in shown.enumerate() {
        text_region(out, n + 1, d, f, ops, callers);
    }
    if let Some(line) = folded(d) {
        let _ = writeln!(out, "  {line}");
    }
}

pub fn text(r: &Report) -> String {
    let mut out = format!("oam-authz diff {} -> {}\n", r.old, r.new);
    for d in &r.components {
        text_component(&mut out, d);
    }
    let _ = writeln!(out, "result: {} (exit {})", verdict(r), r.exit_code());
    out
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn md_component(out: &mut String, d: &ComponentDiff) {
    let name = format!("{}/{}", d.application, d.component);
    let (Some(ops), Some(callers)) = (&d.ops, &d.callers) else {
        let _ = writeln!(out, "#### `{name}`\n");
        for n in &d.notes {
            let _ = writeln!(out, "- {}", md_cell(&n.text));
        }
        out.push('\n');
        return;
    };
    if d.regions.is_empty() && d.notes.is_empty() {
        return;
    }
    let _ = writeln!(out, "#### `{name}`: {}\n", counts(d));
    for n in &d.notes {
        let _ = writeln!(out, "- note: {}", md_cell(&n.text));
    }
    for c in &d.caveats {
        let _ = writeln!(out, "- not exact: {}", md_cell(c));
    }
    if !d.notes.is_empty() || !d.caveats.is_empty() {
        out.push('\n');
    }
    if !d.regions.is_empty() {
        out.push_str("| change | who | what (methods; hosts; paths) | old → new | example |\n|---|---|---|---|---|\n");
    }
    for f in d.regions.iter().filter(|f| !f.region.refusal_reason_only()) {
        let r = &f.region;
        let _ = writeln!(
            out,
            "| **{}** | {} | {} | {} | `{} {}` |",
            r.change.word(),
            md_cell(&who(callers, &r.who)),
            r.what
                .iter()
                .map(|(w, _)| format!("`{}`", md_cell(&what(ops, w))))
                .collect::<Vec<_>>()
                .join("<br>"),
            md_cell(&how(&r.pairs).replace(" -> ", " → ")),
            f.example.method,
            md_cell(&f.example.path),
        );
    }
    let roles = named_roles(d);
    if !roles.is_empty() || !d.regions.is_empty() {
        out.push_str("\n<details><summary>roles and examples</summary>\n\n");
        for i in roles {
            if let Some(f) = callers.roles.get(i) {
                let _ = writeln!(out, "- `{}`: {}", role_label(f), md_cell(&f.description));
            }
        }
        for (n, f) in d
            .regions
            .iter()
            .filter(|f| !f.region.refusal_reason_only())
            .enumerate()
        {
            let _ = writeln!(
                out,
                "- example {}: {} (old: {}; new: {})",
                n + 1,
                md_cell(&example_line(&f.example)),
                md_cell(&outcome(&f.example.old)),
                md_cell(&outcome(&f.example.new))
            );
        }
        out.push_str("\n</details>\n");
    }
    out.push('\n');
    if let Some(line) = folded(d) {
        let _ = writeln!(out, "{}\n", md_cell(&line));
    }
}

pub fn markdown(r: &Report) -> String {
    let mut out = format!(
        "### oam-authz diff: {}\n\n`{}` → `{}` (exit {})\n\n",
        verdict(r),
        r.old,
        r.new,
        r.exit_code()
    );
    for d in &r.components {
        md_component(&mut out, d);
    }
    let same: Vec<String> = r
        .components
        .iter()
        .filter(|d| d.presence == Presence::Both && d.regions.is_empty() && d.notes.is_empty())
        .map(|d| format!("`{}/{}`", d.application, d.component))
        .collect();
    if !same.is_empty() {
        let _ = writeln!(out, "No change: {}.", same.join(", "));
    }
    out
}

fn json_outcome(o: &super::eval::Outcome) -> Value {
    json!({
        "decision": if o.decided.allowed { "allow" } else { "deny" },
        "status": o.decided.status,
        "reason": o.decided.reason,
        "rule": o.rule,
    })
}

fn json_decided(d: &super::eval::Decided) -> Value {
    json!({"decision": if d.allowed { "allow" } else { "deny" }, "status": d.status, "reason": d.reason})
}

fn json_region(d: &ComponentDiff, f: &Found, ops: &OpSpace, callers: &CallerSpace) -> Value {
    let r = &f.region;
    let e = &f.example;
    let pats = |list: &[usize]| -> Vec<String> {
        list.iter()
            .filter_map(|i| ops.path_patterns.get(*i).map(ToString::to_string))
            .collect()
    };
    let roles = |held: bool| -> Vec<String> {
        r.who
            .iter()
            .filter_map(|l| match l {
                Literal::Role(i, v) if *v == held => callers.roles.get(*i).map(role_label),
                _ => None,
            })
            .collect()
    };
    json!({
        "change": r.change.word(),
        "how": how(&r.pairs),
        "pairs": r.pairs.iter().map(|(a, b)| json!({"old": json_decided(a), "new": json_decided(b)})).collect::<Vec<_>>(),
        "who": {"text": who(callers, &r.who), "holds": roles(true), "does_not_hold": roles(false)},
        "what": r.what.iter().map(|(w, _)| json!({
            "methods": {
                "text": methods(ops, &w.methods),
                "named": w.methods.iter().filter_map(|i| ops.methods.get(*i).and_then(|a| a.method.clone())).collect::<Vec<_>>(),
                "and_unnamed": w.methods.iter().any(|i| ops.methods.get(*i).is_some_and(|a| a.method.is_none())),
            },
            "hosts": {
                "text": hosts(ops, &w.hosts),
                "classes": w.hosts.iter().filter_map(|i| ops.hosts.get(*i)).map(|a| match &a.kind {
                    HostKind::Exact(h) => json!({"host": h}),
                    HostKind::Under(d) => json!({"subdomains_of": d.trim_start_matches('.')}),
                    HostKind::Other => json!({"unnamed": true}),
                }).collect::<Vec<_>>(),
            },
            "paths": {"text": paths(ops, &w.paths), "matching": pats(&w.paths.matching), "except": pats(&w.paths.except)},
        })).collect::<Vec<_>>(),
        "example": {
            "principal": e.caller.peer.as_ref().map(ToString::to_string),
            "claims": e.caller.token.as_ref().map(|t| Value::Object(t.claims.clone())),
            "method": e.method,
            "host": e.host,
            "path": e.path,
            "now": super::callers::NOW,
            "old": json_outcome(&e.old),
            "new": json_outcome(&e.new),
            "confirmed": e.confirmed,
            "explain_args": explain_args(d, e),
        },
    })
}

fn json_component(d: &ComponentDiff) -> Value {
    let regions: Vec<Value> = match (&d.ops, &d.callers) {
        (Some(ops), Some(callers)) => d
            .regions
            .iter()
            .map(|f| json_region(d, f, ops, callers))
            .collect(),
        _ => Vec::new(),
    };
    let roles: Vec<Value> = d
        .callers
        .iter()
        .flat_map(|c| named_roles(d).into_iter().filter_map(|i| c.roles.get(i)))
        .map(|f| json!({"role": role_label(f), "definition": f.description}))
        .collect();
    json!({
        "application": d.application,
        "component": d.component,
        "presence": match d.presence { Presence::Both => "both", Presence::OnlyOld => "old", Presence::OnlyNew => "new" },
        "change": d.change().map(Change::word),
        "regions": regions,
        "roles": roles,
        "notes": d.notes.iter().map(|n| json!({"text": n.text, "change": n.effect.map(Change::word)})).collect::<Vec<_>>(),
        "not_exact": d.caveats,
    })
}

pub fn json(r: &Report) -> String {
    let v = json!({
        "old": r.old,
        "new": r.new,
        "change": r.change().map(Change::word),
        "exit_code": r.exit_code(),
        "components": r.components.iter().map(json_component).collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}
