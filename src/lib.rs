//! oam-authz: the pure policy engine (config, identity, JWT, decisions) and,
//! on wasm32, the thin proxy-wasm filter around it.
//!
//! Layering, from the outside in (imports only run downward; `make lint`
//! fails on a cycle):
//! - `wasm` (wasm only): proxy-wasm entry points implementing `host`'s traits.
//! - `handler`: per-request plumbing against those traits (`peer`: whose
//!   identity counts); `keys`: remote JWKS.
//! - `engine`: request facts in, final `Decision` (and `Trace`) out.
//! - `policy`: the one validator and the compiled policy; `request`: tokens.
//! - `jwt`, `pattern`: verification, parsers and matchers; `config`, `error`.
//!
//! The public API is what the `oam-authz` CLI, the benchmarks, the fuzz
//! targets and the integration tests use; everything else is private.

// Natively the filter's runtime (handler, keys, audit) is compiled only for
// its unit tests; dead code is checked on the wasm32 build, where it runs.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod audit;
mod config;
mod decision;
mod engine;
mod error;
mod handler;
mod host;
mod json;
mod jwt;
mod keys;
mod pattern;
mod peer;
mod policy;
mod request;

#[cfg(not(target_arch = "wasm32"))]
pub mod oam;

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // proxy_wasm::main! exports `_start` with #[no_mangle].
mod wasm;

#[cfg(test)]
mod testing;

pub use config::{Mode, PluginConfig, SCHEMA_VERSION};
pub use decision::{Decision, Reason, Reply};
pub use engine::cache::TokenCache;
pub use engine::trace::Trace;
pub use engine::{decide, Request};
pub use error::{Diagnostic, Diagnostics, FieldPath, Naming, Severity};
pub use jwt::{TokenError, VerifiedToken};
pub use policy::Policy;
pub use request::headers::Headers;

/// The parsers that read untrusted input, for the fuzz targets.
pub mod parsers {
    pub use crate::jwt::{parse_jwks, peek_issuer, Alg};
    pub use crate::pattern::hostname::normalize_host;
    pub use crate::pattern::path::{canonical_path, canonical_path_with, PathOptions, PathPattern};
}
