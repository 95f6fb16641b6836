//! A strict JSON reader for untrusted token segments.
//!
//! `serde_json::from_slice::<Value>` silently keeps the last of two duplicate
//! keys, while other parsers keep the first: a token with `{"exp":1,"exp":9}`
//! means different things to different verifiers (RFC 8725 §3.x, "parsers
//! disagree"). It also nests up to 128 levels. This reader builds the same
//! `serde_json::Value` but fails on a duplicate key at any depth and on nesting
//! deeper than a small cap, so hostile input costs little and means one thing.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::Cell;
use std::fmt;

/// Default nesting cap for token headers and claim sets. Real tokens nest 2–4
/// levels (`realm_access.roles`); 16 leaves room without inviting abuse.
pub const MAX_DEPTH: usize = 16;

/// Why a JSON document was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// Not valid JSON (or trailing bytes after the value).
    Syntax(String),
    /// The same key appears twice in one object; the key is carried (clipped).
    DuplicateKey(String),
    /// Objects/arrays nested deeper than the cap.
    TooDeep { max: usize },
    /// Valid JSON, but the top level is not an object.
    NotObject,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Syntax(msg) => write!(f, "invalid JSON: {msg}"),
            JsonError::DuplicateKey(k) => write!(f, "duplicate key {k:?}"),
            JsonError::TooDeep { max } => write!(f, "JSON nested deeper than {max} levels"),
            JsonError::NotObject => write!(f, "JSON value is not an object"),
        }
    }
}

/// What went wrong inside the visitor, recorded out of band because serde's
/// error type only carries a message.
#[derive(Default)]
struct Failure(Cell<Option<JsonError>>);

impl Failure {
    fn set<E: de::Error>(&self, err: JsonError) -> E {
        let msg = err.to_string();
        self.0.set(Some(err));
        E::custom(msg)
    }
}

/// Parse `bytes` as a JSON object, refusing duplicate keys at any depth and
/// nesting deeper than `max_depth` (the top-level object is depth 1).
pub fn parse_object(bytes: &[u8], max_depth: usize) -> Result<Map<String, Value>, JsonError> {
    match parse_value(bytes, max_depth)? {
        Value::Object(map) => Ok(map),
        _ => Err(JsonError::NotObject),
    }
}

/// Parse any JSON value with the same rules as [`parse_object`].
pub fn parse_value(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    let failure = Failure::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let seed = Strict {
        depth: 0,
        max_depth,
        failure: &failure,
    };
    let value = match seed.deserialize(&mut de) {
        Ok(v) => v,
        Err(e) => {
            return Err(failure
                .0
                .take()
                .unwrap_or_else(|| JsonError::Syntax(e.to_string())))
        }
    };
    de.end().map_err(|e| JsonError::Syntax(e.to_string()))?;
    Ok(value)
}

/// Shorten an untrusted string before it goes into an error or a log line.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}…", s.get(..cut).unwrap_or_default()),
    }
}

#[derive(Clone, Copy)]
struct Strict<'f> {
    /// Depth of the value about to be read (0 = top level, not yet entered).
    depth: usize,
    max_depth: usize,
    failure: &'f Failure,
}

impl Strict<'_> {
    fn enter<E: de::Error>(self) -> Result<Self, E> {
        let depth = self.depth + 1;
        if depth > self.max_depth {
            return Err(self.failure.set(JsonError::TooDeep {
                max: self.max_depth,
            }));
        }
        Ok(Strict { depth, ..self })
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        // JSON cannot express NaN/inf, so from_f64 only fails on overflowed
        // literals like 1e999, which serde_json already refuses.
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.enter::<A::Error>()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.enter::<A::Error>()?;
        let mut out = Map::new();
        // Keys are compared after unescaping, so "a" and "\u0061" collide.
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(self.failure.set(JsonError::DuplicateKey(clip(&key))));
            }
            let v = map.next_value_seed(inner)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let deep_ok = format!("{}1{}", "[".repeat(15), "]".repeat(15));
        let deep_bad = format!("{}1{}", "[".repeat(16), "]".repeat(16));
        let deep_obj = format!("{}1{}", "{\"a\":".repeat(17), "}".repeat(17));
        type Want = Result<(), JsonError>;
        let cases: Vec<(&str, String, Want)> = vec![
            (
                "simple",
                r#"{"a":1,"b":[1,2],"c":{"d":"e"}}"#.into(),
                Ok(()),
            ),
            (
                "dup top",
                r#"{"exp":1,"exp":2}"#.into(),
                Err(JsonError::DuplicateKey("exp".into())),
            ),
            (
                "dup nested",
                r#"{"a":{"b":1,"b":1}}"#.into(),
                Err(JsonError::DuplicateKey("b".into())),
            ),
            (
                "dup in array obj",
                r#"{"a":[{"x":1,"x":2}]}"#.into(),
                Err(JsonError::DuplicateKey("x".into())),
            ),
            (
                "dup escaped",
                r#"{"a":1,"\u0061":2}"#.into(),
                Err(JsonError::DuplicateKey("a".into())),
            ),
            (
                "same key different objects",
                r#"{"a":{"k":1},"b":{"k":1}}"#.into(),
                Ok(()),
            ),
            ("depth 16 ok", format!("{{\"a\":{deep_ok}}}"), Ok(())),
            (
                "depth 17 refused",
                format!("{{\"a\":{deep_bad}}}"),
                Err(JsonError::TooDeep { max: 16 }),
            ),
            (
                "deep objects",
                deep_obj,
                Err(JsonError::TooDeep { max: 16 }),
            ),
            ("array top", "[1]".into(), Err(JsonError::NotObject)),
            ("string top", "\"x\"".into(), Err(JsonError::NotObject)),
        ];
        for (name, input, want) in cases {
            let got = parse_object(input.as_bytes(), MAX_DEPTH).map(|_| ());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn syntax_errors() {
        for input in [
            "",
            "{",
            "{\"a\":1} x",
            "{\"a\":1,}",
            "{'a':1}",
            "{\"a\":01}",
            "\u{feff}{}",
        ] {
            assert!(
                matches!(
                    parse_object(input.as_bytes(), MAX_DEPTH),
                    Err(JsonError::Syntax(_))
                ),
                "{input:?}"
            );
        }
    }

    #[test]
    fn numbers_keep_their_kind() {
        let m = parse_object(br#"{"i":1,"f":1.0,"n":-3,"e":1e3}"#, MAX_DEPTH).unwrap();
        assert!(m["i"].is_u64());
        assert!(m["f"].is_f64());
        assert!(m["n"].is_i64());
        assert!(m["e"].is_f64());
    }

    #[test]
    fn clip_is_char_safe() {
        let long = "é".repeat(100);
        let c = clip(&long);
        assert_eq!(c.chars().count(), 65);
        assert_eq!(clip("short"), "short");
    }
}
