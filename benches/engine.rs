//! Native micro-benchmark of the pure engine: decision cost and policy load
//! time as the rule count grows (10 … 10,000). Run: `make bench-engine`
//! (or `cargo bench --bench engine`). Prints a Markdown table; the goal is a
//! decision cost at 10,000 rules within 1.5x of the cost at 10 rules.

#![allow(clippy::panic, clippy::indexing_slicing)] // a benchmark, not filter code

use oam_authz::{decide, Headers, Policy, Request, TokenCache};
use serde_json::json;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn policy_text(rules: usize) -> String {
    let roles: Vec<_> = (0..50)
        .map(|k| json!({"name": format!("role{k}"), "principals": [format!("ns/ns{k}/sa/sa{k}")]}))
        .collect();
    let rules: Vec<_> = (0..rules)
        .map(|i| {
            json!({
                "name": format!("rule{i}"),
                "roles": [format!("role{}", i % 50)],
                "methods": ["GET", "HEAD"],
                "hosts": ["api.example.com"],
                "paths": [format!("/svc{i}/items/{{*}}"), format!("/svc{i}/static/*")],
            })
        })
        .collect();
    json!({"schema_version": 1, "trust_domain": "cluster.local", "roles": roles, "rules": rules})
        .to_string()
}

/// Median of `samples` timings of `iters` calls, in ns per call.
fn measure(samples: usize, iters: u32, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this as a quick smoke.
    let quick =
        std::env::args().any(|a| a == "--quick") || !std::env::args().any(|a| a == "--bench");
    let (samples, iters) = if quick { (5, 2_000) } else { (15, 20_000) };
    println!("| rules | policy load | decision (allow, last rule) | decision (deny, no rule) | vs 10 rules |");
    println!("|---:|---:|---:|---:|---:|");
    let mut base = None;
    for n in [10usize, 100, 1_000, 10_000] {
        let text = policy_text(n);
        let t = Instant::now();
        let policy =
            Policy::from_json(&text).unwrap_or_else(|e| panic!("bench policy invalid: {e}"));
        let load = t.elapsed();
        let headers = Headers::from_pairs(&[("user-agent", "bench")]);
        let last = n - 1;
        let path = format!("/svc{last}/items/42");
        let peer = format!("spiffe://cluster.local/ns/ns{k}/sa/sa{k}", k = last % 50);
        let mut cache = TokenCache::new(16);
        let allow = Request {
            method: "GET",
            path: &path,
            host: "api.example.com:443",
            headers: &headers,
            peer: Some(&peer),
            now: 1,
            crypto: None,
        };
        let d = decide(&policy, &allow, &mut cache, None);
        assert!(d.allowed(), "bench request must be allowed: {:?}", d.reason);
        let deny = Request {
            path: "/nothing/here",
            ..allow
        };
        assert!(!decide(&policy, &deny, &mut cache, None).allowed());
        let a = measure(samples, iters, || {
            black_box(decide(&policy, black_box(&allow), &mut cache, None));
        });
        let b = measure(samples, iters, || {
            black_box(decide(&policy, black_box(&deny), &mut cache, None));
        });
        let base_a = *base.get_or_insert(a);
        println!(
            "| {n} | {} | {a:.0} ns | {b:.0} ns | {:.2}x |",
            fmt_dur(load),
            a / base_a
        );
    }
}

fn fmt_dur(d: Duration) -> String {
    if d.as_millis() >= 10 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{} µs", d.as_micros())
    }
}
