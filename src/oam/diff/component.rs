//! The diff of one component: cells × caller classes decided by the engine
//! under both policies, the changed ones grouped into regions, one example
//! per region re-run end to end. See docs/diff.md "Algorithm".

use super::callers::{Caller, CallerSpace, View};
use super::error::DiffError;
use super::eval::{decide, decide_view, Decided, Outcome};
use super::notes::{notes, Note};
use super::ops::{Cell, OpSpace};
use super::regions::{build, Change, ClassChange, How, Region};
use super::side::Side;
use crate::engine::held_roles;
use crate::pattern::hostname::normalize_host;
use crate::policy::Policy;
use std::collections::{BTreeMap, HashMap};

/// Class × cell decisions compared before giving up.
const MAX_COMPARISONS: usize = 40_000_000;

/// A region's example request, decided end to end under both policies.
#[derive(Debug, Clone)]
pub struct Example {
    pub caller: Caller,
    pub method: String,
    pub host: String,
    pub path: String,
    pub old: Outcome,
    pub new: Outcome,
    /// Whether re-running it gave the region's old and new decisions.
    pub confirmed: bool,
}

#[derive(Debug, Clone)]
pub struct Found {
    pub region: Region,
    pub example: Example,
}

/// Whether the component is protected by both revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Both,
    /// Protected before, not any more: the filter no longer runs for it.
    OnlyOld,
    /// Newly protected.
    OnlyNew,
}

#[derive(Debug)]
pub struct ComponentDiff {
    pub application: String,
    pub component: String,
    pub presence: Presence,
    pub regions: Vec<Found>,
    pub notes: Vec<Note>,
    /// Where the diff is not exact, said once per component.
    pub caveats: Vec<String>,
    pub ops: Option<OpSpace>,
    pub callers: Option<CallerSpace>,
    /// Whether `oam-authz explain` can replay the examples (OAM inputs).
    pub explainable: bool,
}

/// The side-specific shape of a class: what its decisions depend on.
#[derive(PartialEq, Eq, Hash)]
enum Sig {
    Refused(&'static str),
    Identity(bool, Vec<usize>),
}

/// One side's decisions: per class its signature, per signature a decision per cell.
struct Table {
    of_class: Vec<usize>,
    decided: Vec<Vec<Decided>>,
}

impl Table {
    fn new(
        policy: &Policy,
        callers: &CallerSpace,
        side: usize,
        ops: &OpSpace,
        cells: &[Cell],
    ) -> Table {
        let mut sigs: HashMap<Sig, usize> = HashMap::new();
        let mut of_class = Vec::new();
        let mut decided: Vec<Vec<Decided>> = Vec::new();
        for class in &callers.classes {
            let Some(view) = class.views.get(side) else {
                continue;
            };
            let sig = match view {
                View::Refused(e) => Sig::Refused(e.code()),
                View::Identity(id) => Sig::Identity(id.token.is_some(), held_roles(policy, id)),
            };
            let next = sigs.len();
            let at = *sigs.entry(sig).or_insert(next);
            if at == next {
                decided.push(
                    cells
                        .iter()
                        .map(|c| {
                            let (m, h, p) = ops.example(*c);
                            decide_view(policy, view, m, h, p).decided
                        })
                        .collect(),
                );
            }
            of_class.push(at);
        }
        Table { of_class, decided }
    }

    fn row(&self, class: usize) -> &[Decided] {
        self.of_class
            .get(class)
            .and_then(|s| self.decided.get(*s))
            .map_or(&[], Vec::as_slice)
    }
}

/// Every (class, old, new) with its changed cells.
fn changes(callers: &CallerSpace, tables: &[Table; 2], cells: &[Cell]) -> Vec<ClassChange> {
    let mut out = Vec::new();
    for class in 0..callers.classes.len() {
        let (a, b) = (tables[0].row(class), tables[1].row(class));
        let mut by_how: BTreeMap<How, Vec<(Cell, Decided, Decided)>> = BTreeMap::new();
        for ((x, y), c) in a.iter().zip(b).zip(cells) {
            if x != y {
                by_how
                    .entry(How::of(*x, *y))
                    .or_default()
                    .push((*c, *x, *y));
            }
        }
        for (how, cells) in by_how {
            out.push(ClassChange { class, how, cells });
        }
    }
    out
}

fn example(sides: &[Side<'_>; 2], ops: &OpSpace, callers: &CallerSpace, r: &Region) -> Example {
    let first = r.what.first();
    let caller = first
        .and_then(|(_, classes)| classes.first())
        .and_then(|c| callers.classes.get(*c))
        .map(|c| c.example.clone())
        .unwrap_or(Caller {
            peer: None,
            token: None,
        });
    let at = |list: Option<&Vec<usize>>| list.and_then(|l| l.first()).copied().unwrap_or(0);
    let cell = Cell {
        m: at(first.map(|(w, _)| &w.methods)),
        h: at(first.map(|(w, _)| &w.hosts)),
        p: at(first.map(|(w, _)| &w.paths.atoms)),
    };
    let (m, h, p) = ops.example(cell);
    let old = decide(sides[0].policy, &caller, m, h, p);
    let new = decide(sides[1].policy, &caller, m, h, p);
    Example {
        confirmed: r.pairs.contains(&(old.decided, new.decided)),
        caller,
        method: m.to_string(),
        host: h.to_string(),
        path: p.to_string(),
        old,
        new,
    }
}

impl ComponentDiff {
    /// A component protected on one side only: no regions, a note.
    pub fn one_sided(application: &str, component: &str, presence: Presence) -> ComponentDiff {
        let text = match presence {
            Presence::OnlyOld => "no longer protected: the new revision has no mesh-access policy for it, so no filter decides its requests (everything the old policy denied now reaches it, unless a namespace default denies it)",
            _ => "newly protected: every request is now decided by its policy (before, no filter decided, so everything reached it)",
        };
        let effect = match presence {
            Presence::OnlyOld => Change::Widened,
            _ => Change::Narrowed,
        };
        ComponentDiff {
            application: application.to_string(),
            component: component.to_string(),
            presence,
            regions: Vec::new(),
            notes: vec![Note {
                text: text.to_string(),
                effect: Some(effect),
            }],
            caveats: Vec::new(),
            ops: None,
            callers: None,
            explainable: false,
        }
    }

    /// The exact diff of a component both revisions protect. `host` is the
    /// example host when no rule names hosts (the component name).
    pub fn compute(
        application: &str,
        component: &str,
        sides: &[Side<'_>; 2],
        host: &str,
    ) -> Result<ComponentDiff, DiffError> {
        let ops = OpSpace::build(&[sides[0].policy, sides[1].policy], host)?;
        let callers = CallerSpace::build(sides)?;
        if ops.cell_count().saturating_mul(callers.classes.len()) > MAX_COMPARISONS {
            return Err(DiffError::TooComplex(format!(
                "{} operation cells × {} caller classes",
                ops.cell_count(),
                callers.classes.len()
            )));
        }
        let cells: Vec<Cell> = ops.cells().collect();
        let tables = [
            Table::new(sides[0].policy, &callers, 0, &ops, &cells),
            Table::new(sides[1].policy, &callers, 1, &ops, &cells),
        ];
        let regions = build(&ops, &callers, changes(&callers, &tables, &cells));
        let regions = regions
            .into_iter()
            .map(|region| Found {
                example: example(sides, &ops, &callers, &region),
                region,
            })
            .collect();
        let mut caveats = callers.caveats.clone();
        caveats.sort();
        caveats.dedup();
        Ok(ComponentDiff {
            application: application.to_string(),
            component: component.to_string(),
            presence: Presence::Both,
            regions,
            notes: notes(&sides[0], &sides[1]),
            caveats,
            ops: Some(ops),
            callers: Some(callers),
            explainable: false,
        })
    }

    /// The most access-widening change this component makes, if any.
    pub fn change(&self) -> Option<Change> {
        self.regions
            .iter()
            .map(|f| f.region.change)
            .chain(self.notes.iter().filter_map(|n| n.effect))
            .min()
    }

    /// The regions holding a request (for the property tests): by their
    /// descriptions, not by the cells they were built from.
    pub fn regions_containing(
        &self,
        sides: &[Side<'_>; 2],
        caller: &Caller,
        method: &str,
        host: &str,
        path: &str,
    ) -> Result<Vec<&Found>, String> {
        let (Some(ops), Some(callers)) = (&self.ops, &self.callers) else {
            return Ok(Vec::new());
        };
        let host = normalize_host(host);
        let cell = ops
            .locate(method, &host, path)
            .ok_or_else(|| format!("no cell holds {method} {host} {path}"))?;
        let class = callers
            .locate(sides, caller)
            .ok_or_else(|| format!("no caller class holds {caller:?}"))?;
        let features = &callers
            .classes
            .get(class)
            .ok_or("class out of range")?
            .features;
        let patterns = &ops.path_patterns;
        let inside = |w: &super::regions::What| {
            w.methods.contains(&cell.m)
                && w.hosts.contains(&cell.h)
                && w.paths
                    .matching
                    .iter()
                    .all(|i| patterns.get(*i).is_some_and(|p| p.matches(path)))
                && w.paths
                    .except
                    .iter()
                    .all(|i| patterns.get(*i).is_some_and(|p| !p.matches(path)))
        };
        Ok(self
            .regions
            .iter()
            .filter(|f| {
                f.region.who.iter().all(|l| l.holds(features))
                    && f.region.what.iter().any(|(w, _)| inside(w))
            })
            .collect())
    }
}

/// A whole diff: every component of either revision.
#[derive(Debug)]
pub struct Report {
    /// The two inputs as the user named them.
    pub old: String,
    pub new: String,
    pub components: Vec<ComponentDiff>,
}

impl Report {
    /// The most access-widening change, if anything changed.
    pub fn change(&self) -> Option<Change> {
        self.components
            .iter()
            .filter_map(ComponentDiff::change)
            .min()
    }

    /// 0 no change; 3 decisions changed but no request gains access; 4 some
    /// request gains access (docs/cli.md "oam-authz diff").
    pub fn exit_code(&self) -> u8 {
        match self.change() {
            None => 0,
            Some(Change::Widened) => 4,
            Some(Change::Narrowed | Change::Changed) => 3,
        }
    }
}
