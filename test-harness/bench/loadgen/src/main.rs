//! Fixed-rate HTTP/1.1 load generator for `test-harness/bench/bench.py`.
//!
//! Why not h2load `--rps`: its `-H` header is the same for every request, and
//! with `-i` every client walks the same URI list from the start, so a pool of
//! distinct tokens turns into cache hits. Here request `i` (a global index) is
//! scheduled at `t0 + i / rate`, carries token `i % N`, and goes out on
//! connection `i % conns`, so every token is sent once per pool cycle and the
//! offered rate does not depend on the server (open loop per connection: a
//! connection's next send waits only when its previous response is late).
//!
//! Latency is reported two ways: from the actual send (`lat_*`, what wrk and
//! h2load report) and from the scheduled send (`co_*`, corrected for
//! coordinated omission: a slow answer also delays the next request's start).
//!
//! Usage: loadgen --addr 127.0.0.1:PORT --rate R --duration S --conns C
//!                [--tokens FILE] [--offset K] [--path /p] [--host h] [--prefix "Bearer "]
//!                [--requests FILE] [--id-prefix P] [--log FILE] [--closed]
//! (`--offset K`: request i carries token (i + K) % N.)
//! Prints one JSON object on stdout.
//!
//! For the mixed soak (`soak.py`): `--requests FILE` gives each request its
//! own path too (lines `PATH<TAB>TOKEN`, the token may be empty: no
//! `authorization`); request i takes line (i + K) % N. `--id-prefix P` sends
//! `x-request-id: P<i>`, so a response can be joined with its audit event,
//! and `--log FILE` writes one line per request, `i status send_us` (status
//! 0: no response; send_us from t0, which the JSON gives as `t0_unix_us`).
//! `--closed`: closed loop instead (each connection sends its next request
//! as soon as the previous answer arrives, until `--duration` has passed;
//! `--rate` is ignored): the saturation a soak runs at a fraction of.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    addr: String,
    rate: f64,
    duration: f64,
    conns: usize,
    tokens: Vec<String>,
    path: String,
    host: String,
    prefix: String,
    offset: usize,
    /// (path, token) per line of `--requests`; empty: `path` and `tokens`.
    requests: Vec<(String, String)>,
    id_prefix: Option<String>,
    log: Option<String>,
    closed: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        addr: String::new(),
        rate: 1000.0,
        duration: 5.0,
        conns: 32,
        tokens: Vec::new(),
        path: "/".into(),
        host: "bench.local".into(),
        prefix: "Bearer ".into(),
        offset: 0,
        requests: Vec::new(),
        id_prefix: None,
        log: None,
        closed: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or_else(|| format!("{k}: missing value"));
        match k.as_str() {
            "--addr" => a.addr = v()?,
            "--rate" => a.rate = v()?.parse().map_err(|e| format!("--rate: {e}"))?,
            "--duration" => a.duration = v()?.parse().map_err(|e| format!("--duration: {e}"))?,
            "--conns" => a.conns = v()?.parse().map_err(|e| format!("--conns: {e}"))?,
            "--path" => a.path = v()?,
            "--host" => a.host = v()?,
            "--prefix" => a.prefix = v()?,
            "--offset" => a.offset = v()?.parse().map_err(|e| format!("--offset: {e}"))?,
            "--id-prefix" => a.id_prefix = Some(v()?),
            "--log" => a.log = Some(v()?),
            "--closed" => a.closed = true,
            "--requests" => {
                let f = v()?;
                let text = std::fs::read_to_string(&f).map_err(|e| format!("{f}: {e}"))?;
                for (n, l) in text.lines().filter(|l| !l.is_empty()).enumerate() {
                    let (p, t) = l.split_once('\t').unwrap_or((l, ""));
                    if !p.starts_with('/') {
                        return Err(format!("{f}: line {}: no path", n + 1));
                    }
                    a.requests.push((p.to_string(), t.to_string()));
                }
            }
            "--tokens" => {
                let f = v()?;
                let text = std::fs::read_to_string(&f).map_err(|e| format!("{f}: {e}"))?;
                a.tokens = text
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect();
            }
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.addr.is_empty() || a.rate <= 0.0 || a.duration <= 0.0 || a.conns == 0 {
        return Err("need --addr, and positive --rate, --duration, --conns".into());
    }
    Ok(a)
}

#[derive(Default)]
struct ThreadResult {
    lat_us: Vec<u32>,
    co_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    late: u64,
    /// (i, status, send µs from t0), with `--log`.
    log: Vec<(usize, u16, u64)>,
}

/// Reads one response; returns the status and whether the connection stays open.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<(u16, bool)> {
    buf.clear();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "eof in headers",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|x| x.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad status line"))?;
    let mut len = 0usize;
    let mut keep = true;
    for line in head.split("\r\n") {
        if let Some(v) = line.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        } else if line.starts_with("connection:") && line.contains("close") {
            keep = false;
        } else if line.starts_with("transfer-encoding:") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "chunked not supported",
            ));
        }
    }
    let mut have = buf.len() - head_end;
    while have < len {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "eof in body",
            ));
        }
        have += n;
    }
    Ok((status, keep))
}

fn connect(addr: &str) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(s)
}

fn run_conn(j: usize, a: Arc<Args>, t0: Instant) -> ThreadResult {
    let mut r = ThreadResult::default();
    let end = t0 + Duration::from_secs_f64(a.duration);
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    let mut i = j;
    loop {
        let now = Instant::now();
        let sched = if a.closed {
            now.max(t0)
        } else {
            t0 + Duration::from_secs_f64(i as f64 / a.rate)
        };
        if sched >= end {
            break;
        }
        if sched > now {
            std::thread::sleep(sched - now);
        }
        if conn.is_none() {
            match connect(&a.addr) {
                Ok(c) => conn = Some(c),
                Err(_) => {
                    r.errors += 1;
                    if a.log.is_some() {
                        let sent = Instant::now().saturating_duration_since(t0).as_micros() as u64;
                        r.log.push((i, 0, sent));
                    }
                    i += a.conns;
                    continue;
                }
            }
        }
        let (path, token) = if a.requests.is_empty() {
            let t = if a.tokens.is_empty() {
                ""
            } else {
                a.tokens[(i + a.offset) % a.tokens.len()].as_str()
            };
            (a.path.as_str(), t)
        } else {
            let (p, t) = &a.requests[(i + a.offset) % a.requests.len()];
            (p.as_str(), t.as_str())
        };
        let mut req = format!("GET {} HTTP/1.1\r\nhost: {}\r\n", path, a.host);
        if !token.is_empty() {
            req.push_str(&format!("authorization: {}{}\r\n", a.prefix, token));
        }
        if let Some(p) = &a.id_prefix {
            req.push_str(&format!("x-request-id: {p}{i}\r\n"));
        }
        req.push_str("\r\n");
        let Some(s) = conn.as_mut() else { continue };
        let start = Instant::now();
        if start.duration_since(sched) > Duration::from_millis(1) {
            r.late += 1;
        }
        let res = s
            .write_all(req.as_bytes())
            .and_then(|_| read_response(s, &mut buf));
        let done = Instant::now();
        if a.log.is_some() {
            let status = res.as_ref().map_or(0, |(s, _)| *s);
            let sent = start.saturating_duration_since(t0).as_micros() as u64;
            r.log.push((i, status, sent));
        }
        match res {
            Ok((status, keep)) => {
                r.lat_us
                    .push(done.duration_since(start).as_micros().min(u32::MAX as u128) as u32);
                r.co_us
                    .push(done.duration_since(sched).as_micros().min(u32::MAX as u128) as u32);
                *r.statuses.entry(status).or_insert(0) += 1;
                if !keep {
                    conn = None;
                }
            }
            Err(_) => {
                r.errors += 1;
                conn = None;
            }
        }
        i += a.conns;
    }
    r
}

fn pct(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

#[allow(unsafe_code)]
fn tight_timer_slack() {
    extern "C" {
        fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
    }
    const PR_SET_TIMERSLACK: i32 = 29;
    // 1 ns timer slack: sleeps end on time instead of up to 50 µs late.
    unsafe {
        prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0);
    }
}

fn main() {
    let a = match parse_args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let t0 = Instant::now() + Duration::from_millis(100);
    let t0_unix_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
        + 100_000;
    let handles: Vec<_> = (0..a.conns)
        .map(|j| {
            let a = a.clone();
            std::thread::spawn(move || {
                tight_timer_slack();
                run_conn(j, a, t0)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut co = Vec::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let (mut errors, mut late) = (0u64, 0u64);
    let mut log = a
        .log
        .as_ref()
        .map(|f| std::fs::File::create(f).map(std::io::BufWriter::new));
    for h in handles {
        let r = h.join().unwrap_or_default();
        if let Some(Ok(w)) = log.as_mut() {
            for (i, status, sent) in &r.log {
                let _ = writeln!(w, "{i} {status} {sent}");
            }
        }
        lat.extend(r.lat_us);
        co.extend(r.co_us);
        for (k, v) in r.statuses {
            *statuses.entry(k).or_insert(0) += v;
        }
        errors += r.errors;
        late += r.late;
    }
    if let Some(res) = log {
        if let Err(e) = res.and_then(|mut w| w.flush()) {
            eprintln!("loadgen: --log: {e}");
            std::process::exit(1);
        }
    }
    let elapsed = a.duration;
    lat.sort_unstable();
    co.sort_unstable();
    let completed = lat.len();
    let st: Vec<String> = statuses
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    let mean = if completed > 0 {
        lat.iter().map(|&x| x as f64).sum::<f64>() / completed as f64
    } else {
        0.0
    };
    println!(
        "{{\"target_rps\":{},\"achieved_rps\":{:.1},\"completed\":{},\"errors\":{},\"late_sends\":{},\"statuses\":{{{}}},\
\"lat_mean_us\":{:.1},\"lat_p50_us\":{},\"lat_p90_us\":{},\"lat_p99_us\":{},\"lat_p999_us\":{},\"lat_max_us\":{},\
\"co_p50_us\":{},\"co_p99_us\":{},\"co_max_us\":{},\"tokens\":{},\"conns\":{},\"t0_unix_us\":{}}}",
        a.rate,
        completed as f64 / elapsed,
        completed,
        errors,
        late,
        st.join(","),
        mean,
        pct(&lat, 50.0),
        pct(&lat, 90.0),
        pct(&lat, 99.0),
        pct(&lat, 99.9),
        lat.last().copied().unwrap_or(0),
        pct(&co, 50.0),
        pct(&co, 99.0),
        co.last().copied().unwrap_or(0),
        a.tokens.len(),
        a.conns,
        t0_unix_us
    );
}
