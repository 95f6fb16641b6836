//! The proxy-wasm entry points: a thin `Host` implementation over
//! `proxy_wasm::hostcalls`. All logic lives in `handler` and below.
//!
//! We call `hostcalls` directly because several SDK helpers unwrap (e.g.
//! `get_http_request_headers` panics on a non-UTF-8 value), and a trap kills
//! every request on this VM.

use crate::handler::{self, Loaded, Verdict};
use crate::host::{
    Clock, ConnectionPeer, Crypto, HttpCalls, Level, Log, Metrics, PeerIdentity, RequestIo,
    SharedData, SignatureBackend,
};
use crate::jwt::native;
use crate::keys::manager::{KeyManager, Response};
use crate::keys::{MAX_JWKS_BYTES, TICK_MS};
use crate::request::headers::Headers;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

#[derive(Debug)]
struct WasmHost;

fn to_log_level(l: Level) -> LogLevel {
    match l {
        Level::Info => LogLevel::Info,
        Level::Warn => LogLevel::Warn,
        Level::Critical => LogLevel::Critical,
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    /// The proxy-wasm ABI call behind the SDK's `get_map_bytes`, whose
    /// wrappers panic on an unexpected status and copy every header.
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
}

/// Every header in one call, as the host encoded them (no copy per header).
fn header_map(map: MapType) -> Headers {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer it obtained from our
    // `proxy_on_memory_allocate` (the SDK's: a boxed `[u8]` of exactly
    // `size` bytes) and its size; we take ownership of it exactly once, as
    // the SDK's own `get_map_bytes` does.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    if status != 0 || data.is_null() {
        return Headers::default();
    }
    // SAFETY: see above; `size` bytes at `data` are initialized by the host.
    let buf = unsafe { Vec::from_raw_parts(data, size, size) };
    Headers::from_proxy_wasm(buf)
}

impl RequestIo for WasmHost {
    fn request_headers(&self) -> Headers {
        header_map(MapType::HttpRequestHeaders)
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) {
        if let Err(e) = hostcalls::set_map_value(MapType::HttpRequestHeaders, name, value) {
            let _ = hostcalls::log(
                LogLevel::Warn,
                &format!("oam-authz: cannot set header {name}: {e:?}"),
            );
        }
    }

    fn send_local_response(&mut self, status: u16, headers: &[(&str, &str)], body: &str) {
        if hostcalls::send_http_response(u32::from(status), headers.to_vec(), Some(body.as_bytes()))
            .is_err()
        {
            // Could not answer: still never let the request through.
            let _ = hostcalls::reset_http_request();
        }
    }
}

impl PeerIdentity for WasmHost {
    fn connection_peer(&self) -> ConnectionPeer {
        // The SAN first: on a sidecar's mTLS connection (the hot path) it is
        // the only call. Envoy has a peer certificate only on a TLS
        // connection whose client presented one that passed validation.
        if let Ok(Some(san)) =
            hostcalls::get_property(vec!["connection", "uri_san_peer_certificate"])
        {
            if !san.is_empty() {
                return ConnectionPeer::Mtls(Some(san));
            }
        }
        // No URI SAN: an mTLS certificate without one, or no mTLS at all
        // (a waypoint's internal listener); the 1-byte flag tells which.
        let mtls = matches!(hostcalls::get_property(vec!["connection", "mtls"]), Ok(Some(b)) if b.first() == Some(&1));
        if !mtls {
            return ConnectionPeer::NotMtls;
        }
        ConnectionPeer::Mtls(None)
    }

    fn waypoint_principal(&self) -> Option<Vec<u8>> {
        // A string object's serializeAsString(): the raw value, no proto framing.
        hostcalls::get_property(vec!["filter_state", "io.istio.peer_principal"])
            .ok()
            .flatten()
    }
}

impl Clock for WasmHost {
    fn now_millis(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

impl Log for WasmHost {
    fn log(&self, level: Level, msg: &str) {
        let _ = hostcalls::log(to_log_level(level), msg);
    }

    fn info_enabled(&self) -> bool {
        // Envoy's wasm log level can change at run time (admin /logging).
        !matches!(
            hostcalls::get_log_level(),
            Ok(LogLevel::Warn | LogLevel::Error | LogLevel::Critical)
        )
    }
}

impl Metrics for WasmHost {
    fn define_counter(&mut self, name: &str) -> Option<u32> {
        hostcalls::define_metric(MetricType::Counter, name).ok()
    }

    fn add_counter(&self, id: u32, n: u64) {
        let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
    }

    fn define_gauge(&mut self, name: &str) -> Option<u32> {
        hostcalls::define_metric(MetricType::Gauge, name).ok()
    }

    fn set_gauge(&self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }
}

impl Crypto for WasmHost {
    fn crypto(&self) -> Option<&dyn SignatureBackend> {
        Some(self)
    }
}

impl SignatureBackend for WasmHost {
    /// Envoy's `verify_signature` foreign function (BoringSSL). Any failure
    /// to call or decode it is `None`: the caller verifies in wasm instead.
    fn verify(&self, hash: &str, spki_der: &[u8], signature: &[u8], text: &[u8]) -> Option<bool> {
        let args = native::encode_arguments(hash, spki_der, signature, text);
        match hostcalls::call_foreign_function("verify_signature", Some(&args)) {
            Ok(Some(reply)) => native::decode_result(&reply).map(|(ok, _error)| ok),
            _ => None,
        }
    }
}

/// Remote JWKS support: shared data and outgoing calls (see `keys`).
impl SharedData for WasmHost {
    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        hostcalls::get_shared_data(key).unwrap_or((None, None))
    }

    fn shared_set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> bool {
        hostcalls::set_shared_data(key, Some(value), cas).is_ok()
    }
}

impl HttpCalls for WasmHost {
    fn http_get(
        &mut self,
        cluster: &str,
        authority: &str,
        path: &str,
        timeout_ms: u64,
    ) -> Result<u32, String> {
        let headers = vec![
            (":method", "GET"),
            (":path", path),
            (":authority", authority),
            ("accept", "application/json"),
            ("user-agent", "oam-authz"),
        ];
        hostcalls::dispatch_http_call(
            cluster,
            headers,
            None,
            vec![],
            Duration::from_millis(timeout_ms),
        )
        .map_err(|status| match status {
            Status::BadArgument => "unknown cluster or bad request (BadArgument)".to_string(),
            other => format!("{other:?}"),
        })
    }
}

struct Root {
    context_id: u32,
    loaded: Option<Rc<Loaded>>,
    /// Remote key sources of `loaded`, if any.
    keys: Option<KeyManager>,
    ticking: bool,
}

impl Root {
    fn new(context_id: u32) -> Root {
        Root {
            context_id,
            loaded: None,
            keys: None,
            ticking: false,
        }
    }

    /// Seed for fetch jitter and this root's lease id: the clock's nanoseconds
    /// and the context id (VMs start one after another, never in the same ns).
    fn seed(&self) -> u64 {
        let nanos = hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ (u64::from(self.context_id) << 40)
    }

    fn set_ticking(&mut self, on: bool) {
        if on != self.ticking {
            let period = if on { TICK_MS } else { 0 };
            let _ = hostcalls::set_tick_period(Duration::from_millis(period));
            self.ticking = on;
        }
    }
}

impl Context for Root {
    /// The VM is going away (shutdown, or a new plugin instance): nothing
    /// counted or audited may be lost.
    fn on_done(&mut self) -> bool {
        if let Some(loaded) = &self.loaded {
            handler::flush(&mut WasmHost, loaded);
        }
        true
    }

    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        let Some(keys) = self.keys.as_mut() else {
            return;
        };
        if !keys.owns(token_id) {
            return;
        }
        // No headers: Envoy reports a timeout, reset or refused connection.
        let status = if num_headers == 0 {
            None
        } else {
            match hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status") {
                Ok(Some(v)) => std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()),
                _ => None,
            }
        };
        let body = if body_size > 0 && body_size <= MAX_JWKS_BYTES {
            hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                .ok()
                .flatten()
        } else {
            None
        };
        let resp = Response {
            status,
            body_size,
            body,
        };
        keys.on_response(&mut WasmHost, token_id, resp);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        )
        .ok()
        .flatten();
        // What the previous policy still owes the host goes out first.
        if let Some(old) = &self.loaded {
            handler::flush(&mut WasmHost, old);
        }
        match handler::configure(&mut WasmHost, config.as_deref()) {
            Ok(loaded) => {
                // Key sets already fetched (by another worker, or for the
                // previous policy) are installed here, before any request.
                let seed = self.seed();
                self.keys = KeyManager::new(&mut WasmHost, loaded.policy.remote_sources(), seed);
                self.loaded = Some(Rc::new(loaded));
                // Every VM ticks: counters and audit lines are flushed on it.
                self.set_ticking(true);
                true
            }
            Err(_) => {
                // Fail closed: a request must never be decided by an older or
                // absent policy we did not mean to load.
                self.loaded = None;
                self.keys = None;
                self.set_ticking(false);
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(keys) = self.keys.as_mut() {
            keys.tick(&mut WasmHost);
        }
        if let Some(loaded) = &self.loaded {
            handler::flush(&mut WasmHost, loaded);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Http {
            loaded: self.loaded.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Http {
    loaded: Option<Rc<Loaded>>,
}

impl Context for Http {}

impl HttpContext for Http {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(loaded) = self.loaded.clone() else {
            WasmHost.send_local_response(
                503,
                &[
                    ("content-type", "application/json"),
                    ("x-oam-authz-reason", "no_policy"),
                ],
                r#"{"error":"unavailable","reason":"no_policy"}"#,
            );
            return Action::Pause;
        };
        match handler::on_request_headers(&mut WasmHost, &loaded) {
            Verdict::Continue => Action::Continue,
            Verdict::Stop => Action::Pause,
        }
    }
}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    std::panic::set_hook(Box::new(|info| {
        let _ = hostcalls::log(LogLevel::Critical, &format!("oam-authz: panic: {info}"));
    }));
    proxy_wasm::set_root_context(|context_id| -> Box<dyn RootContext> { Box::new(Root::new(context_id)) });
}}
