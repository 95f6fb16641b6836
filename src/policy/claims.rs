//! Claim conditions from the policy (`ClaimCondition`), compiled once and
//! evaluated against verified claim sets.
//!
//! Comparison is deliberately narrow: scalars only, exact string matches, no
//! type coercion (`"true"` is not `true`), no regex, no case folding. A
//! missing or mistyped claim never satisfies a condition.

use crate::config::ClaimCondition;
use crate::error::{field, Diagnostics, FieldPath, Message, Part, Problem};
use crate::json::write::to_text;
use serde_json::{Map, Value};
use std::fmt;

/// Longest claim path we accept in configuration (and the deepest walk).
const MAX_PATH_SEGMENTS: usize = 16;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Equals(Value),
    OneOf(Vec<Value>),
    Contains(Value),
    ScopeContains(String),
    Prefix(String),
}

/// One compiled claim condition.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimTest {
    /// As written, for messages.
    path: String,
    segments: Vec<String>,
    op: Op,
}

/// Look up a dotted claim path (`realm_access.roles`) by walking nested
/// objects. Each segment is an exact key; there is no array indexing and no
/// escaping, so a claim name that itself contains a dot cannot be addressed.
pub fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut segments = path.split('.');
    let mut cur = claims.get(segments.next()?)?;
    for seg in segments {
        cur = cur.as_object()?.get(seg)?;
    }
    Some(cur)
}

fn lookup_segments<'a>(claims: &'a Map<String, Value>, segments: &[String]) -> Option<&'a Value> {
    let (first, rest) = segments.split_first()?;
    let mut cur = claims.get(first)?;
    for seg in rest {
        cur = cur.as_object()?.get(seg)?;
    }
    Some(cur)
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// Scalar equality without coercion; numbers compare by value (1 == 1.0).
fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if x.is_f64() || y.is_f64() {
                matches!((x.as_f64(), y.as_f64()), (Some(x), Some(y)) if x == y)
            } else {
                // One is a u64 above i64::MAX and the other negative.
                false
            }
        }
        _ => false,
    }
}

fn scalar_field(d: &mut Diagnostics, v: &Value, path: FieldPath) -> Option<Value> {
    if is_scalar(v) {
        Some(v.clone())
    } else {
        d.invalid(path, "must be a string, number or boolean");
        None
    }
}

/// The operators, in the order messages list them.
const OPERATORS: [&str; 5] = ["equals", "one_of", "contains", "scope_contains", "prefix"];

fn compile_op(d: &mut Diagnostics, cond: &ClaimCondition, path: &FieldPath) -> Option<Op> {
    let present = [
        cond.equals.is_some(),
        cond.one_of.is_some(),
        cond.contains.is_some(),
        cond.scope_contains.is_some(),
        cond.prefix.is_some(),
    ];
    let set: Vec<&'static str> = OPERATORS
        .into_iter()
        .zip(present)
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
    if set.len() != 1 {
        let mut parts = vec![Part::from("exactly one of ")];
        for (i, name) in OPERATORS.iter().enumerate() {
            if i > 0 {
                parts.push(Part::from(", "));
            }
            parts.push(field(name));
        }
        parts.push(Part::from(" must be set (found: "));
        if set.is_empty() {
            parts.push(Part::from("none"));
        }
        for (i, name) in set.iter().enumerate() {
            if i > 0 {
                parts.push(Part::from(", "));
            }
            parts.push(field(name));
        }
        parts.push(Part::from(")"));
        d.invalid(path.clone(), Message::new(parts));
        return None;
    }
    if let Some(v) = &cond.equals {
        return scalar_field(d, v, path.field("equals")).map(Op::Equals);
    }
    if let Some(list) = &cond.one_of {
        if list.is_empty() {
            d.error(path.field("one_of"), Problem::Empty);
            return None;
        }
        let values: Vec<Option<Value>> = list
            .iter()
            .enumerate()
            .map(|(i, v)| scalar_field(d, v, path.field("one_of").index(i)))
            .collect();
        return values
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .map(Op::OneOf);
    }
    if let Some(v) = &cond.contains {
        return scalar_field(d, v, path.field("contains")).map(Op::Contains);
    }
    if let Some(word) = &cond.scope_contains {
        let fpath = path.field("scope_contains");
        if word.is_empty() {
            d.error(fpath, Problem::Empty);
            return None;
        }
        if word.contains(' ') {
            d.invalid(fpath, "must be a single scope word without spaces");
            return None;
        }
        return Some(Op::ScopeContains(word.clone()));
    }
    let prefix = cond.prefix.as_ref()?;
    if prefix.is_empty() {
        // An empty prefix matches every string: say so instead of allowing it.
        d.invalid(
            path.field("prefix"),
            "must not be empty: an empty prefix matches every string claim",
        );
        return None;
    }
    Some(Op::Prefix(prefix.clone()))
}

impl ClaimTest {
    /// Compile one condition at `path` (e.g. `roles[1].jwt.claims[0]`),
    /// adding every problem to `d`. `None` if it has errors.
    pub fn compile(
        cond: &ClaimCondition,
        path: &FieldPath,
        d: &mut Diagnostics,
    ) -> Option<ClaimTest> {
        let claim_path = path.field("claim");
        let segments: Vec<String> = cond.claim.split('.').map(str::to_owned).collect();
        let mut ok = true;
        if cond.claim.is_empty() {
            d.error(claim_path, Problem::Empty);
            ok = false;
        } else if segments.iter().any(String::is_empty) {
            d.invalid(
                claim_path,
                format!(
                    "'{}' has an empty segment; use dotted names like realm_access.roles",
                    cond.claim
                ),
            );
            ok = false;
        } else if segments.len() > MAX_PATH_SEGMENTS {
            d.invalid(
                claim_path,
                format!("more than {MAX_PATH_SEGMENTS} segments"),
            );
            ok = false;
        }
        let op = compile_op(d, cond, path)?;
        ok.then(|| ClaimTest {
            path: cond.claim.clone(),
            segments,
            op,
        })
    }

    /// The claim path as configured.
    pub fn claim(&self) -> &str {
        &self.path
    }

    /// Does the claim set satisfy this condition? A missing claim never does.
    pub fn eval(&self, claims: &Map<String, Value>) -> bool {
        let Some(value) = lookup_segments(claims, &self.segments) else {
            return false;
        };
        match &self.op {
            Op::Equals(want) => scalar_eq(value, want),
            Op::OneOf(list) => list.iter().any(|w| scalar_eq(value, w)),
            Op::Contains(want) => value
                .as_array()
                .is_some_and(|a| a.iter().any(|v| scalar_eq(v, want))),
            Op::ScopeContains(word) => value
                .as_str()
                .is_some_and(|s| s.split(' ').any(|w| w == word)),
            Op::Prefix(p) => value.as_str().is_some_and(|s| s.starts_with(p.as_str())),
        }
    }

    /// Human-readable form for `oam-authz explain`, e.g. `groups contains "admins"`.
    pub fn describe(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ClaimTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let claim = &self.path;
        let j = to_text;
        match &self.op {
            Op::Equals(v) => write!(f, "{claim} equals {}", j(v)),
            Op::OneOf(list) => {
                let items: Vec<String> = list.iter().map(to_text).collect();
                write!(f, "{claim} is one of [{}]", items.join(", "))
            }
            Op::Contains(v) => write!(f, "{claim} contains {}", j(v)),
            Op::ScopeContains(w) => write!(f, "{claim} has scope {}", j(&Value::String(w.clone()))),
            Op::Prefix(p) => write!(f, "{claim} starts with {}", j(&Value::String(p.clone()))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(claim: &str, op: &str, v: Value) -> ClaimCondition {
        let mut c = ClaimCondition {
            claim: claim.into(),
            equals: None,
            one_of: None,
            contains: None,
            scope_contains: None,
            prefix: None,
        };
        match op {
            "equals" => c.equals = Some(v),
            "one_of" => c.one_of = Some(serde_json::from_value(v).unwrap()),
            "contains" => c.contains = Some(v),
            "scope_contains" => c.scope_contains = Some(v.as_str().unwrap().into()),
            "prefix" => c.prefix = Some(v.as_str().unwrap().into()),
            _ => unreachable!(),
        }
        c
    }

    #[test]
    fn eval_table() {
        let claims = json!({
            "sub": "alice",
            "email_verified": true,
            "verified_str": "true",
            "level": 3,
            "ratio": 1.0,
            "big": 18446744073709551615u64,
            "neg": -1,
            "groups": ["admins", "dev", 7, true],
            "groups_str": "admins",
            "scope": "read:orders write:orders  admin",
            "scope_arr": ["read:orders"],
            "realm_access": {"roles": ["ops"], "level": {"n": 1}},
            "tenant": null,
            "namespace_path": "platform/tools",
            "group_only": "platform",
            "build_branch": "release/1.4",
        });
        let claims = claims.as_object().unwrap();
        let table: Vec<(&str, &str, Value, bool)> = vec![
            ("sub", "equals", json!("alice"), true),
            ("sub", "equals", json!("Alice"), false),
            ("sub", "equals", json!("alice "), false),
            ("email_verified", "equals", json!(true), true),
            ("email_verified", "equals", json!("true"), false),
            ("verified_str", "equals", json!(true), false),
            ("level", "equals", json!(3), true),
            ("level", "equals", json!(3.0), true),
            ("level", "equals", json!("3"), false),
            ("ratio", "equals", json!(1), true),
            ("big", "equals", json!(-1), false),
            ("neg", "equals", json!(-1), true),
            ("neg", "equals", json!(-1.0), true),
            ("missing", "equals", json!("x"), false),
            ("tenant", "equals", json!("null"), false),
            ("groups", "equals", json!("admins"), false),
            ("sub", "one_of", json!(["bob", "alice"]), true),
            ("sub", "one_of", json!(["bob"]), false),
            ("level", "one_of", json!([1, 3.0]), true),
            ("groups", "contains", json!("admins"), true),
            ("groups", "contains", json!("admin"), false),
            ("groups", "contains", json!(7), true),
            ("groups", "contains", json!(7.0), true),
            ("groups", "contains", json!("7"), false),
            ("groups", "contains", json!(true), true),
            ("groups_str", "contains", json!("admins"), false),
            ("realm_access.roles", "contains", json!("ops"), true),
            ("realm_access.roles", "contains", json!("dev"), false),
            ("realm_access.level.n", "equals", json!(1), true),
            ("realm_access.missing.n", "equals", json!(1), false),
            ("sub.x", "equals", json!(1), false),
            ("scope", "scope_contains", json!("write:orders"), true),
            ("scope", "scope_contains", json!("admin"), true),
            ("scope", "scope_contains", json!("write"), false),
            (
                "scope",
                "scope_contains",
                json!("read:orders write:orders"),
                false,
            ),
            ("scope_arr", "scope_contains", json!("read:orders"), false),
            ("missing", "scope_contains", json!("a"), false),
            ("namespace_path", "prefix", json!("platform/"), true),
            ("namespace_path", "prefix", json!("platform/tools"), true),
            ("namespace_path", "prefix", json!("platform/tools/"), false),
            ("namespace_path", "prefix", json!("Platform/"), false),
            ("group_only", "prefix", json!("platform/"), false),
            ("build_branch", "prefix", json!("release/"), true),
            ("groups", "prefix", json!("admin"), false),
            ("level", "prefix", json!("3"), false),
            ("missing", "prefix", json!("a"), false),
        ];
        for (claim, op, v, want) in table {
            let c = cond(claim, op, v.clone());
            let path = FieldPath::root()
                .field("roles")
                .index(0)
                .field("jwt")
                .field("claims")
                .index(0);
            let mut d = Diagnostics::new();
            match ClaimTest::compile(&c, &path, &mut d) {
                Some(t) => assert_eq!(t.eval(claims), want, "{claim} {op} {v}"),
                None => {
                    // Only the multi-word scope is a config error in this table.
                    assert!(!want, "{claim} {op} {v}: {d}");
                    let e = d.iter().next().unwrap();
                    assert_eq!(e.path.to_string(), "roles[0].jwt.claims[0].scope_contains");
                }
            }
        }
    }

    #[test]
    fn lookup_walks_objects() {
        let claims = json!({"a": {"b": {"c": "x"}}, "a.b": 1});
        let claims = claims.as_object().unwrap();
        assert_eq!(lookup(claims, "a.b.c"), Some(&json!("x")));
        assert_eq!(lookup(claims, "a.b.c.d"), None);
        assert_eq!(lookup(claims, "a.x"), None);
        assert_eq!(lookup(claims, ""), None);
    }

    #[test]
    fn describe() {
        let table = [
            (
                cond("groups", "contains", json!("admins")),
                "groups contains \"admins\"",
            ),
            (
                cond("email_verified", "equals", json!(true)),
                "email_verified equals true",
            ),
            (
                cond("tier", "one_of", json!(["gold", 2])),
                "tier is one of [\"gold\", 2]",
            ),
            (
                cond("scope", "scope_contains", json!("read")),
                "scope has scope \"read\"",
            ),
            (
                cond("namespace_path", "prefix", json!("platform/")),
                "namespace_path starts with \"platform/\"",
            ),
        ];
        for (c, want) in table {
            let mut d = Diagnostics::new();
            let t = ClaimTest::compile(&c, &FieldPath::root().field("p"), &mut d).unwrap();
            assert_eq!(t.describe(), want);
        }
    }

    #[test]
    fn config_errors() {
        let base = ClaimCondition {
            claim: "groups".into(),
            equals: None,
            one_of: None,
            contains: None,
            scope_contains: None,
            prefix: None,
        };
        let two = ClaimCondition {
            equals: Some(json!("a")),
            contains: Some(json!("b")),
            ..base.clone()
        };
        let table: Vec<(ClaimCondition, &str)> = vec![
            (base.clone(), "r.claims[0]: exactly one of equals, one_of, contains, scope_contains, prefix must be set (found: none)"),
            (two, "r.claims[0]: exactly one of equals, one_of, contains, scope_contains, prefix must be set (found: equals, contains)"),
            (ClaimCondition { prefix: Some("p/".into()), ..cond("g", "equals", json!("a")) }, "r.claims[0]: exactly one of equals, one_of, contains, scope_contains, prefix must be set (found: equals, prefix)"),
            (cond("g", "prefix", json!("")), "r.claims[0].prefix: must not be empty: an empty prefix matches every string claim"),
            (ClaimCondition { claim: "".into(), ..cond("x", "equals", json!(1)) }, "r.claims[0].claim: must not be empty"),
            (ClaimCondition { claim: "a..b".into(), ..cond("x", "equals", json!(1)) }, "r.claims[0].claim: 'a..b' has an empty segment"),
            (ClaimCondition { claim: ".a".into(), ..cond("x", "equals", json!(1)) }, "r.claims[0].claim: '.a' has an empty segment"),
            (cond("g", "equals", json!(["a"])), "r.claims[0].equals: must be a string, number or boolean"),
            (cond("g", "equals", json!(null)), "r.claims[0].equals: must be a string, number or boolean"),
            (cond("g", "contains", json!({"a": 1})), "r.claims[0].contains: must be a string, number or boolean"),
            (cond("g", "one_of", json!([])), "r.claims[0].one_of: must not be empty"),
            (cond("g", "one_of", json!(["a", null])), "r.claims[0].one_of[1]: must be a string, number or boolean"),
            (cond("g", "scope_contains", json!("")), "r.claims[0].scope_contains: must not be empty"),
            (cond("g", "scope_contains", json!("a b")), "r.claims[0].scope_contains: must be a single scope word"),
        ];
        for (c, want) in table {
            let path = FieldPath::root().field("r").field("claims").index(0);
            let mut d = Diagnostics::new();
            assert!(ClaimTest::compile(&c, &path, &mut d).is_none());
            let got = d.to_string();
            assert!(got.starts_with(want), "got: {got}\nwant: {want}");
        }
    }
}
