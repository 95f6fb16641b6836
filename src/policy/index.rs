//! A segment trie over the rules' path patterns, so that finding the rules
//! that cover a request does not grow with the number of rules.
//!
//! The index only narrows: it returns a superset of the covering rules and
//! every candidate is then checked with the full `Rule::covers`. A bug here
//! can cost speed, but the equivalence test below makes sure it cannot
//! change a decision.

use super::rule::Rule;
use crate::pattern::path::{PathPattern, Seg};
use std::collections::HashMap;

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    /// `{*}`: any one non-empty segment.
    one: Option<Box<Node>>,
    /// Patterns that end exactly here.
    end: Vec<u32>,
    /// `{**}` at this position: one or more further segments.
    rest: Vec<u32>,
    /// `prefix*` whose literal ends inside the next segment: (rule, partial).
    prefix: Vec<(u32, Box<str>)>,
}

#[derive(Debug, Default)]
pub struct RuleIndex {
    root: Node,
    /// Rules the trie cannot place (no paths, `*`, `*suffix`): always checked.
    always: Vec<u32>,
}

impl RuleIndex {
    pub fn build(rules: &[Rule]) -> RuleIndex {
        let mut ix = RuleIndex::default();
        for (r, rule) in rules.iter().enumerate() {
            let Ok(r) = u32::try_from(r) else {
                ix.always.push(u32::MAX);
                continue;
            };
            match &rule.paths {
                None => ix.always.push(r),
                Some(paths) => {
                    for p in paths {
                        ix.insert(r, p);
                    }
                }
            }
        }
        ix
    }

    fn insert(&mut self, r: u32, p: &PathPattern) {
        match p {
            PathPattern::Any | PathPattern::Suffix(_) => self.always.push(r),
            PathPattern::Exact(e) => {
                let mut node = &mut self.root;
                for seg in e.get(1..).unwrap_or("").split('/') {
                    node = node.children.entry(seg.into()).or_default();
                }
                node.end.push(r);
            }
            PathPattern::Prefix(pre) => {
                let body = pre.get(1..).unwrap_or("");
                let mut segs: Vec<&str> = body.split('/').collect();
                let partial = segs.pop().unwrap_or("");
                let mut node = &mut self.root;
                for seg in segs {
                    node = node.children.entry(seg.into()).or_default();
                }
                node.prefix.push((r, partial.into()));
            }
            PathPattern::Template(segs) => {
                let mut node = &mut self.root;
                for seg in segs {
                    node = match seg {
                        Seg::Lit(l) => node.children.entry(l.as_str().into()).or_default(),
                        Seg::One => node.one.get_or_insert_with(Box::default),
                        Seg::Rest => {
                            node.rest.push(r);
                            return;
                        }
                    };
                }
                node.end.push(r);
            }
        }
    }

    /// Indices (ascending, deduplicated) of rules that may cover `path`.
    pub fn candidates(&self, path: &str) -> Vec<u32> {
        let segs: Vec<&str> = path.get(1..).unwrap_or("").split('/').collect();
        let mut out = self.always.clone();
        walk(&self.root, &segs, 0, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }
}

fn walk(node: &Node, segs: &[&str], i: usize, out: &mut Vec<u32>) {
    let here = segs.get(i);
    for (r, partial) in &node.prefix {
        if here.is_some_and(|s| s.starts_with(&**partial)) {
            out.push(*r);
        }
    }
    match here {
        None => out.extend_from_slice(&node.end),
        Some(seg) => {
            if !seg.is_empty() {
                out.extend_from_slice(&node.rest);
            }
            if let Some(child) = node.children.get(*seg) {
                walk(child, segs, i + 1, out);
            }
            if let (Some(one), false) = (&node.one, seg.is_empty()) {
                walk(one, segs, i + 1, out);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use crate::policy::Policy;
    use serde_json::json;

    /// Tiny deterministic PRNG (xorshift) so the test needs no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
            xs[(self.next() % xs.len() as u64) as usize]
        }
    }

    const WORDS: &[&str] = &[
        "a", "b", "api", "api-x", "v1", "static", "x.png", "admin", "",
    ];

    fn random_path(rng: &mut Rng) -> String {
        let n = 1 + rng.next() % 4;
        let mut p = String::new();
        for i in 0..n {
            let w = rng.pick(WORDS);
            // Canonical paths have no empty segments except a trailing one.
            let w = if w.is_empty() && i + 1 != n { "b" } else { w };
            p.push('/');
            p.push_str(w);
        }
        p
    }

    fn random_pattern(rng: &mut Rng) -> String {
        match rng.next() % 6 {
            0 => "*".into(),
            1 => format!("*{}", rng.pick(&[".png", "n", "/"])),
            2 => format!("{}*", random_path(rng).trim_end_matches('/')),
            3 => {
                let mut p = random_path(rng);
                if p.ends_with('/') {
                    p.pop();
                }
                p = p.replace("/b", "/{*}");
                if rng.next() % 2 == 0 {
                    p.push_str("/{**}");
                }
                if p.is_empty() {
                    p.push('/');
                }
                p
            }
            _ => random_path(rng),
        }
    }

    #[test]
    fn index_agrees_with_a_linear_scan() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..40 {
            let mut rules = Vec::new();
            for i in 0..60 {
                let mut rule = json!({"name": format!("r{i}"), "public": true});
                if rng.next() % 5 != 0 {
                    let paths: Vec<String> = (0..1 + rng.next() % 3)
                        .map(|_| random_pattern(&mut rng))
                        .collect();
                    rule["paths"] = json!(paths);
                }
                rules.push(rule);
            }
            let cfg =
                json!({"schema_version": 1, "trust_domain": "td", "rules": rules}).to_string();
            let policy = match Policy::from_json(&cfg) {
                Ok(p) => p,
                Err(e) => panic!("round {round}: generator made an invalid policy: {e}\n{cfg}"),
            };
            for _ in 0..200 {
                let path = random_path(&mut rng);
                let linear: Vec<usize> = policy
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.covers("GET", "h", &path))
                    .map(|(i, _)| i)
                    .collect();
                let indexed: Vec<usize> = policy
                    .covering_rules("GET", "h", &path)
                    .map(|(i, _)| i)
                    .collect();
                assert_eq!(indexed, linear, "round {round} path {path}\n{cfg}");
            }
        }
    }

    #[test]
    fn candidates_stay_few_among_many_rules() {
        let rules: Vec<_> = (0..10_000)
            .map(|i| json!({"name": format!("r{i}"), "public": true, "paths": [format!("/svc{i}/items/{{*}}"), format!("/svc{i}/static/*")]}))
            .collect();
        let cfg = json!({"schema_version": 1, "trust_domain": "td", "rules": rules}).to_string();
        let policy = Policy::from_json(&cfg).unwrap();
        assert_eq!(policy.index.candidates("/svc9999/items/42"), vec![9999]);
        assert_eq!(policy.index.candidates("/svc5/static/app.js"), vec![5]);
        assert!(policy.index.candidates("/nothing/here").is_empty());
    }
}
