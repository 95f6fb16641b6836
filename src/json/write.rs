//! A small JSON writer for what the filter emits: audit events, denial
//! bodies, shared-data records. Compact output, keys in the order written,
//! strings escaped as serde_json escapes them.

use super::Value;
use std::fmt::Write as _;

/// `s` as a JSON string literal, quotes included.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            '\u{8}' => "\\b",
            '\u{c}' => "\\f",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        out.push_str(s.get(start..i).unwrap_or_default());
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push_str(esc);
        }
        start = i + c.len_utf8();
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// Any value; numbers as serde_json writes them (`1`, `-2`, `1.5`, `1.0`).
pub fn value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => number(out, n),
        Value::String(s) => string(out, s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                value(out, x);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(out, k);
                out.push(':');
                value(out, x);
            }
            out.push('}');
        }
    }
}

fn number(out: &mut String, n: &serde_json::Number) {
    if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(f) = n.as_f64() {
        float(out, f);
    }
}

/// The shortest digits (Rust's `{:?}`), laid out as serde_json (ryu) lays
/// them out: `1.0`, `0.00001`, `1.5e-7`, `1e+21`.
fn float(out: &mut String, f: f64) {
    let text = format!("{f:?}");
    let (mantissa, exp) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => {
            out.push_str(&text);
            return;
        }
    };
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // Position of the decimal point relative to the digits (ryu's `kk`).
    let kk = exp + 1;
    if kk <= 0 && kk > -5 {
        out.push_str(sign);
        out.push_str("0.");
        out.push_str(&"0".repeat(kk.unsigned_abs() as usize));
        out.push_str(&digits);
    } else if exp > 0 {
        let _ = write!(out, "{sign}{mantissa}e+{exp}");
    } else {
        out.push_str(&text);
    }
}

/// A scalar as a plain string: strings as they are, numbers and booleans
/// written as JSON (for claim values forwarded in headers).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => {
            let mut out = String::new();
            value(&mut out, v);
            Some(out)
        }
        _ => None,
    }
}

/// `v` as compact JSON text.
pub fn to_text(v: &Value) -> String {
    let mut out = String::new();
    value(&mut out, v);
    out
}

/// An object written field by field.
pub struct Object<'o> {
    out: &'o mut String,
    first: bool,
}

impl<'o> Object<'o> {
    pub fn new(out: &'o mut String) -> Object<'o> {
        out.push('{');
        Object { out, first: true }
    }

    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        string(self.out, k);
        self.out.push(':');
        self.out
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        string(self.key(k), v);
        self
    }

    /// `null` when absent.
    pub fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.str(k, v),
            None => {
                self.key(k).push_str("null");
                self
            }
        }
    }

    /// Left out when absent.
    pub fn some_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        if let Some(v) = v {
            self.str(k, v);
        }
        self
    }

    pub fn u64(&mut self, k: &str, v: u64) -> &mut Self {
        let _ = write!(self.key(k), "{v}");
        self
    }

    pub fn strs<'s>(&mut self, k: &str, v: impl IntoIterator<Item = &'s str>) -> &mut Self {
        let out = self.key(k);
        out.push('[');
        for (i, s) in v.into_iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            string(out, s);
        }
        out.push(']');
        self
    }

    pub fn end(&mut self) {
        self.out.push('}');
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_text_as_serde_json() {
        for v in [
            json!("plain"),
            json!("q\"b\\s/é\u{1}\u{1f}\n\r\t\u{8}\u{c}\u{7f}\u{2028}"),
            json!(0),
            json!(-5),
            json!(u64::MAX),
            json!(1.5),
            json!(1.0),
            json!(-0.25),
            json!(1e300),
            json!(1e21),
            json!(1e16),
            json!(1e15),
            json!(1.5e-7),
            json!(1e-5),
            json!(-2.5e-5),
            json!(0.0001),
            json!(1e-6),
            json!(5e-324),
            json!(f64::MAX),
            json!(-0.0),
            json!(12345678901234567890.0),
            json!([1, "a", null, true, {"k": [false]}]),
            json!({"b": 1, "a": {"c": "d"}}),
        ] {
            assert_eq!(to_text(&v), serde_json::to_string(&v).unwrap(), "{v:?}");
        }
    }

    #[test]
    fn objects_in_order() {
        let mut s = String::new();
        Object::new(&mut s)
            .str("z", "1")
            .opt_str("n", None)
            .some_str("gone", None)
            .u64("u", 7)
            .strs("l", ["a", "b"])
            .end();
        assert_eq!(s, r#"{"z":"1","n":null,"u":7,"l":["a","b"]}"#);
        assert_eq!(scalar_text(&json!(3)), Some("3".into()));
        assert_eq!(scalar_text(&json!(true)), Some("true".into()));
        assert_eq!(scalar_text(&json!([1])), None);
    }
}
