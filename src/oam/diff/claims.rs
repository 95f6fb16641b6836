//! Example claim sets for the tokens of one issuer: one per combination of
//! roles whose claim conditions a token can meet together. See docs/diff.md
//! "Callers".
//!
//! The conditions are grouped by claim path into a tree (`a` and `a.b` in
//! one subtree). For each tested path the candidate values are: absent;
//! every value an `equals`/`one_of` names; every `prefix` itself (a string
//! meets exactly the prefixes of its longest matching prefix, so these reach
//! every combination); a string holding the `scope` words of any set of
//! roles (plus a word no role names), also after each prefix; an array holding
//! the `contains` values of any set of roles; an object when deeper paths
//! are tested. Those reach every combination a real claim value can, since
//! conditions only compare with the values they name. Candidates are
//! evaluated with the engine's `ClaimTest::eval` and kept only when they
//! change which roles fail, so the count stays the number of distinct
//! combinations, not the product of all values.

use super::error::DiffError;
use crate::config::ClaimCondition;
use crate::policy::claims::ClaimTest;
use serde_json::{Map, Value};
use std::collections::{BTreeSet, HashMap};

/// Candidate values (or partial claim sets) kept at any one step.
const MAX_CANDIDATES: usize = 4096;

/// Registered claims the diff sets itself on its example tokens
/// (`iss`, `aud`, the times); conditions on them are not enumerated.
pub const REGISTERED: [&str; 5] = ["iss", "aud", "exp", "nbf", "iat"];

/// One claim condition of one role of one side.
pub struct Test<'a> {
    /// Which role (an index the caller chose; `fails` is indexed by it).
    pub role: usize,
    pub test: &'a ClaimTest,
    pub config: &'a ClaimCondition,
}

/// A claim set, and the roles (by `Test::role`) whose conditions it fails.
pub type Candidate = (Map<String, Value>, Vec<bool>);

/// A value at one path (`None`: absent), and the roles it fails.
type Value1 = (Option<Value>, Vec<bool>);

#[derive(Default)]
struct Node {
    name: String,
    tests: Vec<usize>,
    children: Vec<Node>,
}

impl Node {
    fn insert(&mut self, segs: &[&str], test: usize) {
        let Some((first, rest)) = segs.split_first() else {
            self.tests.push(test);
            return;
        };
        if let Some(c) = self.children.iter_mut().find(|c| c.name == *first) {
            c.insert(rest, test);
            return;
        }
        let mut c = Node {
            name: (*first).to_string(),
            ..Node::default()
        };
        c.insert(rest, test);
        self.children.push(c);
    }

    fn subtree_tests(&self, out: &mut Vec<usize>) {
        out.extend(&self.tests);
        for c in &self.children {
            c.subtree_tests(out);
        }
    }
}

struct Ctx<'t, 'a> {
    tests: &'t [Test<'a>],
    roles: usize,
    fresh: String,
}

fn too_many(what: &str) -> DiffError {
    DiffError::TooComplex(format!(
        "the claim conditions on '{what}' combine into more than {MAX_CANDIDATES} distinct claim values"
    ))
}

/// `value` placed at `path` in an otherwise empty claim set.
fn nest(path: &[String], value: Value) -> Map<String, Value> {
    let mut v = value;
    for seg in path.iter().skip(1).rev() {
        let mut m = Map::new();
        m.insert(seg.clone(), v);
        v = Value::Object(m);
    }
    let mut m = Map::new();
    if let Some(first) = path.first() {
        m.insert(first.clone(), v);
    }
    m
}

impl Ctx<'_, '_> {
    fn fails(&self, claims: &Map<String, Value>, tests: &[usize]) -> Vec<bool> {
        let mut f = vec![false; self.roles];
        for t in tests {
            if let Some(t) = self.tests.get(*t) {
                if !t.test.eval(claims) {
                    if let Some(x) = f.get_mut(t.role) {
                        *x = true;
                    }
                }
            }
        }
        f
    }

    /// Every set reachable as a union of the per-role sets in `per_role`.
    fn unions(
        per_role: &HashMap<usize, Vec<String>>,
        what: &str,
    ) -> Result<Vec<Vec<String>>, DiffError> {
        let mut out: Vec<BTreeSet<String>> = vec![BTreeSet::new()];
        let mut roles: Vec<&usize> = per_role.keys().collect();
        roles.sort_unstable();
        for r in roles {
            let add = per_role.get(r).cloned().unwrap_or_default();
            let grown: Vec<BTreeSet<String>> = out
                .iter()
                .map(|u| u.iter().cloned().chain(add.iter().cloned()).collect())
                .collect();
            for g in grown {
                if !out.contains(&g) {
                    out.push(g);
                }
            }
            if out.len() > MAX_CANDIDATES {
                return Err(too_many(what));
            }
        }
        Ok(out.into_iter().map(|s| s.into_iter().collect()).collect())
    }

    /// The values a tested path may take that change some condition.
    fn own_values(&self, node: &Node, what: &str) -> Result<Vec<Value>, DiffError> {
        let mut values: Vec<Value> = Vec::new();
        let mut words: HashMap<usize, Vec<String>> = HashMap::new();
        let mut elements: HashMap<usize, Vec<String>> = HashMap::new();
        let mut prefixes: Vec<String> = Vec::new();
        for t in node.tests.iter().filter_map(|t| self.tests.get(*t)) {
            // Exhaustive on purpose: a new operator must be enumerated here.
            let ClaimCondition {
                claim: _,
                equals,
                one_of,
                contains,
                scope_contains,
                prefix,
            } = t.config;
            prefixes.extend(prefix.iter().cloned());
            values.extend(equals.iter().cloned());
            values.extend(one_of.iter().flatten().cloned());
            if let Some(v) = contains {
                elements.entry(t.role).or_default().push(v.to_string());
            }
            if let Some(w) = scope_contains {
                words.entry(t.role).or_default().push(w.clone());
            }
        }
        values.extend(prefixes.iter().cloned().map(Value::String));
        for u in Ctx::unions(&words, what)? {
            let mut all = u;
            all.push(self.fresh.clone());
            let words = all.join(" ");
            // After a prefix, with the fresh word first so that no longer
            // prefix is met by accident.
            for p in &prefixes {
                values.push(Value::String(format!("{p} {} {words}", self.fresh)));
            }
            values.push(Value::String(words));
        }
        for u in Ctx::unions(&elements, what)? {
            let items: Vec<Value> = u
                .iter()
                .filter_map(|s| serde_json::from_str(s).ok())
                .collect();
            values.push(Value::Array(items));
        }
        Ok(values)
    }

    /// Candidate values at `path` (`None`: absent), distinct in which roles they fail.
    fn candidates(&self, node: &Node, path: &[String]) -> Result<Vec<Value1>, DiffError> {
        let what = path.join(".");
        let mut subtree = Vec::new();
        node.subtree_tests(&mut subtree);
        let mut values: Vec<Value> = Vec::new();
        if !node.tests.is_empty() {
            values.extend(self.own_values(node, &what)?);
        }
        if !node.children.is_empty() {
            for (m, _) in self.product(&node.children, path)? {
                values.push(Value::Object(m));
            }
        }
        let mut out: Vec<Value1> = Vec::new();
        let mut seen: Vec<Vec<bool>> = Vec::new();
        let absent = self.fails(&Map::new(), &subtree);
        seen.push(absent.clone());
        out.push((None, absent));
        for v in values {
            let f = self.fails(&nest(path, v.clone()), &subtree);
            if !seen.contains(&f) {
                seen.push(f.clone());
                out.push((Some(v), f));
                if out.len() > MAX_CANDIDATES {
                    return Err(too_many(&what));
                }
            }
        }
        Ok(out)
    }

    /// Claim objects combining the children's candidates, distinct in
    /// which roles they fail (the children are independent of each other).
    fn product(&self, children: &[Node], path: &[String]) -> Result<Vec<Candidate>, DiffError> {
        let mut acc: Vec<Candidate> = vec![(Map::new(), vec![false; self.roles])];
        for child in children {
            let mut cpath = path.to_vec();
            cpath.push(child.name.clone());
            let cands = self.candidates(child, &cpath)?;
            let mut next: Vec<Candidate> = Vec::new();
            for (m, f) in &acc {
                for (v, cf) in &cands {
                    let union: Vec<bool> = f.iter().zip(cf).map(|(a, b)| *a || *b).collect();
                    if next.iter().any(|(_, g)| *g == union) {
                        continue;
                    }
                    let mut m = m.clone();
                    if let Some(v) = v {
                        m.insert(child.name.clone(), v.clone());
                    }
                    next.push((m, union));
                }
            }
            if next.len() > MAX_CANDIDATES {
                return Err(too_many(&cpath.join(".")));
            }
            acc = next;
        }
        Ok(acc)
    }
}

/// A word that occurs in none of the tested values.
fn fresh_word(tests: &[Test<'_>]) -> String {
    let text: String = tests
        .iter()
        .map(|t| serde_json::to_string(t.config).unwrap_or_default())
        .collect();
    (0..)
        .map(|i| {
            if i == 0 {
                "unmatched".to_string()
            } else {
                format!("unmatched{i}")
            }
        })
        .find(|w| !text.contains(w.as_str()))
        .unwrap_or_default()
}

/// Claim sets (without the registered claims) reaching every combination
/// of failing roles among `roles` role indices. Conditions on registered
/// claims are left out and reported in the second result.
pub fn claim_sets(
    tests: &[Test<'_>],
    roles: usize,
) -> Result<(Vec<Candidate>, Vec<String>), DiffError> {
    let mut root = Node::default();
    let mut skipped = Vec::new();
    for (i, t) in tests.iter().enumerate() {
        let segs: Vec<&str> = t.test.claim().split('.').collect();
        if segs.first().is_some_and(|s| REGISTERED.contains(s)) {
            skipped.push(t.test.claim().to_string());
            continue;
        }
        root.insert(&segs, i);
    }
    let ctx = Ctx {
        tests,
        roles,
        fresh: fresh_word(tests),
    };
    let sets = ctx.product(&root.children, &[])?;
    skipped.sort();
    skipped.dedup();
    Ok((sets, skipped))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::error::{Diagnostics, FieldPath};
    use serde_json::json;

    fn cond(v: Value) -> ClaimCondition {
        serde_json::from_value(v).unwrap()
    }

    fn compile(c: &ClaimCondition) -> ClaimTest {
        ClaimTest::compile(c, &FieldPath::root(), &mut Diagnostics::new()).unwrap()
    }

    #[test]
    fn every_combination_of_roles_is_reached_once() {
        // role 0: groups contains a; role 1: groups contains b;
        // role 2: tier equals gold AND scope has read; role 3: org.name equals acme.
        let configs = [
            (0, cond(json!({"claim": "groups", "contains": "a"}))),
            (1, cond(json!({"claim": "groups", "contains": "b"}))),
            (2, cond(json!({"claim": "tier", "equals": "gold"}))),
            (2, cond(json!({"claim": "scope", "scope_contains": "read"}))),
            (3, cond(json!({"claim": "org.name", "equals": "acme"}))),
            (3, cond(json!({"claim": "aud", "equals": "x"}))),
        ];
        let compiled: Vec<ClaimTest> = configs.iter().map(|(_, c)| compile(c)).collect();
        let tests: Vec<Test> = configs
            .iter()
            .zip(&compiled)
            .map(|((role, config), test)| Test {
                role: *role,
                test,
                config,
            })
            .collect();
        let (sets, skipped) = claim_sets(&tests, 4).unwrap();
        assert_eq!(skipped, vec!["aud".to_string()]);
        let held: BTreeSet<Vec<bool>> = sets
            .iter()
            .map(|(_, f)| f.iter().map(|x| !x).collect())
            .collect();
        // roles 0, 1, 2 independent; role 3 also needs aud (not enumerated),
        // so only its org.name part counts here: 2^4 combinations.
        assert_eq!(held.len(), 16, "{sets:?}");
        assert_eq!(sets.len(), 16);
        for (claims, fails) in &sets {
            for (role, test) in tests.iter().map(|t| (t.role, t.test)) {
                if test.claim() != "aud" && !test.eval(claims) {
                    assert!(fails[role], "{claims:?}");
                }
            }
        }
    }

    #[test]
    fn a_scalar_and_an_object_at_the_same_path_exclude_each_other() {
        let configs = [
            (0, cond(json!({"claim": "a", "equals": 1}))),
            (1, cond(json!({"claim": "a.b", "equals": 2}))),
        ];
        let compiled: Vec<ClaimTest> = configs.iter().map(|(_, c)| compile(c)).collect();
        let tests: Vec<Test> = configs
            .iter()
            .zip(&compiled)
            .map(|((role, config), test)| Test {
                role: *role,
                test,
                config,
            })
            .collect();
        let (sets, _) = claim_sets(&tests, 2).unwrap();
        let held: BTreeSet<Vec<bool>> = sets
            .iter()
            .map(|(_, f)| f.iter().map(|x| !x).collect())
            .collect();
        let want: BTreeSet<Vec<bool>> = [vec![false, false], vec![true, false], vec![false, true]]
            .into_iter()
            .collect();
        assert_eq!(held, want);
    }
}
