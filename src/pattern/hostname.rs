//! HTTP host (`:authority`) normalization and host patterns.
//!
//! Exact host rules used to miss `Host: API.example.com:443`; we lowercase,
//! drop the port and a trailing dot before any comparison.

/// Lowercased host without port or trailing dot. IPv6 literals keep brackets.
pub fn normalize_host(raw: &str) -> String {
    normalized_host(raw).into_owned()
}

/// As [`normalize_host`], borrowing when the host is already lowercase (the
/// usual case: no allocation on the request path).
pub fn normalized_host(raw: &str) -> std::borrow::Cow<'_, str> {
    let raw = raw.trim();
    let host = if raw.starts_with('[') {
        // "[::1]:8080" -> "[::1]"
        match raw.find(']') {
            Some(end) => raw.get(..=end).unwrap_or(raw),
            None => raw,
        }
    } else {
        match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(host.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(host)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// `*.example.com`: stores `.example.com`; matches any subdomain, not the apex.
    Subdomain(String),
}

impl HostPattern {
    pub fn parse(p: &str) -> Result<HostPattern, String> {
        if p.is_empty() {
            return Err("must not be empty".into());
        }
        let valid = |s: &str| {
            !s.is_empty()
                && s.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'[' | b']' | b':')
                })
        };
        if let Some(rest) = p.strip_prefix("*.") {
            if !valid(rest) || rest.contains('*') {
                return Err(format!("'{p}': expected '*.domain' with a valid domain"));
            }
            return Ok(HostPattern::Subdomain(format!(
                ".{}",
                rest.to_ascii_lowercase()
            )));
        }
        if !valid(p) {
            return Err(format!(
                "'{p}': expected a host name ('api.example.com'), or '*.example.com'; ports are ignored when matching, so leave them out"
            ));
        }
        let norm = normalize_host(p);
        if norm != p.to_ascii_lowercase() {
            return Err(format!(
                "'{p}': remove the port or trailing dot (hosts are matched without them)"
            ));
        }
        Ok(HostPattern::Exact(norm))
    }

    /// `host` must already be normalized.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Subdomain(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Subdomain(s) => write!(f, "*{s}"),
        }
    }
}

/// HTTP methods are case-sensitive tokens (RFC 9110); we accept upper-case only.
pub fn parse_method(m: &str) -> Result<String, String> {
    if !m.is_empty()
        && m.len() <= 32
        && m.bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
    {
        Ok(m.to_string())
    } else {
        Err(format!(
            "'{m}': expected an upper-case HTTP method such as GET or POST"
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        for (raw, want) in [
            ("api.example.com", "api.example.com"),
            ("API.Example.COM:8443", "api.example.com"),
            ("api.example.com.", "api.example.com"),
            ("api.example.com.:80", "api.example.com"),
            ("[::1]:8080", "[::1]"),
            ("[::1]", "[::1]"),
            ("127.0.0.1:10000", "127.0.0.1"),
            ("", ""),
        ] {
            assert_eq!(normalize_host(raw), want, "{raw}");
        }
    }

    #[test]
    fn patterns() {
        let cases = [
            ("api.example.com", "api.example.com", true),
            ("api.example.com", "x.api.example.com", false),
            ("API.example.com", "api.example.com", true),
            ("*.example.com", "api.example.com", true),
            ("*.example.com", "a.b.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "evilexample.com", false),
        ];
        for (pat, host, want) in cases {
            assert_eq!(
                HostPattern::parse(pat).unwrap().matches(host),
                want,
                "{pat} {host}"
            );
        }
        for bad in [
            "",
            "a b",
            "*",
            "*.",
            "api.example.com:80",
            "a.*.com",
            "api.example.com.",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn methods() {
        assert!(parse_method("GET").is_ok());
        for bad in ["get", "", "G T", "GET\n"] {
            assert!(parse_method(bad).is_err(), "{bad:?}");
        }
    }
}
