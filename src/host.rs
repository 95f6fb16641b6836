//! What the filter needs from its host, one small trait per concern.
//!
//! The request handler, the key manager and the engine are written against
//! these traits, never against proxy-wasm: `wasm.rs` implements them with
//! real host calls, and `testing.rs` (tests only) with one double per
//! concern, so a test implements only what it uses. Host calls cost about
//! 0.1-0.3 µs each in V8, so each method here is one call, not a loop.
//!
//! This module depends only on the header buffer type it hands over.

use crate::request::headers::Headers;

/// Log severity, as far as the filter uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Critical,
}

/// Prefix of every metric the filter defines (`oam_authz.allowed`, ...).
pub const METRIC_PREFIX: &str = "oam_authz.";

/// The host clock.
pub trait Clock {
    /// Unix time in milliseconds.
    fn now_millis(&self) -> u64;
}

/// The host's log.
pub trait Log {
    fn log(&self, level: Level, msg: &str);
    /// Whether info-level lines are written at all. Audit events are only
    /// built when they are: Istio's default proxy log level is `warning`.
    fn info_enabled(&self) -> bool {
        true
    }
}

/// Counters and gauges in the host's stats (`/stats`, Prometheus).
pub trait Metrics {
    fn define_counter(&mut self, name: &str) -> Option<u32>;
    /// Add `n` to a counter.
    fn add_counter(&self, id: u32, n: u64);
    fn define_gauge(&mut self, name: &str) -> Option<u32>;
    fn set_gauge(&self, id: u32, value: u64);
}

/// The request being decided: its headers, edits to them, a local reply.
pub trait RequestIo {
    /// All request headers, lowercase names, values as sent, in one read.
    fn request_headers(&self) -> Headers;
    /// Set (`Some`) or remove (`None`) a request header (`:path` included).
    fn set_request_header(&mut self, name: &str, value: Option<&str>);
    fn send_local_response(&mut self, status: u16, headers: &[(&str, &str)], body: &str);
}

/// The connection's TLS state as the host verified it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ConnectionPeer {
    /// Plaintext, or TLS without a verified client certificate.
    #[default]
    NotMtls,
    /// mTLS: the URI SAN of the verified peer certificate, as the host
    /// gives it (`None`: the certificate has none).
    Mtls(Option<Vec<u8>>),
}

/// Who the caller is, as the host proved it. Never read from a request
/// header; which source counts is the policy's choice (`peer.rs`).
pub trait PeerIdentity {
    /// The connection's client certificate (`connection.mtls`, then
    /// `connection.uri_san_peer_certificate`).
    fn connection_peer(&self) -> ConnectionPeer;
    /// The `io.istio.peer_principal` filter state of the stream, as an Istio
    /// waypoint sets it from the HBONE tunnel's client certificate.
    fn waypoint_principal(&self) -> Option<Vec<u8>>;
}

/// Data shared by every worker VM of the plugin (proxy-wasm shared data).
pub trait SharedData {
    /// Value and compare-and-swap token.
    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Write; with `cas`, only if unchanged since that read. `false` when
    /// the write did not happen.
    fn shared_set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> bool;
}

/// Outgoing HTTP calls through an Envoy cluster.
pub trait HttpCalls {
    /// Start `GET` of `path` at `authority` through `cluster`; the answer
    /// comes back to the caller's callback with the returned token.
    fn http_get(
        &mut self,
        cluster: &str,
        authority: &str,
        path: &str,
        timeout_ms: u64,
    ) -> Result<u32, String>;
}

/// A signature verifier outside the wasm VM (Envoy's `verify_signature`).
pub trait SignatureBackend: std::fmt::Debug {
    /// `Some(true)`: valid. `Some(false)`: invalid (final). `None`: the host
    /// could not run the check; the caller falls back to the wasm verifier.
    fn verify(&self, hash: &str, spki_der: &[u8], signature: &[u8], text: &[u8]) -> Option<bool>;
}

/// Access to the host's signature verifier, if it has one.
pub trait Crypto {
    fn crypto(&self) -> Option<&dyn SignatureBackend> {
        None
    }
}
