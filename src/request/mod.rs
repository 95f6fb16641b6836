//! Reading a request's credentials and editing what goes upstream.

pub mod headers;
pub mod token;
