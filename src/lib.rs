//! oam-authz: the pure policy engine (config, identity, JWT, decisions) and,
//! on wasm32, the thin proxy-wasm filter around it.

pub mod config;
pub mod error;
pub mod jwt;
