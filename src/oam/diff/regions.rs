//! From changed cells to regions a person can read: per caller class the
//! changed cells become products of method, host and path sets; classes
//! with the same change over the same operations are described together by
//! the fewest conditions (roles held or not, token, peer) that single out
//! exactly those classes. See docs/diff.md "Regions".

use super::callers::{AuthKind, CallerSpace, Features, TokenKind};
use super::eval::Decided;
use super::ops::{Cell, OpSpace};
use crate::oam::analyze::path_covers;
use std::collections::{BTreeMap, BTreeSet};

/// Which way access moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    /// Denied before, allowed now.
    Widened,
    /// Allowed before, denied now.
    Narrowed,
    /// Still denied (or still allowed), with another status or reason.
    Changed,
}

impl Change {
    pub fn of(old: Decided, new: Decided) -> Change {
        match (old.allowed, new.allowed) {
            (false, true) => Change::Widened,
            (true, false) => Change::Narrowed,
            _ => Change::Changed,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Change::Widened => "widened",
            Change::Narrowed => "narrowed",
            Change::Changed => "changed",
        }
    }
}

/// One condition on callers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Literal {
    /// Meets (or not) the conditions of role feature `.0`.
    Role(usize, bool),
    /// Has a peer certificate, or not.
    Peer(bool),
    Token(TokenKind),
    /// Side 0 (old) or 1 (new) authenticated the token like this.
    Auth(usize, AuthKind),
    /// Side 0 or 1 refuses no token of the caller's (none, or accepted).
    AuthOk(usize, bool),
}

impl Literal {
    pub fn holds(&self, f: &Features) -> bool {
        match self {
            Literal::Role(i, v) => f.roles.get(*i) == Some(v),
            Literal::Peer(v) => f.peer == *v,
            Literal::Token(t) => f.token == *t,
            Literal::Auth(k, a) => f.auth.get(*k) == Some(a),
            Literal::AuthOk(k, v) => f
                .auth
                .get(*k)
                .is_some_and(|a| !matches!(a, AuthKind::Refused(_)) == *v),
        }
    }
}

/// A set of path atoms: the paths matching every `matching` pattern and
/// no `except` pattern (indices into `OpSpace::path_patterns`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PathRegion {
    pub atoms: Vec<usize>,
    pub matching: Vec<usize>,
    pub except: Vec<usize>,
}

/// Operations: every method atom × host atom × path in `paths`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct What {
    pub methods: Vec<usize>,
    pub hosts: Vec<usize>,
    pub paths: PathRegion,
}

/// What a region's requests have in common: one exact change of decision
/// (widened, narrowed), or only a change of status or reason (still
/// denied, or still allowed), of one or more kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum How {
    Exact(Decided, Decided),
    /// Same verdict (allowed: true or false), another status or reason.
    Reasons(bool),
}

impl How {
    pub fn of(old: Decided, new: Decided) -> How {
        if old.allowed == new.allowed {
            How::Reasons(old.allowed)
        } else {
            How::Exact(old, new)
        }
    }

    fn change(self) -> Change {
        match self {
            How::Exact(old, new) => Change::of(old, new),
            How::Reasons(_) => Change::Changed,
        }
    }
}

pub type Pair = (Decided, Decided);

#[derive(Debug, Clone)]
pub struct Region {
    pub change: Change,
    /// Every (old, new) decision of the region's requests: one when access
    /// changes; reason-only regions may hold several.
    pub pairs: Vec<Pair>,
    /// All must hold (none: anyone).
    pub who: Vec<Literal>,
    /// The operations, each with the caller classes `who` stands for
    /// there (the first class and operation give the example).
    pub what: Vec<(What, Vec<usize>)>,
}

impl Region {
    /// Only the reason a token is refused with changes (both revisions
    /// answer 401 to a token they refuse): shown folded in text and Markdown.
    pub fn refusal_reason_only(&self) -> bool {
        let refusal = |d: &Decided| !d.allowed && d.status == 401 && d.reason != "token_missing";
        self.change == Change::Changed && self.pairs.iter().all(|(a, b)| refusal(a) && refusal(b))
    }
}

/// The changed cells of one caller class for one kind of change, each
/// with its old and new decision.
pub struct ClassChange {
    pub class: usize,
    pub how: How,
    pub cells: Vec<(Cell, Decided, Decided)>,
}

fn member(ops: &OpSpace, atom: usize, pattern: usize) -> bool {
    ops.paths
        .get(atom)
        .and_then(|a| a.member.get(pattern))
        .copied()
        .unwrap_or(false)
}

/// The atoms described by (`matching`, `except`).
fn described(ops: &OpSpace, matching: &[usize], except: &[usize]) -> BTreeSet<usize> {
    (0..ops.paths.len())
        .filter(|a| {
            matching.iter().all(|i| member(ops, *a, *i))
                && except.iter().all(|i| !member(ops, *a, *i))
        })
        .collect()
}

/// `set` as one (matching, except) description, if it is one.
fn describe(ops: &OpSpace, set: &BTreeSet<usize>) -> Option<PathRegion> {
    let n = ops.path_patterns.len();
    let matching: Vec<usize> = (0..n)
        .filter(|i| set.iter().all(|a| member(ops, *a, *i)))
        .collect();
    let mut except: Vec<usize> = (0..n)
        .filter(|i| set.iter().all(|a| !member(ops, *a, *i)))
        .collect();
    if described(ops, &matching, &except) != *set {
        return None;
    }
    let mut k = 0;
    while k < except.len() {
        let mut fewer = except.clone();
        fewer.remove(k);
        if described(ops, &matching, &fewer) == *set {
            except = fewer;
        } else {
            k += 1;
        }
    }
    // A pattern that another matching pattern lies inside adds nothing.
    let pat = |i: &usize| ops.path_patterns.get(*i);
    let kept: Vec<usize> = matching
        .iter()
        .copied()
        .filter(|i| {
            !matching.iter().any(|j| {
                j != i
                    && matches!((pat(i), pat(j)), (Some(a), Some(b)) if path_covers(a, b) && (!path_covers(b, a) || j < i))
            })
        })
        .collect();
    Some(PathRegion {
        atoms: set.iter().copied().collect(),
        matching: kept,
        except,
    })
}

/// `set` as few describable parts as a greedy pass finds.
fn describe_paths(ops: &OpSpace, set: &BTreeSet<usize>) -> Vec<PathRegion> {
    if let Some(r) = describe(ops, set) {
        return vec![r];
    }
    let mut clusters: Vec<BTreeSet<usize>> = Vec::new();
    for a in set {
        let fits = clusters.iter_mut().find(|c| {
            let mut bigger = (*c).clone();
            bigger.insert(*a);
            describe(ops, &bigger).is_some()
        });
        match fits {
            Some(c) => {
                c.insert(*a);
            }
            None => clusters.push(BTreeSet::from([*a])),
        }
    }
    clusters.iter().filter_map(|c| describe(ops, c)).collect()
}

/// One class's changed cells as products of methods × hosts × paths.
fn op_regions(ops: &OpSpace, cells: &[Cell]) -> Vec<What> {
    let mut by_path: BTreeMap<usize, BTreeMap<usize, BTreeSet<usize>>> = BTreeMap::new();
    for c in cells {
        by_path
            .entry(c.p)
            .or_default()
            .entry(c.h)
            .or_default()
            .insert(c.m);
    }
    let mut by_ops: BTreeMap<(Vec<usize>, Vec<usize>), BTreeSet<usize>> = BTreeMap::new();
    for (p, hosts) in by_path {
        let mut by_methods: BTreeMap<Vec<usize>, Vec<usize>> = BTreeMap::new();
        for (h, methods) in hosts {
            by_methods
                .entry(methods.into_iter().collect())
                .or_default()
                .push(h);
        }
        for (methods, hosts) in by_methods {
            by_ops.entry((methods, hosts)).or_default().insert(p);
        }
    }
    by_ops
        .into_iter()
        .flat_map(|((methods, hosts), paths)| {
            describe_paths(ops, &paths)
                .into_iter()
                .map(move |paths| What {
                    methods: methods.clone(),
                    hosts: hosts.clone(),
                    paths,
                })
        })
        .collect()
}

/// A class's conditions, in the order the cover tries to drop them:
/// authentication details first, role conditions last. `token_first`:
/// drop the token's issuer before the "token accepted" conditions.
fn literals(f: &Features, token_first: bool) -> Vec<Literal> {
    let ok = |k: usize| {
        Literal::AuthOk(
            k,
            f.auth
                .get(k)
                .is_some_and(|a| !matches!(a, AuthKind::Refused(_))),
        )
    };
    let mut out = vec![Literal::Auth(0, f.auth[0]), Literal::Auth(1, f.auth[1])];
    if token_first {
        out.extend([Literal::Token(f.token.clone()), ok(0), ok(1)]);
    } else {
        out.extend([ok(0), ok(1), Literal::Token(f.token.clone())]);
    }
    out.push(Literal::Peer(f.peer));
    out.extend(
        f.roles
            .iter()
            .enumerate()
            .rev()
            .map(|(i, v)| Literal::Role(i, *v)),
    );
    out
}

type Cubes = Vec<(Vec<Literal>, Vec<usize>)>;

/// Conjunctions of conditions that together hold for exactly the classes
/// of `group` (among all classes): each starts from one class's every
/// condition and drops those that are not needed to keep the others out.
fn cover_in_order(callers: &CallerSpace, group: &BTreeSet<usize>, token_first: bool) -> Cubes {
    let mut left = group.clone();
    let mut out = Vec::new();
    let features = |i: &usize| callers.classes.get(*i).map(|c| &c.features);
    while let Some(first) = left.iter().next().copied() {
        let Some(f) = features(&first) else { break };
        let mut lits = literals(f, token_first);
        let mut k = 0;
        while k < lits.len() {
            let mut fewer = lits.clone();
            fewer.remove(k);
            let leaks =
                callers.classes.iter().enumerate().any(|(i, c)| {
                    !group.contains(&i) && fewer.iter().all(|l| l.holds(&c.features))
                });
            if leaks {
                k += 1;
            } else {
                lits = fewer;
            }
        }
        let covered: Vec<usize> = left
            .iter()
            .copied()
            .filter(|i| features(i).is_some_and(|f| lits.iter().all(|l| l.holds(f))))
            .collect();
        for i in &covered {
            left.remove(i);
        }
        // The class itself always satisfies its own conditions.
        left.remove(&first);
        lits.sort();
        out.push((lits, covered));
    }
    out
}

/// The shorter of two greedy covers (fewer conjunctions, then fewer
/// conditions); on a tie the one naming the token's issuer.
fn cover(callers: &CallerSpace, group: &BTreeSet<usize>) -> Cubes {
    let a = cover_in_order(callers, group, false);
    let b = cover_in_order(callers, group, true);
    let size = |c: &Cubes| (c.len(), c.iter().map(|(l, _)| l.len()).sum::<usize>());
    if size(&b) < size(&a) {
        b
    } else {
        a
    }
}

/// The pairs of the cells of `cells` inside `w`.
fn pairs_in(cells: &[(Cell, Decided, Decided)], w: &What) -> BTreeSet<Pair> {
    cells
        .iter()
        .filter(|(c, _, _)| {
            w.methods.contains(&c.m) && w.hosts.contains(&c.h) && w.paths.atoms.contains(&c.p)
        })
        .map(|(_, a, b)| (*a, *b))
        .collect()
}

/// Every region, widened first; regions with the same change and callers
/// are one region over several operation sets.
pub fn build(ops: &OpSpace, callers: &CallerSpace, changes: Vec<ClassChange>) -> Vec<Region> {
    let mut groups: BTreeMap<(How, What), BTreeMap<usize, BTreeSet<Pair>>> = BTreeMap::new();
    for ch in changes {
        let plain: Vec<Cell> = ch.cells.iter().map(|(c, _, _)| *c).collect();
        for what in op_regions(ops, &plain) {
            let pairs = pairs_in(&ch.cells, &what);
            groups
                .entry((ch.how, what))
                .or_default()
                .insert(ch.class, pairs);
        }
    }
    type Key = (Change, How, Vec<Literal>);
    let mut merged: BTreeMap<Key, (Vec<(What, Vec<usize>)>, BTreeSet<Pair>)> = BTreeMap::new();
    for ((how, what), by_class) in groups {
        let classes: BTreeSet<usize> = by_class.keys().copied().collect();
        for (who, _) in cover(callers, &classes) {
            // Every class of the group the conditions hold for (an earlier
            // conjunction may have covered some of them first).
            let matching: Vec<usize> = classes
                .iter()
                .copied()
                .filter(|c| {
                    callers
                        .classes
                        .get(*c)
                        .is_some_and(|cl| who.iter().all(|l| l.holds(&cl.features)))
                })
                .collect();
            let entry = merged.entry((how.change(), how, who)).or_default();
            for c in &matching {
                entry
                    .1
                    .extend(by_class.get(c).into_iter().flatten().copied());
            }
            entry.0.push((what.clone(), matching));
        }
    }
    merged
        .into_iter()
        .map(|((change, _, who), (what, pairs))| Region {
            change,
            pairs: pairs.into_iter().collect(),
            who,
            what,
        })
        .collect()
}
