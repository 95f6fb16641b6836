//! The few URLs the filter fetches (a JWKS, an OpenID discovery document),
//! split into what `dispatch_http_call` needs: `:authority` and `:path`.
//! The Envoy cluster named in the policy decides where the bytes go (and
//! whether TLS is used); the scheme is only checked, never acted on.

use std::fmt;

/// Longest URL we accept in a policy or a discovery document.
pub const MAX_URL_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `http` or `https`, lowercase.
    pub scheme: String,
    /// `host[:port]`, as written (IPv6 in brackets).
    pub authority: String,
    /// Path and query, always starting with `/`.
    pub path: String,
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.path)
    }
}

fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return !inner.is_empty()
            && inner
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
    }
    !host.is_empty()
        && !host.starts_with('.')
        && !host.starts_with('-')
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
}

/// Parse an absolute `http(s)://host[:port][/path][?query]` URL. Refused:
/// other schemes, user info (`user@host`), fragments, whitespace and control
/// characters, bad ports, and anything over [`MAX_URL_LEN`].
pub fn parse(s: &str) -> Result<HttpUrl, String> {
    if s.len() > MAX_URL_LEN {
        return Err(format!("URL longer than {MAX_URL_LEN} bytes"));
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("URL contains whitespace or control characters".into());
    }
    let (scheme, rest) = s
        .split_once("://")
        .ok_or_else(|| format!("'{s}' is not an absolute http(s) URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("scheme '{scheme}' is not http or https"));
    }
    if rest.contains('#') {
        return Err("URL must not have a fragment".into());
    }
    let cut = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(cut);
    if authority.is_empty() {
        return Err("URL has no host".into());
    }
    if authority.contains('@') {
        return Err("URL must not carry user info".into());
    }
    // host[:port], where an IPv6 host is bracketed and contains ':'.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority.ends_with(']') => (
            authority.get(..i).unwrap_or_default(),
            Some(authority.get(i + 1..).unwrap_or_default()),
        ),
        _ => (authority, None),
    };
    if !valid_host(host) {
        return Err(format!("'{host}' is not a valid host"));
    }
    if let Some(p) = port {
        let ok = !p.is_empty()
            && p.len() <= 5
            && p.chars().all(|c| c.is_ascii_digit())
            && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n));
        if !ok {
            return Err(format!("'{p}' is not a valid port"));
        }
    }
    let path = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    Ok(HttpUrl {
        scheme,
        authority: authority.to_string(),
        path,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_authority_and_path() {
        let u = parse("https://idp.example.com/oauth2/v1/keys?x=1").unwrap();
        assert_eq!(u.scheme, "https");
        assert_eq!(u.authority, "idp.example.com");
        assert_eq!(u.path, "/oauth2/v1/keys?x=1");
        assert_eq!(u.to_string(), "https://idp.example.com/oauth2/v1/keys?x=1");
        let u = parse("HTTP://127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.authority.as_str(), u.path.as_str()),
            ("http", "127.0.0.1:8080", "/")
        );
        let u = parse("http://[::1]:9/k").unwrap();
        assert_eq!(u.authority, "[::1]:9");
        let u = parse("http://h?q").unwrap();
        assert_eq!(u.path, "/?q");
    }

    #[test]
    fn refuses_what_we_cannot_fetch_safely() {
        for (bad, want) in [
            ("idp.example.com/keys", "not an absolute"),
            ("ftp://h/k", "scheme 'ftp'"),
            ("https:///k", "no host"),
            ("https://u:p@h/k", "user info"),
            ("https://h/k#frag", "fragment"),
            ("https://h /k", "whitespace"),
            ("https://h:0/k", "not a valid port"),
            ("https://h:99999/k", "not a valid port"),
            ("https://h:/k", "not a valid port"),
            ("https://-h/k", "not a valid host"),
            ("https://h%2f/k", "not a valid host"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(want), "{bad}: {err}");
        }
        assert!(parse(&format!("https://h/{}", "a".repeat(MAX_URL_LEN))).is_err());
    }
}
