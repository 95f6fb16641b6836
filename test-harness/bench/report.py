"""The benchmark's report: per-variant medians and within-round ratios, the
issue 9 goals, and the Markdown that `--readme FILE` writes into
docs/performance.md. Works on plain dicts (the JSON of a run), so
`bench.py --report-only` can re-render a saved run."""
from __future__ import annotations

import os
import statistics

# the issue 9 goals (docs/performance.md quotes them)
GOAL_X_NATIVE = 1.10          # mTLS principal AND token, hit, audit on: x native jwt_authn (cache) + rbac
GOAL_OWN_US = 4.0             # ... and our own work above the minimal wasm filter
GOAL_PRINCIPAL_US = 3.0       # mTLS principal-only: above the minimal wasm filter
GOAL_RSS_MB = 8.0             # RSS above the minimal wasm filter at --concurrency 2
GOAL_RSS_BIG_MB = 16.0        # ... after loading a 10,000-rule policy
GOAL_MISS_X = 1.0             # RS256 cache miss x native without its cache
GOAL_GARBAGE_X = 1.5          # garbage tokens x a cache hit
GOAL_ENGINE_FLAT_X = 1.5      # decision at 10,000 rules x at 10 rules (benches/engine.rs)
MODULE_BUDGET = int(os.environ.get("OAM_WASM_BUDGET", str(300 * 1024)))

REFS = {
    "plain": {"pass": "passthrough", "floor": "wasm-floor", "native": "native", "native_cache": "native-cache"},
    "mtls": {"pass": "mtls-passthrough", "floor": "mtls-floor", "native": "mtls-native",
             "native_cache": "mtls-native-cache"},
}
# where a memory-mode Envoy's RSS is (bench.py smaps_split, tcmalloc_split), in table order
WHERE = {"heap_live": "heap live", "heap_free_kept": "heap freed, kept", "wasm_memory": "wasm memory",
         "jit_code": "JIT code"}
HITS = ("hit-RS256", "hit-RS256/auto", "hit-RS256/host", "hit-RS256/wasm")


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec=".0f", dash="-"):
    return dash if x is None else format(x, spec)


def rounds_of(results: list[dict]) -> dict[int, dict[str, dict]]:
    by_round: dict[int, dict[str, dict]] = {}
    for r in results:
        by_round.setdefault(r["round"], {})[r["variant"]] = r
    return by_round


def per_round(by_round: dict, fn) -> float | None:
    """Median over rounds of fn(round's results by name); rounds where a
    needed variant is missing are skipped."""
    vals = []
    for rr in by_round.values():
        try:
            vals.append(fn(rr))
        except (KeyError, TypeError, ZeroDivisionError):
            pass
    return med(vals)


def cpu(rr: dict, name: str) -> float:
    return rr[name]["cpu_us_per_req"]


def diff(by_round: dict, a: str, b: str) -> float | None:
    return per_round(by_round, lambda rr: cpu(rr, a) - cpu(rr, b))


def ratio(by_round: dict, a: str, b: str) -> float | None:
    return per_round(by_round, lambda rr: cpu(rr, a) / cpu(rr, b))


# --------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------

def _statuses(rows: list[dict]) -> tuple[dict, dict]:
    statuses: dict[int, int] = {}
    reasons: dict[str, int] = {}
    for r in rows:
        for src in ("wrk_statuses", "lat_statuses"):
            for k, n in (r.get(src) or {}).items():
                statuses[k] = statuses.get(k, 0) + n
        for k, n in r.get("counters", {}).items():
            if ".denied." in k:
                reason = k.rsplit(".denied.", 1)[1]
                reasons[reason] = reasons.get(reason, 0) + n
    return statuses, reasons


def summarize(results: list[dict], variants: list) -> list[dict]:
    """One row per variant: medians over rounds, and ratios computed within
    each round (against the shape's passthrough, floor, native pair and the
    variant's own native counterpart), then their median."""
    by_round = rounds_of(results)
    out = []
    for v in variants:
        rows = [rr[v.name] for rr in by_round.values() if v.name in rr]
        if not rows:
            continue
        ref = REFS[v.shape]
        statuses, reasons = _statuses(rows)
        s = {
            "variant": v.name, "desc": v.desc, "expect": v.expect, "shape": v.shape, "role": v.role,
            "kind": v.kind, "ref": v.ref, "rounds": len(rows), "reasons": reasons,
            "envoy_busy_pct": med([100 * (r.get("envoy_cpu_busy") or r["envoy_cpu_util"]) for r in rows]),
            "other_load_pct": med([100 * r["other_load_on_envoy_cpu"] for r in rows
                                   if r.get("other_load_on_envoy_cpu") is not None]),
            "ok": all(r["ok"] for r in rows), "statuses": statuses,
            "cpu_us": med([r["cpu_us_per_req"] for r in rows]),
            "cpu_us_min": min(r["cpu_us_per_req"] for r in rows),
            "cpu_us_max": max(r["cpu_us_per_req"] for r in rows),
            "client_cpu_us": med([r.get("client_cpu_us_per_req") for r in rows]),
            "rps": med([r["rps"] for r in rows]),
            "rss_mb": med([r["rss_kb"] / 1024 for r in rows]),
            "d_pass_us": diff(by_round, v.name, ref["pass"]),
            "d_floor_us": diff(by_round, v.name, v.floor or ref["floor"]),
            "floor": v.floor or ref["floor"],
            "rps_pct_pass": per_round(by_round, lambda rr: 100 * rr[v.name]["rps"] / rr[ref["pass"]]["rps"]),
            "x_native": ratio(by_round, v.name, ref["native"]),
            "x_native_cache": ratio(by_round, v.name, ref["native_cache"]),
            "x_ref": ratio(by_round, v.name, v.ref) if v.ref else None,
            "lat_rate": med([r.get("lat_rate") for r in rows]),
            "lat_capped": any(r.get("lat_capped") for r in rows),
            "p50_us": med([r["lat"]["lat_p50_us"] for r in rows if "lat" in r]),
            "p99_us": med([r["lat"]["lat_p99_us"] for r in rows if "lat" in r]),
            "co_p99_us": med([r["lat"]["co_p99_us"] for r in rows if "lat" in r]),
        }
        out.append(s)
    return out


def summarize_mem(mem_results: list[dict], mem_variants: list) -> list[dict]:
    by_round = rounds_of(mem_results)
    out = []
    for mv in mem_variants:
        rows = [rr[mv.name] for rr in by_round.values() if mv.name in rr]
        if not rows:
            continue

        def d_floor(key):
            return per_round(by_round, lambda rr: (rr[mv.name][key] - rr["mem-floor"][key]) / 1024)

        out.append({
            "variant": mv.name, "desc": mv.desc, "rules": mv.rules, "rounds": len(rows),
            "ok": all(r["ok"] for r in rows),
            "rss_ready_mb": med([r["rss_ready_kb"] / 1024 for r in rows]),
            "rss_mb": med([r["rss_kb"] / 1024 for r in rows]),
            "hwm_mb": med([r["hwm_kb"] / 1024 for r in rows]),
            "d_floor_rss_mb": d_floor("rss_kb"), "d_floor_hwm_mb": d_floor("hwm_kb"),
            "ready_s": med([r["ready_s"] for r in rows]),
            "where_mb": {k: med([(r.get("where_kb") or {}).get(k) for r in rows
                                 if (r.get("where_kb") or {}).get(k) is not None]) / 1024
                         for k in WHERE if any((r.get("where_kb") or {}).get(k) is not None for r in rows)},
            "workers_served": min(r["workers_served"] for r in rows),
        })
    return out


# --------------------------------------------------------------------------------------
# Goals
# --------------------------------------------------------------------------------------

def goals(summary: list[dict], mem: list[dict], module_size: int, by_round: dict, soak: dict | None,
          engine: dict | None) -> list[dict]:
    """Issue 9's goals, each with its measured figure (missing variants: the
    goal is listed as not measured)."""
    S = {s["variant"]: s for s in summary}
    M = {m["variant"]: m for m in mem}
    g: list[dict] = []

    def add(goal, measured, met):
        g.append({"goal": goal, "measured": measured, "met": met})

    def need(goal, *names):
        missing = [n for n in names if n not in S and n not in M]
        if missing:
            add(goal, f"not measured in this run ({', '.join(missing)} not selected)", None)
        return not missing

    goal = f"mTLS principal AND token, cache hit, audit on: server CPU <= {GOAL_X_NATIVE:.2f}x native jwt_authn (cache) + rbac"
    if need(goal, "mtls-both", "mtls-native-cache"):
        x = ratio(by_round, "mtls-both", "mtls-native-cache")
        add(goal, f"{x:.2f}x ({S['mtls-both']['cpu_us']:.1f} vs {S['mtls-native-cache']['cpu_us']:.1f} us)",
            x <= GOAL_X_NATIVE)
    goal = f"... and our own work above the minimal wasm filter <= {GOAL_OWN_US:.0f} us"
    if need(goal, "mtls-both", "mtls-floor"):
        d = diff(by_round, "mtls-both", "mtls-floor")
        add(goal, f"{d:+.1f} us ({S['mtls-both']['cpu_us']:.1f} vs {S['mtls-floor']['cpu_us']:.1f} us)",
            d <= GOAL_OWN_US)
    goal = (f"mTLS principal-only role (audit on) <= the minimal wasm filter + {GOAL_PRINCIPAL_US:.0f} us "
            "(both without a token)")
    if need(goal, "mtls-principal", "mtls-floor-notoken"):
        d = diff(by_round, "mtls-principal", "mtls-floor-notoken")
        add(goal, f"{d:+.1f} us ({S['mtls-principal']['cpu_us']:.1f} vs {S['mtls-floor-notoken']['cpu_us']:.1f} us)",
            d <= GOAL_PRINCIPAL_US)
    for name, lim, what in (("mem-ours", GOAL_RSS_MB, "RSS"),
                            ("mem-ours-10k", GOAL_RSS_BIG_MB, "RSS after a 10,000-rule policy load")):
        goal = f"{what} <= the minimal wasm filter + {lim:.0f} MB at --concurrency 2"
        if need(goal, name, "mem-floor"):
            m = M[name]
            add(goal, f"{m['d_floor_rss_mb']:+.1f} MB ({m['rss_mb']:.1f} vs {M['mem-floor']['rss_mb']:.1f} MB;"
                      f" peak {m['d_floor_hwm_mb']:+.1f} MB)", m["d_floor_rss_mb"] <= lim)
    add(f"module <= {MODULE_BUDGET // 1024} KB ({MODULE_BUDGET} bytes)",
        f"{module_size} bytes ({module_size / 1024:.0f} KiB)", module_size <= MODULE_BUDGET)
    for miss, nat in (("mtls-both-miss", "mtls-native"), ("mtls-token-miss", "mtls-native"),
                      ("miss-RS256/auto", "native"), ("miss-RS256", "native")):
        if miss in S and nat in S:
            x = ratio(by_round, miss, nat)
            add(f"RS256 cache miss ({miss}) <= {GOAL_MISS_X:.1f}x native without its cache ({nat})",
                f"{x:.2f}x ({S[miss]['cpu_us']:.1f} vs {S[nat]['cpu_us']:.1f} us)", x <= GOAL_MISS_X)
    if not any(x["goal"].startswith("RS256 cache miss") for x in g):
        need(f"RS256 cache miss <= {GOAL_MISS_X:.1f}x native without its cache", "mtls-both-miss", "mtls-native")
    hit = next((n for n in HITS if n in S), None)
    for garbage, h in (("mtls-garbage", "mtls-both"), ("garbage", hit)):
        if garbage in S and h in S:
            x = ratio(by_round, garbage, h)
            add(f"garbage tokens ({garbage}) within {GOAL_GARBAGE_X}x of a cache hit ({h})",
                f"{x:.2f}x ({S[garbage]['cpu_us']:.1f} vs {S[h]['cpu_us']:.1f} us)", x <= GOAL_GARBAGE_X)
    goal = f"decision cost flat from 10 to 10,000 rules (within {GOAL_ENGINE_FLAT_X}x; benches/engine.rs)"
    if engine and engine.get("rows"):
        last = engine["rows"][-1]
        add(goal, f"{last['vs_10']:.2f}x ({last['allow_ns']:.0f} ns at {last['rules']} rules, "
                  f"{engine['rows'][0]['allow_ns']:.0f} ns at {engine['rows'][0]['rules']})",
            last["vs_10"] <= GOAL_ENGINE_FLAT_X)
    else:
        add(goal, "not measured in this run (`make bench-engine`, or `bench.py --engine`)", None)
    if soak:
        add("memory: steady RSS over the soak, no growth trend",
            f"{soak['slope_kb_per_min']:+.1f} KB/min over {soak['seconds']} s (R^2 {soak['r2']:.2f}),"
            f" {soak['rss_first_kb'] / 1024:.1f} -> {soak['rss_last_kb'] / 1024:.1f} MB",
            not soak["trends_up"])
    return g


def breakdown(summary: list[dict], by_round: dict) -> list[tuple[str, float]]:
    """Where the server CPU goes: differences between variants, per round, then
    the median (µs per request)."""
    names = {s["variant"] for s in summary}
    hit = next((n for n in HITS if n in names), None)
    out = []

    def d(label, a, b):
        if a in names and b in names:
            x = diff(by_round, a, b)
            if x is not None:
                out.append((label, x))

    d("mTLS: V8 floor (mtls-floor - mtls-passthrough)", "mtls-floor", "mtls-passthrough")
    d("native rbac principal-only (mtls-rbac - mtls-passthrough)", "mtls-rbac", "mtls-passthrough")
    d("native jwt_authn (cache) + rbac (mtls-native-cache - mtls-passthrough)", "mtls-native-cache",
      "mtls-passthrough")
    d("an RS256 token in the request, to the floor (mtls-floor - mtls-floor-notoken)", "mtls-floor",
      "mtls-floor-notoken")
    d("ours principal-only above the floor (mtls-principal - mtls-floor-notoken)", "mtls-principal",
      "mtls-floor-notoken")
    d("ours principal AND token above the floor (mtls-both - mtls-floor)", "mtls-both", "mtls-floor")
    d("the token, sent and checked on a cache hit (mtls-both - mtls-principal)", "mtls-both", "mtls-principal")
    d("the audit event, principal AND token (mtls-both - mtls-both/quiet)", "mtls-both", "mtls-both/quiet")
    d("the audit event, principal-only (mtls-principal - mtls-principal/quiet)", "mtls-principal",
      "mtls-principal/quiet")
    d("an RS256 cache miss (mtls-both-miss - mtls-both)", "mtls-both-miss", "mtls-both")
    d("plain: V8 floor (wasm-floor - passthrough)", "wasm-floor", "passthrough")
    d("plain: filter without a token (public - wasm-floor)", "public", "wasm-floor")
    if hit:
        d("plain: token on a cache hit (hit - public)", hit, "public")
        d("plain: audit line (hit - hit/quiet)", hit, "hit-RS256/quiet")
        for m in sorted(n for n in names if n.startswith("miss-RS256")):
            d(f"plain: RS256 verify + parse ({m} - hit)", m, hit)
        d("plain: deny vs allow (deny - hit)", "deny", hit)
    return out


# --------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------

def _short(name: str | None) -> str:
    return (name or "").removeprefix("mtls-")


def _rates(rate) -> str:
    if isinstance(rate, dict):
        return " / ".join(f"{fmt(r)} ({shape})" for shape, r in sorted(rate.items()))
    return fmt(rate)


def _status_cell(s: dict) -> str:
    st = " ".join(f"{k}:{n}" for k, n in sorted(s["statuses"].items()))
    if s["reasons"]:
        st += " (" + ", ".join(sorted(s["reasons"], key=lambda k: -s["reasons"][k])) + ")"
    return st + ("" if s["ok"] else " **FAIL**")


def _cpu_cell(s: dict) -> str:
    rng = f" ({s['cpu_us_min']:.1f}–{s['cpu_us_max']:.1f})" if s["rounds"] > 1 else ""
    return f"{fmt(s['cpu_us'], '.1f')}{rng}"


def _floor_cell(s: dict) -> str:
    if s["kind"] in ("none", "floor"):
        return "-"
    mark = " †" if s.get("floor") and s["floor"] != REFS[s["shape"]]["floor"] else ""
    return fmt(s["d_floor_us"], "+.1f") + mark


def _mtls_table(rows: list[dict]) -> list[str]:
    L = ["| variant | statuses | server CPU µs/req (min–max) | Δ vs TLS passthrough | Δ vs wasm floor "
         "| × native counterpart | req/s | server busy | p50 µs | p99 µs | at req/s | RSS MB |",
         "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for s in rows:
        xref = f"{s['x_ref']:.2f} ({_short(s['ref'])})" if s["x_ref"] is not None else "-"
        L.append(f"| {_short(s['variant'])} | {_status_cell(s)} | {_cpu_cell(s)} "
                 f"| {fmt(s['d_pass_us'], '+.1f') if s['kind'] != 'none' else '-'} "
                 f"| {_floor_cell(s)} | {xref} "
                 f"| {fmt(s['rps'])} | {fmt(s['envoy_busy_pct'])}% | {fmt(s['p50_us'])} | {fmt(s['p99_us'])} "
                 f"| {fmt(s['lat_rate'])}{' *' if s['lat_capped'] else ''} | {fmt(s['rss_mb'], '.1f')} |")
    return L


def _plain_table(rows: list[dict]) -> list[str]:
    L = ["| variant | expect | statuses | Envoy CPU µs/req (min–max) | Δ vs passthrough | × native | × native+cache "
         "| req/s | % pass rps | Envoy busy | p50 µs | p99 µs | at req/s | RSS MB |",
         "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for s in rows:
        L.append(
            f"| {s['variant']} | {s['expect']} | {_status_cell(s)} | {_cpu_cell(s)} "
            f"| {fmt(s['d_pass_us'], '+.1f') if s['kind'] != 'none' else '-'} "
            f"| {fmt(s['x_native'], '.2f')} | {fmt(s['x_native_cache'], '.2f')} "
            f"| {fmt(s['rps'])} | {fmt(s['rps_pct_pass'])}% | {fmt(s['envoy_busy_pct'])}% | {fmt(s['p50_us'])} "
            f"| {fmt(s['p99_us'])} | {fmt(s['lat_rate'])}{' *' if s['lat_capped'] else ''} "
            f"| {fmt(s['rss_mb'], '.1f')} |")
    return L


def _mem_table(mem: list[dict], concurrency: int, load_s) -> list[str]:
    L = [f"Memory per sidecar: a fresh server Envoy at `--concurrency {concurrency}` (Istio's default), plain "
         f"HTTP/1.1, connections balanced over the workers, {load_s} s of load; VmRSS at ready and after the load, "
         "VmHWM (the peak: a config-parsing high-water mark stays in wasm memory for the VM's life).",
         "",
         "Where it is: Envoy's heap (tcmalloc, admin `/memory`) live, and freed but kept by tcmalloc (page heap "
         "and thread caches); wasm linear memories and V8's JIT code (from `/proc/PID/smaps`).",
         "",
         "| variant | RSS at ready MB | RSS after load MB | peak (VmHWM) MB | Δ RSS vs floor | Δ peak vs floor "
         "| " + " | ".join(f"{label} MB" for label in WHERE.values()) + " | workers served | ready in s |",
         "|---|--:|--:|--:|--:|--:|" + "--:|" * len(WHERE) + "--:|--:|"]
    for m in mem:
        flag = "" if m["ok"] else " **FAIL**"
        L.append(f"| {m['variant']}{flag} | {fmt(m['rss_ready_mb'], '.1f')} | {fmt(m['rss_mb'], '.1f')} "
                 f"| {fmt(m['hwm_mb'], '.1f')} "
                 f"| {fmt(m['d_floor_rss_mb'], '+.1f') if m['variant'] != 'mem-floor' else '-'} "
                 f"| {fmt(m['d_floor_hwm_mb'], '+.1f') if m['variant'] != 'mem-floor' else '-'} "
                 + "".join(f"| {fmt(m.get('where_mb', {}).get(k), '.1f')} " for k in WHERE)
                 + f"| {m['workers_served']}/{concurrency} | {fmt(m['ready_s'], '.1f')} |")
    L.append("")
    L.append("Memory variants: " + "; ".join(f"`{m['variant']}` {m['desc']}" for m in mem) + ".")
    return L


def _engine_lines(engine: dict) -> list[str]:
    L = [f"Native engine (`{engine['command']}`, pinned to CPU {engine.get('cpu', '-')}): decision cost "
         "as the rule count grows.", "",
         "| rules | policy load | decision (allow, last rule) | decision (deny, no rule) | vs 10 rules |",
         "|---:|---:|---:|---:|---:|"]
    for r in engine["rows"]:
        L.append(f"| {r['rules']} | {r['load']} | {r['allow_ns']:.0f} ns | {r['deny_ns']:.0f} ns | {r['vs_10']:.2f}x |")
    return L


def markdown(meta: dict, summary: list[dict], mem: list[dict], goal_list: list[dict], soak: dict | None,
             notes: list[str], br: list[tuple[str, float]], engine: dict | None) -> str:
    # Long on purpose: one report, section after section.
    m = meta["machine"]
    L = [f"Command: `{meta['command']}`  ",
         f"Date: {meta['date']}  ",
         f"Machine: {m['nproc']} CPUs, {m['cpu_model']}, Linux {m['kernel']}; Envoy {meta['envoy_version']}"
         f" (measured Envoy `--concurrency 1` on CPU {meta['envoy_cpu']}, load generators and the client Envoy "
         f"on CPU {meta['load_cpu']})  ",
         f"Module: {meta['module']['size']} bytes (sha256 {meta['module']['sha256'][:12]})"
         + ("" if not summary else
            f"; {meta['rounds']} interleaved round(s), {meta['duration']} s per variant at saturation "
            f"(wrk -t1 -c{meta['wrk_conns']}); latency: open-loop loadgen, {meta['lat_conns']} connections, "
            f"{meta['lat_duration']} s at {_rates(meta['lat_rate'])} req/s (half of the shape's passthrough peak) "
            "or half the variant's own peak when lower (*)"),
         ""]
    mt = [s for s in summary if s["shape"] == "mtls"]
    pl = [s for s in summary if s["shape"] == "plain"]
    if mt:
        L += ["**Mesh shape (the headline): mTLS from a client sidecar, HTTP/2, audit events on.** "
              "wrk → a client Envoy (CPU 0: plaintext in, mTLS out with the SPIFFE certificate "
              "`spiffe://cluster.local/ns/shop/sa/frontend`, HTTP/2) → the measured server Envoy (TLS listener "
              "requiring a client certificate, `direct_response`, log level `info`, so the filter writes one audit "
              "event per request; `/quiet`: `--component-log-level wasm:warning`). CPU is the server Envoy's; "
              "latency is end to end through both Envoys.", ""]
        L += _mtls_table(mt)
        L += ["", "† compared with `floor-notoken` (no token sent either). Variants: "
              + "; ".join(f"`{_short(s['variant'])}` {s['desc']}" for s in mt) + ".", ""]
    if mem:
        L += _mem_table(mem, meta.get("mem_concurrency", 2), meta.get("mem_load"))
        L.append("")
    if pl:
        L += ["**Plain HTTP/1.1** (no mTLS: load straight to the measured Envoy, one RS256 token unless named; "
              "log level `info`, audit events on, except `hit-RS256/quiet`).", ""]
        L += _plain_table(pl)
        L += ["", "Variants: " + "; ".join(f"`{s['variant']}` {s['desc']}" for s in pl) + ".", ""]
    if br:
        L.append("Where the server CPU goes (differences within each round, then the median; µs per request): "
                 + "; ".join(f"{k} {v:+.1f}" for k, v in br) + ".")
        L.append("")
    if engine and engine.get("rows"):
        L += _engine_lines(engine)
        L.append("")
    if soak:
        L.append(f"Soak ({soak['variant']}, {soak['seconds']} s, {soak['requests']} requests, "
                 f"{soak['rps']:.0f} req/s): RSS {soak['rss_first_kb'] / 1024:.1f} -> {soak['rss_last_kb'] / 1024:.1f} MB,"
                 f" slope {soak['slope_kb_per_min']:+.1f} KB/min after {soak['regression_from_s']} s"
                 f" (R² {soak['r2']:.2f}): {'GROWS' if soak['trends_up'] else 'no growth trend'}.")
        L.append("")
    if goal_list:
        L += ["Goals (issue 9), from this run:", ""]
        for gl in goal_list:
            box, word = {True: ("x", "met"), False: (" ", "**missed**"), None: (" ", "not measured")}[gl["met"]]
            L.append(f"- [{box}] {gl['goal']}: {gl['measured']} — {word}")
        L.append("")
    starved = [_short(s["variant"]) + ("" if s["shape"] == "plain" else " (mTLS)") for s in summary
               if (s["envoy_busy_pct"] or 0) < 90]
    if starved:
        if len(starved) > len(summary) // 2:
            busy_ones = [_short(s["variant"]) + ("" if s["shape"] == "plain" else " (mTLS)") for s in summary
                         if (s["envoy_busy_pct"] or 0) >= 90]
            starved = [f"{len(starved)} of {len(summary)} variants (all but {', '.join(busy_ones) or 'none'})"]
        L.append(f"Note: the measured Envoy's CPU was under 90% busy at \"saturation\" for {', '.join(starved)}: "
                 "there the load side (CPU 0: wrk, and the client Envoy in the mesh shape) limited req/s, so req/s "
                 "understates the server's peak; CPU µs/req still holds.  ")
    noisy = [f"{s['variant']} {s['other_load_pct']:.0f}%" for s in summary if (s["other_load_pct"] or 0) > 5]
    if noisy:
        L.append(f"Note: other processes (or VM steal) used Envoy's CPU during: {', '.join(noisy)}; "
                 "the machine was not quiet, figures are noisier than usual.  ")
    if not meta.get("smoke") and (meta.get("rounds", 3) < 3 or meta.get("duration", 7) < 7):
        L.append(f"Note: a short run ({meta.get('rounds')} round(s), {meta.get('duration')} s per variant): "
                 "indicative figures; `make bench` (3 rounds, 7 s) is the one to quote.  ")
    if meta.get("smoke"):
        L.append("Note: a smoke run (1 round, 2 s per variant): a check that every variant works, not figures "
                 "to quote.  ")
    for n in notes:
        L.append(f"Note: {n}  ")
    return "\n".join(L).rstrip() + "\n"
