//! The replay report for people (text) and tools (`--output json`).

use super::event::{Event, Outcome};
use super::report::{ComponentReplay, Report};
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Requests listed per group in text (JSON lists them all).
const SHOWN: usize = 10;

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {one}s")
    }
}

fn request_line(e: &Event) -> String {
    let mut s = format!("{} {} {}", e.method, e.host, e.path);
    if let Some(p) = &e.peer {
        let _ = write!(s, "  peer {p}");
    }
    if let Some(sub) = &e.sub {
        let _ = write!(s, "  sub {sub}");
    }
    if !e.request_id.is_empty() {
        let _ = write!(s, "  request {}", e.request_id);
    }
    s
}

fn list(out: &mut String, events: &[Event]) {
    for e in events.iter().take(SHOWN) {
        let _ = writeln!(out, "      {}", request_line(e));
    }
    if events.len() > SHOWN {
        let _ = writeln!(
            out,
            "      … {} more (--output json lists them all)",
            events.len() - SHOWN
        );
    }
}

fn component_text(out: &mut String, c: &ComponentReplay) {
    let changed: usize = c.changed.values().map(Vec::len).sum();
    let undecidable: usize = c.undecidable.values().map(Vec::len).sum();
    let _ = writeln!(
        out,
        "component {}/{} (policy {}): {}, {} unchanged, {} changed, {} undecidable",
        c.application,
        c.component,
        c.version,
        plural(c.events, "event"),
        c.unchanged,
        changed,
        undecidable
    );
    let mut last = None;
    for ((kind, old, new), events) in &c.changed {
        if last != Some(*kind) {
            let n: usize = c
                .changed
                .iter()
                .filter(|((k, _, _), _)| k == kind)
                .map(|(_, v)| v.len())
                .sum();
            let (word, counter) = kind.words();
            let _ = writeln!(
                out,
                "  {word} ({}): {}",
                counter.replace('_', " "),
                plural(n, "request")
            );
            last = Some(*kind);
        }
        let _ = writeln!(
            out,
            "    {} -> {}: {}",
            old.describe(),
            new.describe(),
            events.len()
        );
        list(out, events);
    }
    if undecidable > 0 {
        let _ = writeln!(out, "  undecidable: {}", plural(undecidable, "request"));
        for (why, events) in &c.undecidable {
            let _ = writeln!(out, "    {}: {}", why.describe(), events.len());
            list(out, events);
        }
    }
}

/// The report for people.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    let total: usize =
        r.components.iter().map(|c| c.events).sum::<usize>() + r.unmatched.values().sum::<usize>();
    let _ = writeln!(
        out,
        "replay of {} under {}: {}",
        r.log_label,
        r.policy_label,
        plural(total, "event")
    );
    for c in &r.components {
        component_text(&mut out, c);
    }
    for (policy, n) in &r.unmatched {
        let _ = writeln!(
            out,
            "{} of policy {policy}: no component of {} (give --component)",
            plural(*n, "event"),
            r.policy_label
        );
    }
    if r.unreadable > 0 {
        let _ = writeln!(
            out,
            "{} with the audit prefix but no readable event",
            plural(r.unreadable, "line")
        );
    }
    let undecidable: usize = r
        .components
        .iter()
        .flat_map(|c| c.undecidable.values())
        .map(Vec::len)
        .sum();
    let verdict = match r.change() {
        None => "no decision changes".to_string(),
        Some(k) => format!("decisions change (first: {})", k.words().0),
    };
    // Undecidable events were not replayed: the verdict covers the others.
    let _ = match undecidable {
        0 => writeln!(out, "{verdict}"),
        n => writeln!(
            out,
            "{verdict} among the decidable events; {} undecidable",
            plural(n, "event")
        ),
    };
    out
}

fn outcome_json(o: &Outcome) -> Value {
    json!({"decision": if o.allowed { "allow" } else { "deny" }, "status": o.status, "reason": o.reason, "rule": o.rule})
}

fn request_json(e: &Event) -> Value {
    json!({"request_id": e.request_id, "method": e.method, "host": e.host, "path": e.path, "peer": e.peer, "sub": e.sub})
}

/// The report for tools.
pub fn json(r: &Report) -> String {
    let components: Vec<Value> = r
        .components
        .iter()
        .map(|c| {
            let changes: Vec<Value> = c
                .changed
                .iter()
                .map(|((kind, old, new), events)| {
                    let (word, counter) = kind.words();
                    json!({
                        "change": word,
                        "counter": counter,
                        "old": outcome_json(old),
                        "new": outcome_json(new),
                        "count": events.len(),
                        "requests": events.iter().map(request_json).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let undecidable: Vec<Value> = c
                .undecidable
                .iter()
                .map(|(why, events)| {
                    json!({
                        "why": why.describe(),
                        "count": events.len(),
                        "requests": events.iter().map(request_json).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({
                "application": c.application,
                "component": c.component,
                "policy_version": c.version,
                "events": c.events,
                "unchanged": c.unchanged,
                "changes": changes,
                "undecidable": undecidable,
            })
        })
        .collect();
    let v = json!({
        "policy": r.policy_label,
        "log": r.log_label,
        "change": r.change().map(|k| k.words().0),
        "exit_code": r.exit_code(),
        "components": components,
        "unmatched": r.unmatched,
        "unreadable": r.unreadable,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}
