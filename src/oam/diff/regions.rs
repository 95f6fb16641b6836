//! From changed cells to regions a person can read: per caller class the
//! changed cells become products of method, host and path sets; classes
//! with the same change over the same operations are described together by
//! the fewest conditions (roles held or not, token, peer) that single out
//! exactly those classes. See docs/diff.md "Regions".

use super::callers::{AuthKind, CallerSpace, Features, TokenKind};
use super::eval::Decided;
use super::ops::{Cell, OpSpace};
use crate::oam::analyze::path_covers;
use std::collections::{BTreeMap, BTreeSet, HashMap};

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

/// Path atoms as bit vectors, per pattern, and the descriptions found so
/// far (many classes change over the same sets of atoms).
pub struct PathSets<'o> {
    ops: &'o OpSpace,
    /// `of[i]`: the atoms pattern `i` matches.
    of: Vec<Vec<u64>>,
    words: usize,
    memo: HashMap<BTreeSet<usize>, Vec<PathRegion>>,
}

impl<'o> PathSets<'o> {
    pub fn new(ops: &'o OpSpace) -> PathSets<'o> {
        let words = ops.paths.len().div_ceil(64);
        let of = (0..ops.path_patterns.len())
            .map(|i| {
                let mut v = vec![0u64; words];
                for (a, atom) in ops.paths.iter().enumerate() {
                    if atom.member.get(i).copied().unwrap_or(false) {
                        if let Some(w) = v.get_mut(a / 64) {
                            *w |= 1 << (a % 64);
                        }
                    }
                }
                v
            })
            .collect();
        PathSets {
            ops,
            of,
            words,
            memo: HashMap::new(),
        }
    }

    fn bits(&self, set: &BTreeSet<usize>) -> Vec<u64> {
        let mut v = vec![0u64; self.words];
        for a in set {
            if let Some(w) = v.get_mut(a / 64) {
                *w |= 1 << (a % 64);
            }
        }
        v
    }

    /// The atoms described by (`matching`, `except`), as bits.
    fn described(&self, matching: &[usize], except: &[usize]) -> Vec<u64> {
        let mut acc: Vec<u64> = (0..self.words)
            .map(|w| {
                let n = self.ops.paths.len().saturating_sub(w * 64).min(64);
                if n == 64 {
                    u64::MAX
                } else {
                    (1u64 << n) - 1
                }
            })
            .collect();
        let empty = vec![0u64; self.words];
        for i in matching {
            for (a, b) in acc.iter_mut().zip(self.of.get(*i).unwrap_or(&empty)) {
                *a &= *b;
            }
        }
        for i in except {
            for (a, b) in acc.iter_mut().zip(self.of.get(*i).unwrap_or(&empty)) {
                *a &= !*b;
            }
        }
        acc
    }

    /// `set` as one (matching, except) description, if it is one.
    fn describe(&self, set: &BTreeSet<usize>) -> Option<PathRegion> {
        let want = self.bits(set);
        let n = self.ops.path_patterns.len();
        let (mut matching, mut except) = (Vec::new(), Vec::new());
        let empty = vec![0u64; self.words];
        for i in 0..n {
            let p = self.of.get(i).unwrap_or(&empty);
            if want.iter().zip(p).all(|(w, p)| w & !p == 0) {
                matching.push(i);
            } else if want.iter().zip(p).all(|(w, p)| w & p == 0) {
                except.push(i);
            }
        }
        if self.described(&matching, &except) != want {
            return None;
        }
        let mut k = 0;
        while k < except.len() {
            let mut fewer = except.clone();
            fewer.remove(k);
            if self.described(&matching, &fewer) == want {
                except = fewer;
            } else {
                k += 1;
            }
        }
        // A pattern that another matching pattern lies inside adds nothing.
        let pat = |i: &usize| self.ops.path_patterns.get(*i);
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
    fn describe_paths(&mut self, set: &BTreeSet<usize>) -> Vec<PathRegion> {
        if let Some(found) = self.memo.get(set) {
            return found.clone();
        }
        let out = match self.describe(set) {
            Some(r) => vec![r],
            None => {
                let mut clusters: Vec<BTreeSet<usize>> = Vec::new();
                for a in set {
                    let fits = clusters.iter_mut().find(|c| {
                        let mut bigger = (*c).clone();
                        bigger.insert(*a);
                        self.describe(&bigger).is_some()
                    });
                    match fits {
                        Some(c) => {
                            c.insert(*a);
                        }
                        None => clusters.push(BTreeSet::from([*a])),
                    }
                }
                clusters.iter().filter_map(|c| self.describe(c)).collect()
            }
        };
        self.memo.insert(set.clone(), out.clone());
        out
    }
}

/// One class's changed cells as products of methods × hosts × paths.
fn op_regions(paths: &mut PathSets<'_>, cells: &[Cell]) -> Vec<What> {
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
    let mut out = Vec::new();
    for ((methods, hosts), atoms) in by_ops {
        for p in paths.describe_paths(&atoms) {
            out.push(What {
                methods: methods.clone(),
                hosts: hosts.clone(),
                paths: p,
            });
        }
    }
    out
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

/// Sets of caller classes as bit vectors: a conjunction's classes are the
/// AND of its conditions' sets, so a cover step costs a few words per
/// condition instead of a pass over every class.
struct Bits {
    sets: std::collections::HashMap<Literal, Vec<u64>>,
    words: usize,
}

impl Bits {
    fn new(n: usize) -> Bits {
        Bits {
            sets: HashMap::new(),
            words: n.div_ceil(64),
        }
    }

    fn of(&mut self, callers: &CallerSpace, l: &Literal) -> &[u64] {
        let words = self.words;
        self.sets.entry(l.clone()).or_insert_with(|| {
            let mut v = vec![0u64; words];
            for (i, c) in callers.classes.iter().enumerate() {
                if l.holds(&c.features) {
                    if let Some(w) = v.get_mut(i / 64) {
                        *w |= 1 << (i % 64);
                    }
                }
            }
            v
        })
    }

    /// The classes all of `lits` hold for.
    fn all(&mut self, callers: &CallerSpace, lits: &[Literal]) -> Vec<u64> {
        let mut acc = vec![u64::MAX; self.words];
        for l in lits {
            for (a, b) in acc.iter_mut().zip(self.of(callers, l)) {
                *a &= *b;
            }
        }
        acc
    }
}

fn set_of(group: &BTreeSet<usize>, words: usize) -> Vec<u64> {
    let mut v = vec![0u64; words];
    for i in group {
        if let Some(w) = v.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }
    v
}

/// Conjunctions of conditions that together hold for exactly the classes
/// of `group` (among all classes): each starts from one class's every
/// condition and drops those that are not needed to keep the others out.
fn cover_in_order(
    callers: &CallerSpace,
    bits: &mut Bits,
    group: &BTreeSet<usize>,
    token_first: bool,
) -> Cubes {
    let inside = set_of(group, bits.words);
    let mut left = group.clone();
    let mut out = Vec::new();
    while let Some(first) = left.iter().next().copied() {
        let Some(f) = callers.classes.get(first).map(|c| &c.features) else {
            break;
        };
        let mut lits = literals(f, token_first);
        let mut k = 0;
        while k < lits.len() {
            let mut fewer = lits.clone();
            fewer.remove(k);
            let matched = bits.all(callers, &fewer);
            let leaks = matched.iter().zip(&inside).any(|(m, g)| m & !g != 0);
            if leaks {
                k += 1;
            } else {
                lits = fewer;
            }
        }
        let matched = bits.all(callers, &lits);
        let covered: Vec<usize> = left
            .iter()
            .copied()
            .filter(|i| matched.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1))
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
fn cover(callers: &CallerSpace, bits: &mut Bits, group: &BTreeSet<usize>) -> Cubes {
    let a = cover_in_order(callers, bits, group, false);
    let b = cover_in_order(callers, bits, group, true);
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
    let mut paths = PathSets::new(ops);
    for ch in changes {
        let plain: Vec<Cell> = ch.cells.iter().map(|(c, _, _)| *c).collect();
        for what in op_regions(&mut paths, &plain) {
            let pairs = pairs_in(&ch.cells, &what);
            groups
                .entry((ch.how, what))
                .or_default()
                .insert(ch.class, pairs);
        }
    }
    type Key = (Change, How, Vec<Literal>);
    type Parts = (Vec<(What, Vec<usize>)>, BTreeSet<Pair>);
    let mut merged: BTreeMap<Key, Parts> = BTreeMap::new();
    let mut bits = Bits::new(callers.classes.len());
    for ((how, what), by_class) in groups {
        let classes: BTreeSet<usize> = by_class.keys().copied().collect();
        for (who, _) in cover(callers, &mut bits, &classes) {
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
