//! Request paths: the canonical-form check and the path patterns of rules.
//!
//! We match on the raw path (query removed) and refuse anything that a
//! backend could interpret differently from us (encoded slashes, dot
//! segments, `;` parameters, ...), instead of guessing a normalization.

use std::fmt;

/// Why a request path is refused as non-canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotAbsolute,
    EmptySegment,
    DotSegment,
    EncodedSeparatorOrDot,
    EncodedUnreserved,
    BadPercentEncoding,
    /// `%25` followed by two hex digits: an escape that decodes to another
    /// escape (`%2569` -> `%69` -> `i`), unless the policy allows it.
    DoubleEncoded,
    Backslash,
    Semicolon,
    Fragment,
    ControlOrNul,
    TooLong,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotAbsolute => "path must start with '/'",
            PathError::EmptySegment => "empty segment ('//')",
            PathError::DotSegment => "'.' or '..' segment",
            PathError::EncodedSeparatorOrDot => "percent-encoded '/', '\\' or '.'",
            PathError::EncodedUnreserved => "percent-encoded unreserved character",
            PathError::BadPercentEncoding => "malformed percent-encoding",
            PathError::DoubleEncoded => {
                "'%25' before two hex digits (a double-encoded escape an upstream that decodes twice reads as another path)"
            }
            PathError::Backslash => "backslash",
            PathError::Semicolon => "';' path parameter",
            PathError::Fragment => "fragment ('#')",
            PathError::ControlOrNul => "NUL or control character",
            PathError::TooLong => "path longer than 8192 bytes",
        })
    }
}

const MAX_PATH: usize = 8192;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// How strict [`canonical_path_with`] is where policies may differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathOptions {
    /// Accept `%25` followed by two hex digits (a literal `%` before what
    /// looks like an escape, e.g. `/reports/100%2541`). Default: refused,
    /// since an upstream that decodes twice sees `/reports/100A`.
    pub allow_encoded_percent: bool,
}

/// Split off the query and check that the path is canonical, with the
/// default (strict) options. Returns the path to match rules against.
pub fn canonical_path(raw: &str) -> Result<&str, PathError> {
    canonical_path_with(raw, PathOptions::default())
}

/// As [`canonical_path`], with the policy's options.
pub fn canonical_path_with(raw: &str, opts: PathOptions) -> Result<&str, PathError> {
    let path = match raw.find('?') {
        Some(i) => raw.get(..i).unwrap_or(""),
        None => raw,
    };
    if path.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        match b {
            0..=0x1f | 0x7f => return Err(PathError::ControlOrNul),
            b'\\' => return Err(PathError::Backslash),
            b';' => return Err(PathError::Semicolon),
            b'#' => return Err(PathError::Fragment),
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex);
                let lo = bytes.get(i + 2).copied().and_then(hex);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(PathError::BadPercentEncoding);
                };
                let decoded = hi * 16 + lo;
                let escape_follows = bytes.get(i + 3).copied().and_then(hex).is_some()
                    && bytes.get(i + 4).copied().and_then(hex).is_some();
                if decoded == b'%' && escape_follows && !opts.allow_encoded_percent {
                    return Err(PathError::DoubleEncoded);
                }
                match decoded {
                    b'/' | b'\\' | b'.' => return Err(PathError::EncodedSeparatorOrDot),
                    0..=0x1f | 0x7f => return Err(PathError::ControlOrNul),
                    d if unreserved(d) => return Err(PathError::EncodedUnreserved),
                    _ => {}
                }
                i += 3;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    // Segment checks: skip the leading '/'. A trailing '/' is allowed ("/a/").
    let body = path.get(1..).unwrap_or("");
    if !body.is_empty() {
        let segs: Vec<&str> = body.split('/').collect();
        let last = segs.len().saturating_sub(1);
        for (n, seg) in segs.iter().enumerate() {
            if *seg == "." || *seg == ".." {
                return Err(PathError::DotSegment);
            }
            if seg.is_empty() && n != last {
                return Err(PathError::EmptySegment);
            }
        }
    }
    Ok(path)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Lit(String),
    /// `{*}`: exactly one non-empty segment.
    One,
    /// `{**}`: one or more segments, last only.
    Rest,
}

/// A compiled path pattern. See docs/policy.md "Path, host and method patterns".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    Any,
    Exact(String),
    Prefix(String),
    Suffix(String),
    Template(Vec<Seg>),
}

impl PathPattern {
    pub fn parse(p: &str) -> Result<PathPattern, String> {
        if p == "*" {
            return Ok(PathPattern::Any);
        }
        if p.is_empty() {
            return Err("must not be empty".into());
        }
        let has_template = p.contains('{') || p.contains('}');
        if has_template {
            if p.contains('*') && p.replace("{*}", "").replace("{**}", "").contains('*') {
                return Err(format!(
                    "'{p}': '*' wildcards cannot be mixed with '{{*}}'/'{{**}}' templates"
                ));
            }
            let body = p.strip_prefix('/').ok_or_else(|| {
                format!("'{p}': a path must start with '/' (or be '*', or '*suffix')")
            })?;
            let parts: Vec<&str> = body.split('/').collect();
            let mut segs = Vec::with_capacity(parts.len());
            for (n, part) in parts.iter().enumerate() {
                let seg = match *part {
                    "{*}" => Seg::One,
                    "{**}" => {
                        if n + 1 != parts.len() {
                            return Err(format!("'{p}': '{{**}}' must be the last segment"));
                        }
                        Seg::Rest
                    }
                    lit if lit.contains('{') || lit.contains('}') => {
                        return Err(format!(
                            "'{p}': '{{*}}' and '{{**}}' must fill a whole segment (found '{lit}')"
                        ))
                    }
                    lit => {
                        check_literal(p, lit)?;
                        Seg::Lit(lit.to_string())
                    }
                };
                segs.push(seg);
            }
            return Ok(PathPattern::Template(segs));
        }
        let stars = p.matches('*').count();
        match stars {
            0 => {
                // A pattern may name a path only some policies accept.
                let lenient = PathOptions {
                    allow_encoded_percent: true,
                };
                canonical_path_with(p, lenient)
                    .map_err(|e| format!("'{p}': not a canonical path ({e})"))?;
                if p.contains('?') {
                    return Err(format!("'{p}': paths are matched without the query; remove '?...'"));
                }
                Ok(PathPattern::Exact(p.to_string()))
            }
            1 if p.ends_with('*') => {
                let pre = p.get(..p.len() - 1).unwrap_or("");
                if !pre.starts_with('/') {
                    return Err(format!("'{p}': a prefix pattern must start with '/'"));
                }
                Ok(PathPattern::Prefix(pre.to_string()))
            }
            1 if p.starts_with('*') => Ok(PathPattern::Suffix(p.get(1..).unwrap_or("").to_string())),
            _ => Err(format!(
                "'{p}': '*' is only allowed at the start ('*suffix') or the end ('prefix*'); use '{{*}}' or '{{**}}' for segments"
            )),
        }
    }

    /// `path` must already be canonical (see `canonical_path`).
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Any => true,
            PathPattern::Exact(e) => path == e,
            PathPattern::Prefix(pre) => path.starts_with(pre.as_str()),
            PathPattern::Suffix(suf) => path.ends_with(suf.as_str()),
            PathPattern::Template(segs) => {
                let Some(body) = path.strip_prefix('/') else {
                    return false;
                };
                let mut parts = body.split('/');
                for seg in segs {
                    match seg {
                        Seg::Rest => {
                            // One or more remaining non-empty segments.
                            return parts.next().is_some_and(|s| !s.is_empty());
                        }
                        Seg::One => match parts.next() {
                            Some(s) if !s.is_empty() => {}
                            _ => return false,
                        },
                        Seg::Lit(l) => match parts.next() {
                            Some(s) if s == l => {}
                            _ => return false,
                        },
                    }
                }
                parts.next().is_none()
            }
        }
    }

    /// The literal prefix every matching path starts with (for the index and
    /// for shadowing analysis). `None` when the pattern can match anything.
    pub fn literal_prefix(&self) -> Option<String> {
        match self {
            PathPattern::Any | PathPattern::Suffix(_) => None,
            PathPattern::Exact(e) => Some(e.clone()),
            PathPattern::Prefix(p) => Some(p.clone()),
            PathPattern::Template(segs) => {
                let mut out = String::new();
                for s in segs {
                    match s {
                        Seg::Lit(l) => {
                            out.push('/');
                            out.push_str(l);
                        }
                        _ => {
                            out.push('/');
                            break;
                        }
                    }
                }
                Some(out)
            }
        }
    }
}

fn check_literal(p: &str, lit: &str) -> Result<(), String> {
    if lit.is_empty() {
        return Err(format!("'{p}': empty segment ('//')"));
    }
    if lit == "." || lit == ".." {
        return Err(format!(
            "'{p}': '.' and '..' segments never match a canonical path"
        ));
    }
    if lit.contains(['%', '\\', ';', '#', '?']) {
        return Err(format!(
            "'{p}': segment '{lit}' contains a character that canonical paths never contain"
        ));
    }
    Ok(())
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathPattern::Any => f.write_str("*"),
            PathPattern::Exact(e) => f.write_str(e),
            PathPattern::Prefix(p) => write!(f, "{p}*"),
            PathPattern::Suffix(s) => write!(f, "*{s}"),
            PathPattern::Template(segs) => {
                for s in segs {
                    match s {
                        Seg::Lit(l) => write!(f, "/{l}")?,
                        Seg::One => f.write_str("/{*}")?,
                        Seg::Rest => f.write_str("/{**}")?,
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths() {
        let ok = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("/a?x=1&y=%2F", "/a"),
            ("/a/b.c/..d/.e", "/a/b.c/..d/.e"),
            ("/caf%C3%A9", "/caf%C3%A9"),
            ("/a%20b", "/a%20b"),
            ("/x/*", "/x/*"),
            ("/100%25", "/100%25"),
            ("/100%25done", "/100%25done"),
            ("/100%25A", "/100%25A"),
            ("/a%25%20b", "/a%25%20b"),
        ];
        for (raw, want) in ok {
            assert_eq!(canonical_path(raw), Ok(want), "{raw}");
        }
        let bad = [
            ("", PathError::NotAbsolute),
            ("admin", PathError::NotAbsolute),
            ("//admin", PathError::EmptySegment),
            ("/a//b", PathError::EmptySegment),
            ("/a/../admin", PathError::DotSegment),
            ("/a/./admin", PathError::DotSegment),
            ("/a/..", PathError::DotSegment),
            ("/..", PathError::DotSegment),
            ("/a%2Fadmin", PathError::EncodedSeparatorOrDot),
            ("/a%2fadmin", PathError::EncodedSeparatorOrDot),
            ("/a/%2e%2e/admin", PathError::EncodedSeparatorOrDot),
            ("/a/%2E/admin", PathError::EncodedSeparatorOrDot),
            ("/a%5Cadmin", PathError::EncodedSeparatorOrDot),
            ("/%61dmin", PathError::EncodedUnreserved),
            ("/a%zz", PathError::BadPercentEncoding),
            ("/a%2", PathError::BadPercentEncoding),
            ("/a%", PathError::BadPercentEncoding),
            ("/a\\admin", PathError::Backslash),
            ("/admin;x=1", PathError::Semicolon),
            ("/admin#frag", PathError::Fragment),
            ("/admin%00", PathError::ControlOrNul),
            ("/admin\0", PathError::ControlOrNul),
            ("/a\tb", PathError::ControlOrNul),
            ("/orders/%2569nternal/x", PathError::DoubleEncoded),
            ("/a/%252e%252e/admin", PathError::DoubleEncoded),
            ("/a%252F", PathError::DoubleEncoded),
            ("/reports/100%2541", PathError::DoubleEncoded),
            ("/x%25ff", PathError::DoubleEncoded),
        ];
        for (raw, want) in bad {
            assert_eq!(canonical_path(raw), Err(want), "{raw:?}");
        }
        // The opt-out accepts exactly the double-encoded escapes, nothing else.
        let lenient = PathOptions {
            allow_encoded_percent: true,
        };
        for raw in ["/orders/%2569nternal/x", "/reports/100%2541", "/a%252F"] {
            assert_eq!(canonical_path_with(raw, lenient), Ok(raw), "{raw}");
        }
        for (raw, want) in bad {
            if want != PathError::DoubleEncoded {
                assert_eq!(canonical_path_with(raw, lenient), Err(want), "{raw:?}");
            }
        }
        assert_eq!(
            canonical_path(&format!("/{}", "a".repeat(9000))),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn pattern_matching_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "/anything/at/all", true),
            ("/deploy", "/deploy", true),
            ("/deploy", "/deploy/", false),
            ("/deploy", "/deployx", false),
            ("/static/*", "/static/a/b.css", true),
            ("/static/*", "/static/", true),
            ("/static/*", "/static", false),
            ("/api*", "/api-internal", true),
            ("*.png", "/img/a.png", true),
            ("*.png", "/img/a.png/x", false),
            ("/api/{*}/items", "/api/v1/items", true),
            ("/api/{*}/items", "/api/v1/v2/items", false),
            ("/api/{*}/items", "/api//items", false),
            ("/api/{*}/items", "/api/v1/items/", false),
            ("/api/{*}", "/api/", false),
            ("/debug/{**}", "/debug/a", true),
            ("/debug/{**}", "/debug/a/b/c", true),
            ("/debug/{**}", "/debug", false),
            ("/debug/{**}", "/debug/", false),
            ("/{*}/admin/{**}", "/t1/admin/x", true),
            ("/{*}/admin/{**}", "/t1/admin", false),
            ("/{*}/admin/{**}", "/t1/x/admin/y", false),
        ];
        for (pat, path, want) in cases {
            let p = PathPattern::parse(pat).unwrap();
            assert_eq!(p.matches(path), *want, "{pat} vs {path}");
            assert_eq!(p.to_string(), *pat);
        }
    }

    #[test]
    fn bad_patterns_name_the_problem() {
        let cases = [
            ("/a/{**}/b", "'{**}' must be the last segment"),
            ("/a/{*}x", "must fill a whole segment"),
            ("/a/*/b", "'*' is only allowed at the start"),
            ("/a/{*}/*", "cannot be mixed"),
            ("", "must not be empty"),
            ("a/b", "start with '/'"),
            ("//a", "not a canonical path"),
            ("/a/../b", "not a canonical path"),
            ("/a?x", "without the query"),
            ("{*}/a", "must start with '/'"),
            ("/a//{*}", "empty segment"),
            ("/a/%2F/{*}", "canonical paths never contain"),
            ("**", "'*' is only allowed"),
            ("prefix*", "must start with '/'"),
        ];
        for (pat, want) in cases {
            let err = PathPattern::parse(pat).unwrap_err();
            assert!(err.contains(want), "{pat}: {err}");
        }
    }
}
