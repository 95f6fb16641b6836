//! What one VM owes the host: counter increments and audit lines, kept in
//! the VM and handed over once per tick. Each host call costs a V8 crossing
//! and, for a log line, Envoy's own formatting and locking; batched, a busy
//! worker pays them a few times a second instead of twice per request.
//!
//! Nothing is dropped: every decision is counted and, when info logs are
//! on, has its audit line, written in order, at most one tick late (or at
//! once when the pending lines pass [`MAX_PENDING_AUDIT_BYTES`]).

use crate::host::{Level, Log, Metrics};

/// Pending audit text above which the lines are written at once.
pub const MAX_PENDING_AUDIT_BYTES: usize = 32 * 1024;

#[derive(Debug)]
pub struct Tally {
    /// (counter id, increments not yet handed over).
    counts: Vec<(u32, u64)>,
    /// Audit lines, `\n`-separated, not yet logged.
    audit: String,
    /// Whether the host writes info-level lines (re-read on every flush).
    info: bool,
}

impl Tally {
    pub fn new(info: bool) -> Tally {
        Tally {
            counts: Vec::new(),
            audit: String::new(),
            info,
        }
    }

    pub fn info(&self) -> bool {
        self.info
    }

    pub fn set_info(&mut self, info: bool) {
        self.info = info;
    }

    /// Count one decision in counter `id`.
    pub fn count(&mut self, id: Option<u32>) {
        let Some(id) = id else { return };
        match self.counts.iter_mut().find(|(c, _)| *c == id) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((id, 1)),
        }
    }

    /// Queue one audit line; `true` when the queue should be written now.
    #[cfg(test)]
    pub fn audit(&mut self, line: &str) -> bool {
        self.audit_with(|out| out.push_str(line))
    }

    /// Queue one audit line written by `write` straight into the queue.
    pub fn audit_with(&mut self, write: impl FnOnce(&mut String)) -> bool {
        if !self.audit.is_empty() {
            self.audit.push('\n');
        }
        write(&mut self.audit);
        self.audit.len() >= MAX_PENDING_AUDIT_BYTES
    }

    /// Write the queued audit lines in one log call.
    pub fn flush_audit<H: Log>(&mut self, host: &H) {
        if !self.audit.is_empty() {
            host.log(Level::Info, &self.audit);
            self.audit.clear();
        }
    }

    /// Hand everything over.
    pub fn flush<H: Metrics + Log>(&mut self, host: &mut H) {
        for (id, n) in self.counts.drain(..) {
            host.add_counter(id, n);
        }
        self.flush_audit(host);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::testing::{FakeLog, FakeMetrics};

    #[test]
    fn counts_and_lines_are_handed_over_in_order() {
        let mut m = FakeMetrics::default();
        let a = m.define_counter("a").unwrap();
        let b = m.define_counter("b").unwrap();
        let log = FakeLog::default();
        struct Host<'h>(&'h mut FakeMetrics, &'h FakeLog);
        impl Metrics for Host<'_> {
            fn define_counter(&mut self, name: &str) -> Option<u32> {
                self.0.define_counter(name)
            }
            fn add_counter(&self, id: u32, n: u64) {
                self.0.add_counter(id, n)
            }
            fn define_gauge(&mut self, name: &str) -> Option<u32> {
                self.0.define_gauge(name)
            }
            fn set_gauge(&self, id: u32, v: u64) {
                self.0.set_gauge(id, v)
            }
        }
        impl Log for Host<'_> {
            fn log(&self, level: Level, msg: &str) {
                self.1.log(level, msg)
            }
        }
        let mut t = Tally::new(true);
        for id in [Some(a), Some(b), Some(a), None] {
            t.count(id);
        }
        assert!(!t.audit("one"));
        assert!(!t.audit("two"));
        let mut h = Host(&mut m, &log);
        t.flush(&mut h);
        assert_eq!((m.counter("a"), m.counter("b")), (2, 1));
        assert_eq!(log.lines.borrow().len(), 1, "one log call for both lines");
        assert_eq!(log.lines.borrow()[0].1, "one\ntwo");
        // Nothing twice.
        let mut h = Host(&mut m, &log);
        t.flush(&mut h);
        assert_eq!((m.counter("a"), log.lines.borrow().len()), (2, 1));
        // A full queue asks to be written at once.
        let big = "x".repeat(MAX_PENDING_AUDIT_BYTES);
        assert!(t.audit(&big));
    }
}
