//! Leaf parsers and matchers: SPIFFE IDs and principal patterns, request
//! paths and path patterns, hosts and methods. They depend on nothing else
//! in the crate.

pub mod hostname;
pub mod path;
pub mod spiffe;
