//! The proxy-wasm entry points: a thin `Host` implementation over
//! `proxy_wasm::hostcalls`. All logic lives in `shim` and below.
//!
//! We call `hostcalls` directly because several SDK helpers unwrap (e.g.
//! `get_http_request_headers` panics on a non-UTF-8 value), and a trap kills
//! every request on this VM.

use crate::jwt::native::{self, SignatureBackend};
use crate::shim::{self, Host, Level, Loaded, Verdict};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType};
use std::rc::Rc;
use std::time::UNIX_EPOCH;

#[derive(Debug)]
struct WasmHost;

fn to_log_level(l: Level) -> LogLevel {
    match l {
        Level::Info => LogLevel::Info,
        Level::Warn => LogLevel::Warn,
        Level::Critical => LogLevel::Critical,
    }
}

impl Host for WasmHost {
    fn request_headers(&self) -> Vec<(String, String)> {
        match hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
            Ok(pairs) => pairs
                .into_iter()
                .map(|(k, v)| {
                    (
                        k,
                        String::from_utf8(v).unwrap_or_else(|_| String::from("\0")),
                    )
                })
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    fn peer_uri_san(&self) -> Option<String> {
        // Only a verified client certificate counts; the flag is 1 byte.
        let mtls = matches!(hostcalls::get_property(vec!["connection", "mtls"]), Ok(Some(b)) if b.first() == Some(&1));
        if !mtls {
            return None;
        }
        match hostcalls::get_property(vec!["connection", "uri_san_peer_certificate"]) {
            Ok(Some(bytes)) => String::from_utf8(bytes).ok().filter(|s| !s.is_empty()),
            _ => None,
        }
    }

    fn now_millis(&self) -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
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

    fn log(&self, level: Level, msg: &str) {
        let _ = hostcalls::log(to_log_level(level), msg);
    }

    fn define_counter(&mut self, name: &str) -> Option<u32> {
        hostcalls::define_metric(MetricType::Counter, name).ok()
    }

    fn increment_counter(&self, id: u32) {
        let _ = hostcalls::increment_metric(id, 1);
    }

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

#[derive(Default)]
struct Root {
    loaded: Option<Rc<Loaded>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = hostcalls::get_buffer(
            proxy_wasm::types::BufferType::PluginConfiguration,
            0,
            usize::MAX,
        )
        .ok()
        .flatten();
        match shim::configure(&mut WasmHost, config.as_deref()) {
            Ok(loaded) => {
                self.loaded = Some(Rc::new(loaded));
                true
            }
            Err(_) => {
                // Fail closed: a request must never be decided by an older or
                // absent policy we did not mean to load.
                self.loaded = None;
                false
            }
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
        match shim::on_request_headers(&mut WasmHost, &loaded) {
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
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::<Root>::default() });
}}
