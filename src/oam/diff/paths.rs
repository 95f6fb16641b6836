//! Path atoms: the classes of canonical request paths that a set of path
//! patterns tells apart (paths in one atom match exactly the same
//! patterns), each with its shortest example. See docs/diff.md "Paths".
//!
//! Every pattern kind (`*`, exact, `prefix*`, `*suffix`, `{*}`/`{**}`
//! templates) is a small deterministic automaton over characters, and so is
//! the canonical-path check of `pattern::path::canonical_path`. A
//! breadth-first walk of their product, over the characters the patterns
//! name plus one character none of them names, reaches every combination of
//! pattern matches that some canonical path has: exact, not sampled. The
//! walk is finite because each automaton has finitely many states.

use super::error::DiffError;
use crate::pattern::path::{PathPattern, Seg};
use std::collections::{HashMap, HashSet, VecDeque};

/// Product states explored before giving up (a policy would need hundreds
/// of interleaved suffix and template patterns to get near it).
const MAX_STATES: usize = 400_000;

/// One class of canonical paths.
#[derive(Debug, Clone)]
pub struct PathAtom {
    /// `member[i]`: whether the paths of this atom match pattern `i`.
    pub member: Vec<bool>,
    /// The shortest canonical path of the atom (ties: the first found).
    pub example: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum St {
    /// Template: before the leading '/'.
    Start,
    /// Exact/Prefix/Suffix: position or KMP state; Template: (segment, progress).
    At(u16, u16),
    /// Matched whatever follows (Any, a finished prefix, `{**}` once non-empty).
    Done,
    Dead,
}

enum Machine {
    Any,
    Exact(Vec<char>),
    Prefix(Vec<char>),
    /// The pattern and its KMP transitions over the alphabet.
    Suffix(Vec<char>, Vec<Vec<u16>>),
    Template(Vec<TSeg>),
}

enum TSeg {
    Lit(Vec<char>),
    One,
    Rest,
}

fn chars(s: &str) -> Vec<char> {
    s.chars().collect()
}

fn small(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// KMP automaton of `s`: `t[k][a]` is the longest prefix of `s` that is a
/// suffix of `s[..k]` followed by `alphabet[a]`.
fn kmp(s: &[char], alphabet: &[char]) -> Vec<Vec<u16>> {
    (0..=s.len())
        .map(|k| {
            alphabet
                .iter()
                .map(|c| {
                    let mut read: Vec<char> = s.get(..k).unwrap_or(&[]).to_vec();
                    read.push(*c);
                    let top = read.len().min(s.len());
                    (0..=top)
                        .rev()
                        .find(|j| read.ends_with(s.get(..*j).unwrap_or(&[])))
                        .map_or(0, small)
                })
                .collect()
        })
        .collect()
}

impl Machine {
    fn new(p: &PathPattern, alphabet: &[char]) -> Machine {
        match p {
            PathPattern::Any => Machine::Any,
            PathPattern::Exact(e) => Machine::Exact(chars(e)),
            PathPattern::Prefix(e) => Machine::Prefix(chars(e)),
            PathPattern::Suffix(e) => {
                let s = chars(e);
                let t = kmp(&s, alphabet);
                Machine::Suffix(s, t)
            }
            PathPattern::Template(segs) => Machine::Template(
                segs.iter()
                    .map(|s| match s {
                        Seg::Lit(l) => TSeg::Lit(chars(l)),
                        Seg::One => TSeg::One,
                        Seg::Rest => TSeg::Rest,
                    })
                    .collect(),
            ),
        }
    }

    fn start(&self) -> St {
        match self {
            Machine::Any => St::Done,
            Machine::Template(_) => St::Start,
            Machine::Exact(_) | Machine::Prefix(_) | Machine::Suffix(..) => St::At(0, 0),
        }
    }

    fn step(&self, st: St, c: char, a: usize) -> St {
        match (self, st) {
            (_, St::Dead) => St::Dead,
            (_, St::Done) => St::Done,
            (Machine::Exact(e), St::At(_, i)) => match e.get(usize::from(i)) {
                Some(x) if *x == c => St::At(0, i + 1),
                _ => St::Dead,
            },
            (Machine::Prefix(p), St::At(_, i)) => match p.get(usize::from(i)) {
                Some(x) if *x == c && usize::from(i) + 1 == p.len() => St::Done,
                Some(x) if *x == c => St::At(0, i + 1),
                _ => St::Dead,
            },
            (Machine::Suffix(_, t), St::At(_, k)) => t
                .get(usize::from(k))
                .and_then(|row| row.get(a))
                .map_or(St::Dead, |k| St::At(0, *k)),
            (Machine::Template(segs), st) => template_step(segs, st, c),
            (Machine::Any, _) | (_, St::Start) => St::Dead,
        }
    }

    fn accepts(&self, st: St) -> bool {
        match (self, st) {
            (_, St::Done) => true,
            (Machine::Exact(e), St::At(_, i)) => usize::from(i) == e.len(),
            (Machine::Suffix(s, _), St::At(_, k)) => usize::from(k) == s.len(),
            (Machine::Template(segs), St::At(i, j)) => {
                usize::from(i) + 1 == segs.len() && seg_complete(segs, i, j)
            }
            _ => false,
        }
    }
}

fn seg_complete(segs: &[TSeg], i: u16, j: u16) -> bool {
    match segs.get(usize::from(i)) {
        Some(TSeg::Lit(l)) => usize::from(j) == l.len(),
        Some(TSeg::One) => j == 1,
        Some(TSeg::Rest) | None => false,
    }
}

/// `PathPattern::matches` for templates, one character at a time.
fn template_step(segs: &[TSeg], st: St, c: char) -> St {
    let St::At(i, j) = st else {
        return match (st, c) {
            (St::Start, '/') => St::At(0, 0),
            _ => St::Dead,
        };
    };
    if c == '/' {
        let next = usize::from(i) + 1;
        return if seg_complete(segs, i, j) && next < segs.len() {
            St::At(small(next), 0)
        } else {
            St::Dead
        };
    }
    match segs.get(usize::from(i)) {
        Some(TSeg::Lit(l)) if l.get(usize::from(j)) == Some(&c) => St::At(i, j + 1),
        Some(TSeg::One) => St::At(i, 1),
        Some(TSeg::Rest) => St::Done,
        _ => St::Dead,
    }
}

/// The canonical-path check of `canonical_path`, as an automaton.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Canon {
    Start,
    Seg(SegKind, Pct),
    Dead,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SegKind {
    Empty,
    Dot,
    DotDot,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Pct {
    No,
    Percent,
    Hi(u8),
}

fn hex(c: char) -> Option<u8> {
    c.to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// A percent-encoded byte a canonical path may carry.
fn encodable(b: u8) -> bool {
    let unreserved = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    !(unreserved || matches!(b, b'/' | b'\\' | b'.' | 0..=0x1f | 0x7f))
}

impl Canon {
    fn step(self, c: char) -> Canon {
        use SegKind::*;
        match self {
            Canon::Dead => Canon::Dead,
            Canon::Start if c == '/' => Canon::Seg(Empty, Pct::No),
            Canon::Start => Canon::Dead,
            Canon::Seg(_, Pct::Percent) => match hex(c) {
                Some(h) => Canon::Seg(Other, Pct::Hi(h)),
                None => Canon::Dead,
            },
            Canon::Seg(_, Pct::Hi(h)) => match hex(c) {
                Some(l) if encodable(h * 16 + l) => Canon::Seg(Other, Pct::No),
                _ => Canon::Dead,
            },
            Canon::Seg(kind, Pct::No) => match c {
                '/' if kind == Other => Canon::Seg(Empty, Pct::No),
                '/' => Canon::Dead,
                '%' => Canon::Seg(Other, Pct::Percent),
                '.' => Canon::Seg(
                    match kind {
                        Empty => Dot,
                        Dot => DotDot,
                        DotDot | Other => Other,
                    },
                    Pct::No,
                ),
                '\\' | ';' | '#' | '?' => Canon::Dead,
                c if c.is_control() => Canon::Dead,
                _ => Canon::Seg(Other, Pct::No),
            },
        }
    }

    fn accepts(self) -> bool {
        matches!(self, Canon::Seg(SegKind::Empty | SegKind::Other, Pct::No))
    }
}

/// The characters worth trying: '/', '.', every character the patterns
/// name, the hex digits when a pattern names '%', and one more character
/// that none of them names (it stands for all the others).
fn alphabet(patterns: &[PathPattern]) -> Vec<char> {
    let mut set: Vec<char> = vec!['/', '.'];
    let mut add = |s: &str| set.extend(s.chars());
    for p in patterns {
        match p {
            PathPattern::Any => {}
            PathPattern::Exact(s) | PathPattern::Prefix(s) | PathPattern::Suffix(s) => add(s),
            PathPattern::Template(segs) => {
                for s in segs {
                    if let Seg::Lit(l) = s {
                        add(l);
                    }
                }
            }
        }
    }
    if set.contains(&'%') {
        set.extend("0123456789abcdefABCDEF".chars());
    }
    let other = "xyzqkjwvutsrponmlhgiZYXWVUTSRQPONMLKJIHG-_~"
        .chars()
        .find(|c| !set.contains(c))
        .unwrap_or('\u{436}');
    set.sort_unstable();
    set.dedup();
    // The unnamed character first: examples read "/orders/x", not "/orders/.".
    let mut out = vec![other];
    out.extend(set);
    out
}

type State = (Canon, Vec<St>);

/// Every atom of `patterns` over canonical paths, in breadth-first order
/// (shortest examples first). Exact for any set of patterns; refuses only
/// when the product has more than `MAX_STATES` states.
pub fn path_atoms(patterns: &[PathPattern]) -> Result<Vec<PathAtom>, DiffError> {
    let alpha = alphabet(patterns);
    let machines: Vec<Machine> = patterns.iter().map(|p| Machine::new(p, &alpha)).collect();
    let start: State = (Canon::Start, machines.iter().map(Machine::start).collect());
    let mut seen: HashSet<State> = HashSet::from([start.clone()]);
    let mut queue: VecDeque<(State, String)> = VecDeque::from([(start, String::new())]);
    let mut atoms: Vec<PathAtom> = Vec::new();
    let mut found: HashMap<Vec<bool>, usize> = HashMap::new();
    while let Some(((canon, sts), path)) = queue.pop_front() {
        if canon.accepts() {
            let member: Vec<bool> = machines
                .iter()
                .zip(&sts)
                .map(|(m, s)| m.accepts(*s))
                .collect();
            match found.get(&member) {
                None => {
                    found.insert(member.clone(), atoms.len());
                    atoms.push(PathAtom {
                        member,
                        example: path.clone(),
                    });
                }
                // Prefer an example without a trailing '/' ("/a/x/y" over
                // "/a/x/"): it reads as the region, not as a slash trick.
                Some(i) => {
                    if let Some(a) = atoms.get_mut(*i) {
                        if a.example.len() > 1 && a.example.ends_with('/') && !path.ends_with('/') {
                            a.example.clone_from(&path);
                        }
                    }
                }
            }
        }
        for (a, c) in alpha.iter().enumerate() {
            let next_canon = canon.step(*c);
            if next_canon == Canon::Dead {
                continue;
            }
            let next: Vec<St> = machines
                .iter()
                .zip(&sts)
                .map(|(m, s)| m.step(*s, *c, a))
                .collect();
            let state = (next_canon, next);
            if seen.insert(state.clone()) {
                if seen.len() > MAX_STATES {
                    return Err(DiffError::TooComplex(format!(
                        "the {} path patterns interleave into more than {MAX_STATES} states",
                        patterns.len()
                    )));
                }
                let mut p = path.clone();
                p.push(*c);
                queue.push_back((state, p));
            }
        }
    }
    Ok(atoms)
}

/// Which patterns a path matches (the same order as the atoms' `member`).
pub fn membership(patterns: &[PathPattern], path: &str) -> Vec<bool> {
    patterns.iter().map(|p| p.matches(path)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::pattern::path::canonical_path;

    fn pats(list: &[&str]) -> Vec<PathPattern> {
        list.iter()
            .map(|p| PathPattern::parse(p).unwrap())
            .collect()
    }

    /// A small xorshift PRNG: the tests are seeded and repeatable.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn atoms_of_the_shop_orders_patterns() {
        let p = pats(&[
            "/internal/{**}",
            "/healthz",
            "/orders",
            "/orders/{*}",
            "/orders/{*}/payment-status",
            "/admin/{**}",
            "/admin/orders/{*}",
        ]);
        let atoms = path_atoms(&p).unwrap();
        // Each pattern alone, /admin/orders/{*} inside /admin/{**}, and none.
        assert_eq!(atoms.len(), 8, "{atoms:?}");
        for a in &atoms {
            assert_eq!(membership(&p, &a.example), a.member, "{}", a.example);
            assert!(canonical_path(&a.example).is_ok(), "{}", a.example);
        }
        let example = |m: &[usize]| {
            let want: Vec<bool> = (0..p.len()).map(|i| m.contains(&i)).collect();
            atoms
                .iter()
                .find(|a| a.member == want)
                .unwrap()
                .example
                .clone()
        };
        assert_eq!(example(&[]), "/");
        assert_eq!(example(&[5, 6]), "/admin/orders/x");
        assert_eq!(example(&[4]), "/orders/x/payment-status");
    }

    #[test]
    fn string_patterns_and_dot_segments() {
        let p = pats(&["/api*", "*.png", "/api/{*}", "/a"]);
        let atoms = path_atoms(&p).unwrap();
        let vectors: HashSet<Vec<bool>> = atoms.iter().map(|a| a.member.clone()).collect();
        // "/api.png" matches the prefix and the suffix; "/api/x.png" all three.
        assert!(vectors.contains(&vec![true, true, false, false]));
        assert!(vectors.contains(&vec![true, true, true, false]));
        // "/a" matches neither "/api*" nor "*.png".
        assert!(vectors.contains(&vec![false, false, false, true]));
        // Nothing matches both "/a" and "/api*".
        assert!(!atoms.iter().any(|a| a.member[0] && a.member[3]));
        for a in &atoms {
            assert_eq!(membership(&p, &a.example), a.member);
            assert!(canonical_path(&a.example).is_ok(), "{}", a.example);
        }
    }

    #[test]
    fn the_canonical_automaton_agrees_with_canonical_path() {
        // Random strings over the characters canonical_path treats specially.
        let alphabet: Vec<char> = "/.%2e5fFaA;#\\?x-~ ".chars().collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let len = rng.below(9);
            let s: String = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len())])
                .collect();
            let mut c = Canon::Start;
            for ch in s.chars() {
                c = c.step(ch);
            }
            // The automaton reads a path without its query: '?' is refused.
            let want = !s.contains('?') && canonical_path(&s).is_ok();
            assert_eq!(c.accepts(), want, "{s:?}");
        }
    }

    #[test]
    fn atoms_are_complete_on_random_paths() {
        let p = pats(&[
            "/a/{*}",
            "/a/{**}",
            "/a/b",
            "/a*",
            "*b",
            "*/b",
            "/{*}/b/{**}",
            "/a%20b*",
            "/b.",
        ]);
        let atoms = path_atoms(&p).unwrap();
        let vectors: HashSet<Vec<bool>> = atoms.iter().map(|a| a.member.clone()).collect();
        let segs = ["a", "b", "ab", "a%20b", "x", ".b", "b.", "%20"];
        let mut rng = Rng(7);
        for _ in 0..5_000 {
            let n = 1 + rng.below(4);
            let mut path = String::new();
            for _ in 0..n {
                path.push('/');
                path.push_str(segs[rng.below(segs.len())]);
            }
            if rng.below(4) == 0 {
                path.push('/');
            }
            if canonical_path(&path).is_err() {
                continue;
            }
            assert!(
                vectors.contains(&membership(&p, &path)),
                "{path} has no atom"
            );
        }
    }
}
