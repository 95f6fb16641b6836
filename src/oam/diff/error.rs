//! Why a diff could not be computed exactly.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffError {
    /// The policies are too large to enumerate exactly; says which part.
    TooComplex(String),
}

impl fmt::Display for DiffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiffError::TooComplex(what) => write!(
                f,
                "cannot diff exactly: {what} (docs/diff.md \"Limits\"); split the change into smaller steps"
            ),
        }
    }
}
