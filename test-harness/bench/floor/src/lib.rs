//! The cheapest useful proxy-wasm HTTP filter: one host call to read the
//! `authorization` header, then continue. The benchmark runs it as
//! `wasm-floor` to show what any Rust filter in Envoy's V8 costs per request
//! (VM entry/exit, context creation, one header read), so the filter's own
//! work is the difference above it.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;
impl Context for Root {}
impl RootContext for Root {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Floor))
    }
}

struct Floor;
impl Context for Floor {}
impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let token = self.get_http_request_header("authorization");
        std::hint::black_box(token.map(|t| t.len()));
        Action::Continue
    }
}
