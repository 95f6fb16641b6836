//! The plugin configuration as written by operators (and by `oam-authz compile`).
//!
//! These types mirror the JSON one-to-one and are parsed strictly: every struct
//! denies unknown fields, so a typo or a field from a newer schema is refused
//! instead of silently widening access (CVE-2022-21679 class). Semantic checks
//! live in `policy` (`Policy::check`); nothing here is trusted until compiled.

mod read;
mod types;

pub use read::parse;
pub use types::*;
