//! A strict JSON reader (RFC 8259) for everything the filter parses: token
//! segments, JWKS and discovery documents, the plugin configuration, shared
//! records.
//!
//! Stricter than `serde_json::from_slice::<Value>` on purpose: a duplicate
//! key at any depth is refused (parsers disagree on which one wins, RFC 8725
//! §3.x), nesting is capped, and there is no BOM, comment or trailing comma.
//! It builds `serde_json::Value`s but carries no serde code, so the module
//! stays small (docs/performance.md "Module size").

use super::{clip, Map, Number, Value};
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
    let mut r = Reader {
        b: bytes,
        i: 0,
        max_depth,
    };
    r.ws();
    let v = r.value(0)?;
    r.ws();
    if r.i < r.b.len() {
        return Err(r.syntax("trailing characters"));
    }
    Ok(v)
}

struct Reader<'b> {
    b: &'b [u8],
    i: usize,
    max_depth: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// "… at line L column C", as serde_json says it (1-based).
    fn syntax(&self, what: &str) -> JsonError {
        let upto = self.b.get(..self.i).unwrap_or_default();
        let line = 1 + upto.iter().filter(|c| **c == b'\n').count();
        let col = 1 + upto.iter().rev().take_while(|c| **c != b'\n').count();
        JsonError::Syntax(format!("{what} at line {line} column {col}"))
    }

    fn expect_word(&mut self, word: &[u8], v: Value) -> Result<Value, JsonError> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.syntax("expected a value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, JsonError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.expect_word(b"true", Value::Bool(true)),
            Some(b'f') => self.expect_word(b"false", Value::Bool(false)),
            Some(b'n') => self.expect_word(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            None => Err(self.syntax("EOF while parsing a value")),
            Some(_) => Err(self.syntax("expected a value")),
        }
    }

    fn enter(&self, depth: usize) -> Result<(), JsonError> {
        if depth > self.max_depth {
            return Err(JsonError::TooDeep {
                max: self.max_depth,
            });
        }
        Ok(())
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.enter(depth)?;
        self.i += 1;
        let mut out = Map::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Value::Object(out));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.syntax("expected a string key"));
            }
            // Keys are compared after unescaping, so "a" and "\u0061" collide.
            let key = self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.syntax("expected ':'"));
            }
            self.i += 1;
            self.ws();
            let v = self.value(depth)?;
            // One search of the map, not two (contains_key, then insert).
            match out.entry(key) {
                serde_json::map::Entry::Occupied(e) => {
                    return Err(JsonError::DuplicateKey(clip(e.key())))
                }
                serde_json::map::Entry::Vacant(e) => {
                    e.insert(v);
                }
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Object(out));
                }
                None => return Err(self.syntax("EOF while parsing an object")),
                Some(_) => return Err(self.syntax("expected ',' or '}'")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.enter(depth)?;
        self.i += 1;
        let mut out = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Value::Array(out));
        }
        loop {
            self.ws();
            out.push(self.value(depth)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::Array(out));
                }
                None => return Err(self.syntax("EOF while parsing a list")),
                Some(_) => return Err(self.syntax("expected ',' or ']'")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self
            .b
            .get(self.i..self.i + 4)
            .ok_or_else(|| self.syntax("EOF while parsing a string"))?;
        let mut v = 0u32;
        for d in digits {
            let x = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(self.syntax("invalid escape")),
            };
            v = (v << 4) | u32::from(x);
        }
        self.i += 4;
        Ok(v)
    }

    /// `\uXXXX`, with a surrogate pair when the first half is a high surrogate.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let hi = self.hex4()?;
        let code = match hi {
            0xD800..=0xDBFF => {
                if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                    return Err(self.syntax("lone leading surrogate in hex escape"));
                }
                self.i += 2;
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return Err(self.syntax("lone leading surrogate in hex escape"));
                }
                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.syntax("lone trailing surrogate in hex escape")),
            c => c,
        };
        char::from_u32(code).ok_or_else(|| self.syntax("invalid escape"))
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.i += 1;
        let mut out = String::new();
        loop {
            // Copy the run up to the next quote, backslash or control byte.
            let start = self.i;
            let rest = self.b.get(start..).unwrap_or_default();
            let len = rest
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .unwrap_or(rest.len());
            self.i += len;
            let run = rest.get(..len).unwrap_or_default();
            let run =
                std::str::from_utf8(run).map_err(|_| self.syntax("invalid unicode code point"))?;
            if out.is_empty() && self.peek() == Some(b'"') {
                // The common case, no escape: one allocation of the right size.
                self.i += 1;
                return Ok(run.to_owned());
            }
            out.push_str(run);
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = self
                        .peek()
                        .ok_or_else(|| self.syntax("EOF while parsing a string"))?;
                    self.i += 1;
                    out.push(match c {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => {
                            self.i -= 1;
                            return Err(self.syntax("invalid escape"));
                        }
                    });
                }
                None => return Err(self.syntax("EOF while parsing a string")),
                Some(_) => {
                    return Err(self.syntax(
                        "control character (\\u0000-\\u001F) found while parsing a string",
                    ))
                }
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.i;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let int_start = self.i;
        if self.digits() == 0 {
            return Err(self.syntax("invalid number"));
        }
        if self.b.get(int_start) == Some(&b'0') && self.i - int_start > 1 {
            return Err(self.syntax("invalid number"));
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.i += 1;
            float = true;
            if self.digits() == 0 {
                return Err(self.syntax("invalid number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            float = true;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(self.syntax("invalid number"));
            }
        }
        let text = std::str::from_utf8(self.b.get(start..self.i).unwrap_or_default())
            .map_err(|_| self.syntax("invalid number"))?;
        if !float {
            // Integers that do not fit 64 bits become floats, as in serde_json.
            // `-0` is the float -0.0, as in serde_json.
            if negative {
                if let Ok(Some(v)) = text.parse::<i64>().map(|v| (v != 0).then_some(v)) {
                    return Ok(Value::Number(Number::from(v)));
                }
            } else if let Ok(v) = text.parse::<u64>() {
                return Ok(Value::Number(Number::from(v)));
            }
        }
        text.parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| self.syntax("number out of range"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
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
            "{\"a\":1.}",
            "{\"a\":-}",
            "{\"a\":1e}",
            "{\"a\":tru}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\udc00x\"}",
            "{\"a\":\"tab\there\"}",
            "{\"a\":1e999}",
            "{\"a\" 1}",
            "[1 2]",
        ] {
            assert!(
                matches!(
                    parse_value(input.as_bytes(), MAX_DEPTH),
                    Err(JsonError::Syntax(_))
                ),
                "{input:?}"
            );
        }
        assert_eq!(
            parse_value(b"{\n  \"a\": nope}", MAX_DEPTH),
            Err(JsonError::Syntax(
                "expected a value at line 2 column 8".into()
            ))
        );
    }

    #[test]
    fn numbers_keep_their_kind() {
        let m = parse_object(
            br#"{"i":1,"f":1.0,"n":-3,"e":1e3,"big":18446744073709551616,"max":18446744073709551615}"#,
            MAX_DEPTH,
        )
        .unwrap();
        assert!(m["i"].is_u64());
        assert!(m["f"].is_f64());
        assert!(m["n"].is_i64());
        assert!(m["e"].is_f64());
        assert!(m["big"].is_f64());
        assert_eq!(m["max"].as_u64(), Some(u64::MAX));
    }

    /// Equal values; floats within rounding (serde_json's own float parser
    /// is not always correctly rounded, Rust's is).
    fn same(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                x == y || (x - y).abs() <= 1e-15 * x.abs().max(y.abs())
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
            }
            _ => a == b,
        }
    }

    /// Everything serde_json accepts without duplicates or deep nesting, we
    /// accept with the same value; everything it refuses, we refuse.
    #[test]
    fn agrees_with_serde_json() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let atoms = [
            "0",
            "-0",
            "12",
            "-7",
            "1.5",
            "2e10",
            "-3.25E-2",
            "true",
            "false",
            "null",
            "\"\"",
            "\"a\\\"b\"",
            "\"\\u00e9\\ud83d\\ude00\"",
            "\"é\"",
            "[]",
            "{}",
            "\"\\/\\b\\f\\n\\r\\t\"",
        ];
        let noise = [
            " ", ",", ":", "]", "}", "{", "[", "\"", "\\", "x", "1", "-", ".", "e", "\n",
        ];
        for round in 0..4000 {
            let mut doc = String::from("{");
            let n = next() % 5;
            for k in 0..n {
                if k > 0 {
                    doc.push(',');
                }
                let v = atoms[(next() % atoms.len() as u64) as usize];
                let v = if next() % 3 == 0 {
                    format!("[{v},{{\"x\":{v}}}]")
                } else {
                    v.to_string()
                };
                doc.push_str(&format!("\"k{k}\":{v}"));
            }
            doc.push('}');
            if round % 2 == 1 {
                // Corrupt one byte position with noise.
                let pos = (next() % (doc.len() as u64 + 1)) as usize;
                let mut b = doc.into_bytes();
                let ins = noise[(next() % noise.len() as u64) as usize].as_bytes();
                let pos = pos.min(b.len());
                b.splice(pos..pos, ins.iter().copied());
                doc = match String::from_utf8(b) {
                    Ok(s) => s,
                    Err(_) => continue,
                };
            }
            let ours = parse_value(doc.as_bytes(), MAX_DEPTH);
            let theirs: Result<Value, _> = serde_json::from_str(&doc);
            match (&ours, &theirs) {
                (Ok(a), Ok(b)) => assert!(same(a, b), "{doc}: {a:?} vs {b:?}"),
                (Err(JsonError::Syntax(_)), Err(_)) => {}
                (Err(JsonError::DuplicateKey(_)), Ok(_)) => {}
                _ => panic!("disagree on {doc:?}: ours {ours:?}, serde_json {theirs:?}"),
            }
        }
    }
}
