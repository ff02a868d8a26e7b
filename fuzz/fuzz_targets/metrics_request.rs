//! The metrics endpoint's request line (`kobling node run --metrics`):
//! bytes from any client that can reach the address.
//!
//! Checked: routing never panics; only a `GET` of `/metrics` or `/healthz`
//! with an HTTP/1.x version is served, anything else is refused.
#![no_main]

use kobling_node::fuzzing::metrics_route;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let route = metrics_route(data);
    if route == "metrics" || route == "health" {
        let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
        assert!(line.starts_with(b"GET /"), "served a request that is not a GET");
        assert!(
            line.windows(7).any(|w| w == b"HTTP/1."),
            "served a request without an HTTP/1 version"
        );
    }
});
