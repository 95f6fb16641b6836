//! JSON without serde on the filter's paths: a strict reader and a small
//! writer over `serde_json`'s `Value` types (whose serde machinery is left
//! out of the module; only the CLI uses it).

pub mod read;
pub mod write;

pub use serde_json::{Map, Number, Value};

/// Shorten an untrusted string before it goes into an error or a log line.
pub fn clip(s: &str) -> String {
    const MAX: usize = 64;
    match s.char_indices().nth(MAX) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}…", s.get(..cut).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_is_char_safe() {
        let long = "é".repeat(100);
        let c = clip(&long);
        assert_eq!(c.chars().count(), 65);
        assert_eq!(clip("short"), "short");
    }
}
