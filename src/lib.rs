//! oam-authz: the pure policy engine (config, identity, JWT, decisions) and,
//! on wasm32, the thin proxy-wasm filter around it.
//!
//! Layering, from the outside in:
//! - `filter` (wasm only): proxy-wasm entry points implementing `shim::Host`.
//! - `shim`: per-request orchestration against the `Host` trait.
//! - `engine`: request facts in, `Decision` out; `policy`: the compiled config.
//! - `jwt`, `spiffe`, `path`, `hostname`: parsers and matchers.

pub mod audit;
pub mod config;
pub mod decision;
pub mod engine;
pub mod error;
pub mod handler;
pub mod host;
pub mod jwt;
pub mod keys;
pub mod pattern;
pub mod policy;
pub mod request;

#[cfg(not(target_arch = "wasm32"))]
pub mod oam;

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // proxy_wasm::main! exports `_start` with #[no_mangle].
mod wasm;

#[cfg(test)]
mod testing;
