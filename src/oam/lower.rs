//! OAM application -> plugin configuration: the pieces both the compiler
//! and its analyses need.

/// A principal that names a component of the application (a bare name).
pub fn is_component_ref(p: &str) -> bool {
    !p.contains('/') && p != "*" && !p.starts_with("spiffe:")
}

/// Where each part of a generated config came from, for error translation.
#[derive(Debug, Clone, Default)]
pub struct PathMap {
    /// The trait's `properties`.
    pub root: String,
    /// The identity's `properties` (policy, or the trait's `identity`).
    pub identity: String,
    pub rules: Vec<String>,
    pub roles: Vec<String>,
    pub providers: Vec<String>,
}
