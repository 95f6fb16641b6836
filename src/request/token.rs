//! Where a token travels in a request: finding it (header, query parameter
//! or cookie) and removing it before the request goes upstream. Both use
//! the same pair splitting and cookie walking, so what is found is exactly
//! what is stripped (they drifted once when they lived apart).
//!
//! Pure: headers and the raw `:path` in, a location or an edit out. The
//! syntax of configured locations is checked when the policy is compiled.

use super::headers::Headers;
use crate::config::TokenSource;

/// Where the token was found, so it can be removed before going upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenLocation {
    Header(String),
    Query(String),
    Cookie(String),
}

/// A token found in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'r> {
    /// Index into the sources searched.
    pub source: usize,
    pub token: &'r str,
    pub location: TokenLocation,
}

/// Why no single token could be taken from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FindError {
    /// More than one token in total (two `Authorization` headers, a header
    /// plus a query parameter, ...): parsers disagree on which one wins, and
    /// so would we and the upstream. The first location, if one was found.
    Multiple(Option<TokenLocation>),
    /// The location is there but holds an empty token (`Bearer `).
    Empty(TokenLocation),
}

/// Look in every source. At most one token may be present in total.
pub fn find<'r, 's>(
    sources: impl IntoIterator<Item = &'s TokenSource>,
    headers: &'r Headers,
    path: &'r str,
) -> Result<Option<Found<'r>>, FindError> {
    let mut found: Option<Found<'r>> = None;
    let mut count = 0usize;
    for (source, s) in sources.into_iter().enumerate() {
        let mut take = |token: &'r str, location: TokenLocation| {
            count += 1;
            if found.is_none() {
                found = Some(Found {
                    source,
                    token,
                    location,
                });
            }
        };
        match s {
            TokenSource::Header { name, prefix } => {
                let mut values = headers
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v);
                let v = match (values.next(), values.next()) {
                    (None, _) => continue,
                    (Some(v), None) => v,
                    // Two or more values (even if one is another scheme such
                    // as Basic): ambiguous, refused below.
                    (Some(_), Some(_)) => {
                        count += 2 + values.count();
                        continue;
                    }
                };
                let value = v.trim();
                let token = match prefix {
                    None => Some(value),
                    Some(pre) => strip_prefix_ignore_case(value, pre.trim_end()).map(str::trim),
                };
                if let Some(t) = token {
                    take(t, TokenLocation::Header(name.clone()));
                }
            }
            TokenSource::Query(param) => {
                for (k, v) in query_pairs(path) {
                    if k == param {
                        take(v, TokenLocation::Query(param.clone()));
                    }
                }
            }
            TokenSource::Cookie(cookie) => {
                for c in cookie_items(headers) {
                    if let Some((ck, cv)) = c.split_once('=') {
                        if ck == cookie {
                            take(cv.trim_matches('"'), TokenLocation::Cookie(cookie.clone()));
                        }
                    }
                }
            }
        }
    }
    if count > 1 {
        return Err(FindError::Multiple(found.map(|f| f.location)));
    }
    if let Some(f) = &found {
        // Envoy joins repeated headers with ',' (never part of a compact JWS).
        if f.token.contains(',') {
            return Err(FindError::Multiple(Some(f.location.clone())));
        }
        if f.token.is_empty() {
            return Err(FindError::Empty(f.location.clone()));
        }
    }
    Ok(found)
}

/// A change to the request before it goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Remove every value of the header.
    Remove(String),
    /// Replace every value of the header with this one.
    Set(String, String),
}

/// The edit that removes the token at `location` from the request.
pub fn strip(location: &TokenLocation, headers: &Headers, path: &str) -> Edit {
    match location {
        TokenLocation::Header(name) => Edit::Remove(name.clone()),
        TokenLocation::Query(param) => Edit::Set(":path".into(), remove_query_param(path, param)),
        TokenLocation::Cookie(name) => {
            let rest = remove_cookie(headers, name);
            if rest.is_empty() {
                Edit::Remove("cookie".into())
            } else {
                Edit::Set("cookie".into(), rest)
            }
        }
    }
}

/// `key=value` (a bare `key` has an empty value): query parameters and
/// cookies.
fn split_pair(pair: &str) -> (&str, &str) {
    pair.split_once('=').unwrap_or((pair, ""))
}

fn query_pairs(path: &str) -> impl Iterator<Item = (&str, &str)> {
    path.split_once('?')
        .map(|(_, q)| q)
        .into_iter()
        .flat_map(|q| q.split('&'))
        .map(split_pair)
}

/// The trimmed `name=value` items of every `cookie` header.
fn cookie_items(headers: &Headers) -> impl Iterator<Item = &str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';'))
        .map(str::trim)
}

/// `prefix` is compared without its trailing space, then at least one space
/// must follow (auth schemes are case-insensitive, RFC 9110 §11.1).
fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = value.get(prefix.len()..)?;
    if prefix.is_empty() || rest.starts_with(' ') || rest.is_empty() {
        Some(rest)
    } else {
        None
    }
}

fn remove_query_param(path: &str, param: &str) -> String {
    let Some((p, q)) = path.split_once('?') else {
        return path.to_string();
    };
    let kept: Vec<&str> = q
        .split('&')
        .filter(|pair| split_pair(pair).0 != param)
        .collect();
    if kept.is_empty() {
        p.to_string()
    } else {
        format!("{p}?{}", kept.join("&"))
    }
}

fn remove_cookie(headers: &Headers, name: &str) -> String {
    cookie_items(headers)
        .filter(|c| !c.is_empty() && split_pair(c).0 != name)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn bearer() -> TokenSource {
        TokenSource::Header {
            name: "authorization".into(),
            prefix: Some("Bearer ".into()),
        }
    }

    fn h(pairs: &[(&str, &str)]) -> Headers {
        Headers::from_pairs(pairs)
    }

    #[test]
    fn find_table() {
        let sources = [
            bearer(),
            TokenSource::Query("access_token".into()),
            TokenSource::Cookie("tok".into()),
        ];
        let hdr = |t: &str| {
            Ok(Some((
                0,
                t.to_string(),
                TokenLocation::Header("authorization".into()),
            )))
        };
        type Want = Result<Option<(usize, String, TokenLocation)>, FindError>;
        type Case = (&'static str, Headers, &'static str, Want);
        let cases: Vec<Case> = vec![
            ("none", h(&[]), "/x", Ok(None)),
            (
                "bearer",
                h(&[("authorization", "Bearer a.b.c")]),
                "/x",
                hdr("a.b.c"),
            ),
            (
                "scheme case",
                h(&[("authorization", "bEaReR  a.b.c ")]),
                "/x",
                hdr("a.b.c"),
            ),
            (
                "other scheme",
                h(&[("authorization", "Basic dXNlcg==")]),
                "/x",
                Ok(None),
            ),
            (
                "no space",
                h(&[("authorization", "Bearera.b.c")]),
                "/x",
                Ok(None),
            ),
            (
                "empty bearer",
                h(&[("authorization", "Bearer ")]),
                "/x",
                Err(FindError::Empty(TokenLocation::Header(
                    "authorization".into(),
                ))),
            ),
            (
                "two headers",
                h(&[
                    ("authorization", "Bearer a.b.c"),
                    ("authorization", "Basic x"),
                ]),
                "/x",
                Err(FindError::Multiple(None)),
            ),
            (
                "joined by envoy",
                h(&[("authorization", "Bearer a.b.c,d.e.f")]),
                "/x",
                Err(FindError::Multiple(Some(TokenLocation::Header(
                    "authorization".into(),
                )))),
            ),
            (
                "query",
                h(&[]),
                "/x?a=1&access_token=q.r.s",
                Ok(Some((
                    1,
                    "q.r.s".into(),
                    TokenLocation::Query("access_token".into()),
                ))),
            ),
            (
                "header and query",
                h(&[("authorization", "Bearer a.b.c")]),
                "/x?access_token=q.r.s",
                Err(FindError::Multiple(Some(TokenLocation::Header(
                    "authorization".into(),
                )))),
            ),
            (
                "cookie, quoted",
                h(&[("Cookie", "a=1; tok=\"c.d.e\"")]),
                "/x",
                Ok(Some((
                    2,
                    "c.d.e".into(),
                    TokenLocation::Cookie("tok".into()),
                ))),
            ),
            (
                "cookie twice",
                h(&[("cookie", "tok=a.b.c"), ("cookie", "tok=d.e.f")]),
                "/x",
                Err(FindError::Multiple(Some(TokenLocation::Cookie(
                    "tok".into(),
                )))),
            ),
        ];
        for (name, headers, path, want) in cases {
            let got = find(&sources, &headers, path)
                .map(|o| o.map(|f| (f.source, f.token.to_string(), f.location)));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn strip_removes_exactly_what_find_found() {
        let q = TokenLocation::Query("access_token".into());
        assert_eq!(
            strip(&q, &h(&[]), "/x?a=1&access_token=t&b=2"),
            Edit::Set(":path".into(), "/x?a=1&b=2".into())
        );
        assert_eq!(
            strip(&q, &h(&[]), "/x?access_token=t"),
            Edit::Set(":path".into(), "/x".into())
        );
        let c = TokenLocation::Cookie("tok".into());
        assert_eq!(
            strip(&c, &h(&[("Cookie", "theme=dark; tok=t; lang=en")]), "/x"),
            Edit::Set("cookie".into(), "theme=dark; lang=en".into())
        );
        assert_eq!(
            strip(&c, &h(&[("cookie", "tok=t")]), "/x"),
            Edit::Remove("cookie".into())
        );
        assert_eq!(
            strip(&TokenLocation::Header("x-token".into()), &h(&[]), "/x"),
            Edit::Remove("x-token".into())
        );
    }
}
