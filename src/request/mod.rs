//! Reading a request's credentials and editing what goes upstream.

pub mod token;
