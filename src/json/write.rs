//! A small JSON writer for what the filter emits: audit events, denial
//! bodies, shared-data records. Compact output, keys in the order written,
//! strings escaped as serde_json escapes them.

use super::Value;
use std::fmt::Write as _;

/// `s` as a JSON string literal, quotes included. Runs that need no escape
/// (everything but `"`, `\\` and control characters; UTF-8 bytes are all
/// >= 0x80) are copied whole.
pub fn string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(s.get(start..i).unwrap_or_default());
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(
                HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
            ));
            out.push(char::from(
                HEX.get(usize::from(b & 0xf)).copied().unwrap_or(b'0'),
            ));
        } else {
            out.push_str(esc);
        }
        start = i + 1;
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

/// An unsigned integer in decimal.
pub fn u64(out: &mut String, v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        if let Some(d) = buf.get_mut(i) {
            *d = b'0' + (v % 10) as u8;
        }
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    for d in buf.get(i..).unwrap_or_default() {
        out.push(char::from(*d));
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
            .some_str("gone", None)
            .some_str("here", Some("x"))
            .u64("u", 7)
            .end();
        assert_eq!(s, r#"{"z":"1","here":"x","u":7}"#);
        let mut n = String::new();
        u64(&mut n, 0);
        n.push(' ');
        u64(&mut n, u64::MAX);
        assert_eq!(n, "0 18446744073709551615");
        assert_eq!(scalar_text(&json!(3)), Some("3".into()));
        assert_eq!(scalar_text(&json!(true)), Some("true".into()));
        assert_eq!(scalar_text(&json!([1])), None);
    }
}
