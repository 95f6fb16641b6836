//! Test doubles, one per host concern (tests only). A test composes the
//! ones it needs into a host with the `impl_*!` macros, so no double
//! implements a concern its test never uses.

#![allow(clippy::unwrap_used)]

use crate::host::{Clock, ConnectionPeer, Crypto, Level, Log, Metrics, PeerIdentity, RequestIo};
use crate::request::headers::Headers;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// A clock that tests set; cloned handles share the time.
#[derive(Debug, Clone, Default)]
pub struct FakeClock(pub Rc<Cell<u64>>);

impl FakeClock {
    pub fn set(&self, ms: u64) {
        self.0.set(ms);
    }
    pub fn get(&self) -> u64 {
        self.0.get()
    }
    pub fn advance(&self, ms: u64) {
        self.0.set(self.0.get() + ms);
    }
}

impl Clock for FakeClock {
    fn now_millis(&self) -> u64 {
        self.0.get()
    }
}

/// Every line logged, in order.
#[derive(Debug, Default)]
pub struct FakeLog {
    pub lines: RefCell<Vec<(Level, String)>>,
    /// Log level above info (Istio's default `warning`).
    pub quiet: bool,
}

impl FakeLog {
    pub fn contains(&self, needle: &str) -> bool {
        self.lines.borrow().iter().any(|(_, l)| l.contains(needle))
    }
    pub fn clear(&self) {
        self.lines.borrow_mut().clear();
    }
}

impl Log for FakeLog {
    fn log(&self, level: Level, msg: &str) {
        self.lines.borrow_mut().push((level, msg.to_string()));
    }
    fn info_enabled(&self) -> bool {
        !self.quiet
    }
}

/// Counters and gauges by definition order (the id is the index).
#[derive(Debug, Default)]
pub struct FakeMetrics {
    pub counters: RefCell<Vec<(String, u64)>>,
    pub gauges: RefCell<Vec<(String, u64)>>,
}

impl FakeMetrics {
    /// The value of a counter (0 if undefined); names may repeat across
    /// reloads, their values add up.
    pub fn counter(&self, name: &str) -> u64 {
        self.counters
            .borrow()
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .sum()
    }
    pub fn gauge(&self, name: &str) -> u64 {
        self.gauges
            .borrow()
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v)
    }
}

impl Metrics for FakeMetrics {
    fn define_counter(&mut self, name: &str) -> Option<u32> {
        let mut c = self.counters.borrow_mut();
        c.push((name.to_string(), 0));
        u32::try_from(c.len() - 1).ok()
    }
    fn add_counter(&self, id: u32, n: u64) {
        if let Some(c) = self.counters.borrow_mut().get_mut(id as usize) {
            c.1 += n;
        }
    }
    fn define_gauge(&mut self, name: &str) -> Option<u32> {
        let mut g = self.gauges.borrow_mut();
        g.push((name.to_string(), 0));
        u32::try_from(g.len() - 1).ok()
    }
    fn set_gauge(&self, id: u32, value: u64) {
        if let Some(g) = self.gauges.borrow_mut().get_mut(id as usize) {
            g.1 = value;
        }
    }
}

/// A local response: status, headers, body.
pub type Sent = (u16, Vec<(String, String)>, String);

/// The request's headers as the filter leaves them, and its local reply.
#[derive(Debug, Default)]
pub struct FakeRequest {
    pub headers: Vec<(String, String)>,
    pub sent: Option<Sent>,
}

impl FakeRequest {
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl RequestIo for FakeRequest {
    fn request_headers(&self) -> Headers {
        Headers::from_pairs(&self.headers)
    }
    fn set_request_header(&mut self, name: &str, value: Option<&str>) {
        self.headers.retain(|(k, _)| k != name);
        if let Some(v) = value {
            self.headers.push((name.to_string(), v.to_string()));
        }
    }
    fn send_local_response(&mut self, status: u16, headers: &[(&str, &str)], body: &str) {
        let hs = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.sent = Some((status, hs, body.to_string()));
    }
}

/// A caller as the host sees it: the connection's client certificate and
/// the waypoint's filter state, each as raw bytes.
#[derive(Debug, Default)]
pub struct FakePeer {
    pub connection: ConnectionPeer,
    pub waypoint: Option<Vec<u8>>,
}

impl FakePeer {
    /// A sidecar's caller: mTLS with this URI SAN, or plaintext (`None`).
    pub fn connection(san: Option<&str>) -> FakePeer {
        FakePeer {
            connection: match san {
                Some(s) => ConnectionPeer::Mtls(Some(s.as_bytes().to_vec())),
                None => ConnectionPeer::NotMtls,
            },
            waypoint: None,
        }
    }
}

impl PeerIdentity for FakePeer {
    fn connection_peer(&self) -> ConnectionPeer {
        self.connection.clone()
    }
    fn waypoint_principal(&self) -> Option<Vec<u8>> {
        self.waypoint.clone()
    }
}

/// Implement host traits on a composite double by forwarding to its fields:
/// `impl_host!(MyHost { clock: Clock, log: Log })`.
macro_rules! impl_host {
    ($t:ty { $($field:ident : $tr:ident),* $(,)? }) => {
        $( $crate::testing::impl_host!(@one $t, $field, $tr); )*
    };
    (@one $t:ty, $f:ident, Clock) => {
        impl $crate::host::Clock for $t {
            fn now_millis(&self) -> u64 { self.$f.now_millis() }
        }
    };
    (@one $t:ty, $f:ident, Log) => {
        impl $crate::host::Log for $t {
            fn log(&self, level: $crate::host::Level, msg: &str) { self.$f.log(level, msg) }
            fn info_enabled(&self) -> bool { self.$f.info_enabled() }
        }
    };
    (@one $t:ty, $f:ident, Metrics) => {
        impl $crate::host::Metrics for $t {
            fn define_counter(&mut self, name: &str) -> Option<u32> { self.$f.define_counter(name) }
            fn add_counter(&self, id: u32, n: u64) { self.$f.add_counter(id, n) }
            fn define_gauge(&mut self, name: &str) -> Option<u32> { self.$f.define_gauge(name) }
            fn set_gauge(&self, id: u32, value: u64) { self.$f.set_gauge(id, value) }
        }
    };
    (@one $t:ty, $f:ident, RequestIo) => {
        impl $crate::host::RequestIo for $t {
            fn request_headers(&self) -> $crate::request::headers::Headers { self.$f.request_headers() }
            fn set_request_header(&mut self, name: &str, value: Option<&str>) {
                self.$f.set_request_header(name, value)
            }
            fn send_local_response(&mut self, status: u16, headers: &[(&str, &str)], body: &str) {
                self.$f.send_local_response(status, headers, body)
            }
        }
    };
    (@one $t:ty, $f:ident, PeerIdentity) => {
        impl $crate::host::PeerIdentity for $t {
            fn connection_peer(&self) -> $crate::host::ConnectionPeer { self.$f.connection_peer() }
            fn waypoint_principal(&self) -> Option<Vec<u8>> { self.$f.waypoint_principal() }
        }
    };
}
pub(crate) use impl_host;

/// The host of the request path: everything but shared data and HTTP calls.
#[derive(Debug, Default)]
pub struct FakeHost {
    pub request: FakeRequest,
    pub peer: FakePeer,
    pub clock: FakeClock,
    pub log: FakeLog,
    pub metrics: FakeMetrics,
}

impl_host!(FakeHost {
    request: RequestIo,
    peer: PeerIdentity,
    clock: Clock,
    log: Log,
    metrics: Metrics,
});

/// No native signature verifier: everything is checked in wasm.
impl Crypto for FakeHost {}
