//! From OAM applications to oam-authz policies (native only): the
//! `mesh-access` trait and `mesh-identity` policy vocabulary, the compiler,
//! its static checks, manifest rendering, and the `explain`/`test`/
//! `export-istio` commands of the `oam-authz` CLI.

pub mod analyze;
pub mod cases;
pub mod compile;
pub mod evaluate;
pub mod explain;
pub mod export;
pub mod finding;
pub mod load;
pub mod lower;
pub mod manifest;
pub mod model;
