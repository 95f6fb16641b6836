//! Checks of a provider's token locations (`from`): header, query
//! parameter or cookie names, each listed once. Finding and stripping the
//! token at run time is `request::token`.

use crate::config::TokenSource;
use crate::error::{Diagnostics, FieldPath, Problem};

/// RFC 9110 `tchar`: what a header (or cookie) name may contain.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// The default location: `Authorization: Bearer <token>`.
pub fn bearer() -> TokenSource {
    TokenSource::Header {
        name: "authorization".into(),
        prefix: Some("Bearer ".into()),
    }
}

/// How a token location is named in audit events and by `oam-authz
/// replay`: `header:authorization Bearer`, `header:x-token`,
/// `query:access_token`, `cookie:id_token` (names cannot hold a space).
pub fn label(s: &TokenSource) -> String {
    match s {
        TokenSource::Header {
            name,
            prefix: Some(p),
        } => format!("header:{name} {}", p.trim()),
        TokenSource::Header { name, prefix: None } => format!("header:{name}"),
        TokenSource::Query(q) => format!("query:{q}"),
        TokenSource::Cookie(c) => format!("cookie:{c}"),
    }
}

/// The source with its header name lowercased, as compiled.
pub fn lowercased(s: &TokenSource) -> TokenSource {
    match s {
        TokenSource::Header { name, prefix } => TokenSource::Header {
            name: name.to_ascii_lowercase(),
            prefix: prefix.clone(),
        },
        other => other.clone(),
    }
}

/// Compile `from` of the provider at `path`; header names are lowercased.
pub fn compile(
    d: &mut Diagnostics,
    from: Option<&[TokenSource]>,
    path: &FieldPath,
) -> Vec<TokenSource> {
    let Some(list) = from else {
        return vec![bearer()];
    };
    let fpath = path.field("from");
    if list.is_empty() {
        d.error(fpath, Problem::Empty);
        return Vec::new();
    }
    let mut out: Vec<TokenSource> = Vec::with_capacity(list.len());
    for (i, src) in list.iter().enumerate() {
        let spath = fpath.index(i);
        let (npath, name, what) = match src {
            TokenSource::Header { name, .. } => {
                (spath.field("header").field("name"), name, "HTTP header")
            }
            TokenSource::Query(name) => (spath.field("query"), name, "query parameter"),
            TokenSource::Cookie(name) => (spath.field("cookie"), name, "cookie"),
        };
        let ok = match src {
            TokenSource::Query(_) => !name
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || "&=#?".contains(c)),
            _ => name.chars().all(is_tchar),
        };
        if name.is_empty() {
            d.error(npath, Problem::Empty);
            continue;
        }
        if !ok {
            d.invalid(npath, format!("'{name}' is not a valid {what} name"));
            continue;
        }
        let compiled = lowercased(src);
        if out.contains(&compiled) {
            d.invalid(spath, "same token source listed twice");
            continue;
        }
        out.push(compiled);
    }
    out
}
