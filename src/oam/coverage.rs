//! Policy-test coverage (`oam-authz test --coverage`), from the traces the
//! cases' evaluations already return: which rules and which role
//! conditions the cases exercise, and which none does (like `opa test
//! --coverage`). See docs/cli.md "oam-authz test".
//!
//! A rule is covered when it decided at least one case (allowed or denied
//! it, or was the rule whose role the caller lacked). A role condition (its
//! principal patterns, its token provider, each claim condition) is covered
//! when the cases saw it both met and failed where a rule covering the
//! request named the role: a condition never seen failing is untested in
//! the way that matters for access control.

use super::cases::Evaluated;
use super::compile::CompiledComponent;
use crate::engine::trace::{Condition, TokenCheck};
use crate::policy::Subjects;
use serde_json::{json, Value};
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Rule,
    Condition,
}

#[derive(Debug, Clone)]
pub struct Item {
    pub component: String,
    pub kind: Kind,
    /// e.g. `rule 'health'`, `role 'admins': claim groups contains "admins"`.
    pub name: String,
    /// Where it is in the OAM application.
    pub path: String,
    /// Cases (indices) that met the condition, or that the rule decided.
    pub met: Vec<usize>,
    /// Cases where the condition failed (conditions only).
    pub failed: Vec<usize>,
}

impl Item {
    pub fn covered(&self) -> bool {
        match self.kind {
            Kind::Rule => !self.met.is_empty(),
            Kind::Condition => !self.met.is_empty() && !self.failed.is_empty(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Coverage {
    pub items: Vec<Item>,
}

/// One role's conditions, in the order the engine checks (and traces) them.
fn role_items(c: &CompiledComponent, r: usize, out: &mut Vec<Item>) {
    let Some(role) = c.policy.roles.get(r) else {
        return;
    };
    let base = c.paths.roles.get(r).cloned().unwrap_or_default();
    let local = c.policy.local_domains.first().map_or("", String::as_str);
    let mut push = |name: String, path: String| {
        out.push(Item {
            component: c.component.clone(),
            kind: Kind::Condition,
            name: format!("role '{}': {name}", role.name),
            path,
            met: Vec::new(),
            failed: Vec::new(),
        });
    };
    if let Some(ps) = &role.principals {
        let list: Vec<String> = ps
            .iter()
            .map(|p| p.to_string().replace("<local>", local))
            .collect();
        push(
            format!("principal one of [{}]", list.join(", ")),
            format!("{base}.principals"),
        );
    }
    if let Some(j) = &role.jwt {
        let provider = c.policy.providers.get(j.provider).map_or("?", |p| p.name());
        push(
            format!("token from provider '{provider}'"),
            format!("{base}.jwt.provider"),
        );
        for (k, claim) in j.claims.iter().enumerate() {
            push(format!("claim {claim}"), format!("{base}.jwt.claims[{k}]"));
        }
    }
}

/// Item index of each traced condition of role `r` (items start at `first`).
fn condition_item(first: usize, has_principals: bool, cond: &Condition) -> usize {
    let p = usize::from(has_principals);
    match cond {
        Condition::Principal { .. } => first,
        Condition::Token(_) => first + p,
        Condition::Claim { index, .. } => first + p + 1 + index,
    }
}

fn held(cond: &Condition) -> bool {
    match cond {
        Condition::Principal { matched } => matched.is_some(),
        Condition::Token(check) => *check == TokenCheck::Present,
        Condition::Claim { held, .. } => *held,
    }
}

/// The roles named by the rules that covered a case's request.
fn consulted(c: &CompiledComponent, e: &Evaluated) -> Vec<usize> {
    let mut out: Vec<usize> = e
        .outcome
        .trace
        .rules
        .iter()
        .filter(|t| t.covers_operation)
        .filter_map(|t| c.policy.rules.get(t.rule))
        .flat_map(|r| match &r.subjects {
            Subjects::Roles(rs) => rs.clone(),
            Subjects::Public | Subjects::Everyone => Vec::new(),
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

fn component_items(c: &CompiledComponent, evaluated: &[Evaluated]) -> Vec<Item> {
    let mut items: Vec<Item> = c
        .policy
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| Item {
            component: c.component.clone(),
            kind: Kind::Rule,
            name: format!("rule '{}'", r.name),
            path: c.paths.rules.get(i).cloned().unwrap_or_default(),
            met: Vec::new(),
            failed: Vec::new(),
        })
        .collect();
    let mut first = Vec::new();
    for r in 0..c.policy.roles.len() {
        first.push(items.len());
        role_items(c, r, &mut items);
    }
    for e in evaluated.iter().filter(|e| e.component == c.component) {
        if let Some(item) = e.outcome.decision.rule.and_then(|i| items.get_mut(i)) {
            item.met.push(e.case);
        }
        for r in consulted(c, e) {
            let (Some(start), Some(trace)) = (first.get(r), e.outcome.trace.roles.get(r)) else {
                continue;
            };
            let has_principals = c
                .policy
                .roles
                .get(r)
                .is_some_and(|x| x.principals.is_some());
            for cond in &trace.conditions {
                let Some(item) = items.get_mut(condition_item(*start, has_principals, cond)) else {
                    continue;
                };
                let list = if held(cond) {
                    &mut item.met
                } else {
                    &mut item.failed
                };
                if list.last() != Some(&e.case) {
                    list.push(e.case);
                }
            }
        }
    }
    items
}

/// Coverage of every component the cases could test.
pub fn coverage(compiled: &[CompiledComponent], evaluated: &[Evaluated]) -> Coverage {
    Coverage {
        items: compiled
            .iter()
            .flat_map(|c| component_items(c, evaluated))
            .collect(),
    }
}

fn cases(list: &[usize]) -> String {
    let shown: Vec<String> = list.iter().take(8).map(ToString::to_string).collect();
    let more = list.len().saturating_sub(8);
    let word = if list.len() == 1 { "case" } else { "cases" };
    if more > 0 {
        format!("{word} {} and {more} more", shown.join(", "))
    } else {
        format!("{word} {}", shown.join(", "))
    }
}

impl Coverage {
    pub fn covered(&self) -> usize {
        self.items.iter().filter(|i| i.covered()).count()
    }

    /// Covered items in percent (100 when there is nothing to cover).
    pub fn percent(&self) -> f64 {
        if self.items.is_empty() {
            return 100.0;
        }
        let (n, d) = (self.covered() as f64, self.items.len() as f64);
        100.0 * n / d
    }

    /// Per component how much is covered, and every item that is not.
    pub fn text(&self) -> String {
        let mut out = format!(
            "coverage: {} of {} items ({:.1}%): rules that decided a case; role conditions seen met and failed where a rule named the role\n",
            self.covered(),
            self.items.len(),
            self.percent()
        );
        let mut current = None;
        for item in &self.items {
            if current != Some(item.component.as_str()) {
                current = Some(item.component.as_str());
                let of: Vec<&Item> = self
                    .items
                    .iter()
                    .filter(|i| i.component == item.component)
                    .collect();
                let n = of.iter().filter(|i| i.covered()).count();
                let _ = writeln!(out, "  component {}: {n} of {}", item.component, of.len());
            }
            if item.covered() {
                continue;
            }
            let detail = match (item.kind, item.met.is_empty(), item.failed.is_empty()) {
                (Kind::Rule, _, _) => "no case is decided by it".to_string(),
                (Kind::Condition, true, true) => {
                    "never evaluated where a rule named the role".to_string()
                }
                (Kind::Condition, false, _) => format!("met in {}, never failed", cases(&item.met)),
                (Kind::Condition, true, false) => {
                    format!("failed in {}, never met", cases(&item.failed))
                }
            };
            let _ = writeln!(
                out,
                "    not covered: {}: {detail} ({})",
                item.name, item.path
            );
        }
        out
    }

    pub fn json(&self) -> Value {
        json!({
            "covered": self.covered(),
            "total": self.items.len(),
            "percent": self.percent(),
            "items": self.items.iter().map(|i| json!({
                "component": i.component,
                "kind": match i.kind { Kind::Rule => "rule", Kind::Condition => "role_condition" },
                "name": i.name,
                "path": i.path,
                "covered": i.covered(),
                "met": i.met,
                "failed": i.failed,
            })).collect::<Vec<_>>(),
        })
    }
}
