//! `oam-authz replay`: decide recorded requests again under another policy
//! (docs/cli.md "oam-authz replay").
//!
//! An audit event holds the facts of its request (peer, method, host,
//! path), where its token was found and which provider judged it, the
//! token locations the recording policy read, and the verified claims
//! its roles consult (`audit.rs`, docs/operations.md "Audit events").
//! Replay re-runs the engine on them: path check, the token search and
//! routing as far as the facts reach, then `decide_as`. A token is never
//! verified again (the event does not hold it): where the new policy would
//! verify it differently (another provider, other settings, a place the
//! recording policy did not search) or consult a claim the event does not
//! hold, the event is undecidable, with the reason, and counted; replay
//! never guesses.

mod decide;
mod event;
mod render;
mod report;

pub use event::parse_log;
pub use render::{json, text};
pub use report::{replay, Report, Target};

#[cfg(test)]
mod tests;
