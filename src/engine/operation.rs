//! What the engine is asked about: the raw facts of a request, and the
//! normalized operation rules are matched against.

use crate::decision::Reason;
use crate::host::SignatureBackend;
use crate::pattern::hostname::normalized_host;
use crate::pattern::path::{canonical_path_with, PathOptions};
use crate::request::headers::Headers;
use std::borrow::Cow;

/// The facts the engine needs about one request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// Raw `:path`, query included.
    pub path: &'a str,
    /// Raw `:authority`.
    pub host: &'a str,
    /// All request headers, names lowercase (as Envoy hands them to filters).
    pub headers: &'a Headers,
    /// URI SAN of the verified peer certificate; `None` without mTLS.
    pub peer: Option<&'a str>,
    /// Unix time in seconds, from the host clock.
    pub now: u64,
    /// The host's native signature verifier, when it has one.
    pub crypto: Option<&'a dyn SignatureBackend>,
}

/// A normalized operation: what the caller wants to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<'a> {
    pub method: &'a str,
    /// Normalized host (see `pattern::hostname::normalize_host`).
    pub host: Cow<'a, str>,
    /// Canonical path without query.
    pub path: &'a str,
}

impl<'a> Operation<'a> {
    /// The operation of a raw request, or why it cannot be matched at all.
    pub fn parse(
        method: &'a str,
        path: &'a str,
        host: &'a str,
        opts: PathOptions,
    ) -> Result<Operation<'a>, Reason> {
        let path = canonical_path_with(path, opts).map_err(Reason::PathNotCanonical)?;
        Ok(Operation {
            method,
            host: normalized_host(host),
            path,
        })
    }
}
