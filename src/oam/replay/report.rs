//! Events grouped by component and by change, as `diff` groups regions.

use super::decide::{decide, Undecidable};
use super::event::{Event, Outcome};
use crate::decision::Change;
use crate::policy::Policy;
use std::collections::BTreeMap;

/// A policy events may be replayed under: one protected component.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub application: &'a str,
    pub component: &'a str,
    pub policy: &'a Policy,
}

/// The events of one component and what replay made of them.
#[derive(Debug, Default)]
pub struct ComponentReplay {
    pub application: String,
    pub component: String,
    pub version: String,
    pub events: usize,
    pub unchanged: usize,
    /// (change, recorded, new) -> the events.
    pub changed: BTreeMap<(ChangeKey, Outcome, Outcome), Vec<Event>>,
    pub undecidable: BTreeMap<Undecidable, Vec<Event>>,
}

/// A `Change` in the order `diff` reports: widened first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKey {
    Widened,
    Narrowed,
    Changed,
}

impl ChangeKey {
    fn of(c: Change) -> ChangeKey {
        match c {
            Change::DenyToAllow => ChangeKey::Widened,
            Change::AllowToDeny => ChangeKey::Narrowed,
            Change::ReasonChanged => ChangeKey::Changed,
        }
    }

    /// `diff`'s word, and the shadow counter's.
    pub fn words(self) -> (&'static str, &'static str) {
        match self {
            ChangeKey::Widened => ("widened", "deny_to_allow"),
            ChangeKey::Narrowed => ("narrowed", "allow_to_deny"),
            ChangeKey::Changed => ("changed", "reason_changed"),
        }
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub policy_label: String,
    pub log_label: String,
    pub components: Vec<ComponentReplay>,
    /// Events of no component of the policy: their `policy` label, count.
    pub unmatched: BTreeMap<String, usize>,
    /// Audit lines that were not events.
    pub unreadable: usize,
}

impl Report {
    pub fn change(&self) -> Option<ChangeKey> {
        self.components
            .iter()
            .flat_map(|c| c.changed.keys().map(|(k, _, _)| *k))
            .min()
    }

    /// As `diff`: 0 no change, 3 access narrowed or decisions changed, 4 widened.
    pub fn exit_code(&self) -> u8 {
        match self.change() {
            None => 0,
            Some(ChangeKey::Widened) => 4,
            Some(_) => 3,
        }
    }
}

/// Which target an event belongs to: `--component`, else the one whose
/// policy version it names (or shares the `<app>/<component>@` prefix
/// with), else the only one.
fn target_of<'t>(
    targets: &'t [Target<'t>],
    e: &Event,
    only: Option<&str>,
) -> Option<&'t Target<'t>> {
    if let Some(c) = only {
        return targets.iter().find(|t| t.component == c);
    }
    let stem = |v: &str| v.rsplit_once('@').map(|(s, _)| s.to_string());
    targets
        .iter()
        .find(|t| t.policy.version == e.policy)
        .or_else(|| {
            let s = stem(&e.policy)?;
            targets
                .iter()
                .find(|t| stem(&t.policy.version).as_deref() == Some(s.as_str()))
        })
        .or(match targets {
            [one] => Some(one),
            _ => None,
        })
}

/// Replay every event under its target.
pub fn replay(
    policy_label: &str,
    log_label: &str,
    targets: &[Target<'_>],
    events: Vec<Event>,
    unreadable: usize,
    only: Option<&str>,
) -> Report {
    let mut components: Vec<ComponentReplay> = targets
        .iter()
        .filter(|t| only.is_none_or(|c| c == t.component))
        .map(|t| ComponentReplay {
            application: t.application.to_string(),
            component: t.component.to_string(),
            version: t.policy.version.clone(),
            ..ComponentReplay::default()
        })
        .collect();
    let mut unmatched: BTreeMap<String, usize> = BTreeMap::new();
    for e in events {
        let Some(t) = target_of(targets, &e, only) else {
            *unmatched.entry(e.policy.clone()).or_default() += 1;
            continue;
        };
        let Some(c) = components
            .iter_mut()
            .find(|c| c.component == t.component && c.application == t.application)
        else {
            continue;
        };
        c.events += 1;
        match decide(t.policy, &e) {
            Err(why) => c.undecidable.entry(why).or_default().push(e),
            Ok(new) => {
                let old = &e.recorded;
                match Change::between((old.allowed, &old.reason), (new.allowed, &new.reason)) {
                    None => c.unchanged += 1,
                    Some(change) => {
                        let key = (ChangeKey::of(change), old.clone(), new);
                        c.changed.entry(key).or_default().push(e);
                    }
                }
            }
        }
    }
    Report {
        policy_label: policy_label.to_string(),
        log_label: log_label.to_string(),
        components,
        unmatched,
        unreadable,
    }
}
