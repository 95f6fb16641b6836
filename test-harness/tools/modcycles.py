#!/usr/bin/env python3
"""Fail when the Rust modules of a crate import each other in a cycle.

Imports must run one way (CONTRIBUTING.md "Layout"): a module may use its
children and modules below it, never a module that (directly or through
others) uses it back. A parent and a child that use each other count as a
cycle too (`policy/mod.rs` using `index` while `index` uses `policy::Rule`).

The graph has one node per module file; an edge A -> B when A's code names
an item of B (`use crate::b::X`, `crate::b::f()`, `super::X`, or a child
module's path such as `authz::authorize`). Test code (`#[cfg(test)]`
modules, `tests.rs`, `*_tests.rs`, `testing.rs`) is left out: tests may
reach anywhere. Usage: modcycles.py SRC_ROOT [--crate-root FILE] ...
Prints every cycle with the references that make it; exit 1 if any.
"""
import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_code(text: str) -> str:
    """Remove comments, string/char literals and #[cfg(test)] items."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and not re.match(r"\w", text[i - 1:i] or " "):
            m = re.match(r'r(#*)"', text[i:])
            close = '"' + m.group(1)
            j = text.find(close, i + len(m.group(0)))
            i = n if j < 0 else j + len(close)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:])
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    code = "".join(out)
    return drop_test_items(code)


def drop_test_items(code: str, keep_lines: bool = False) -> str:
    """Remove `#[cfg(test)] mod x { ... }` and `#[cfg(test)] mod x;`; with
    `keep_lines`, blank them instead so line numbers stay right."""
    # `#[cfg(test)]` or `#[cfg(all(test, ...))]`, then any attributes.
    pat = re.compile(r"#\[cfg\((?:all\()?test\b[^\]]*\]\s*(#\[[^\]]*\]\s*)*(pub(\([^)]*\))?\s+)?mod\s+" + IDENT + r"\s*([;{])")
    while True:
        m = pat.search(code)
        if not m:
            return code
        j = m.end()
        if m.group(4) == "{":
            depth = 1
            while j < len(code) and depth:
                depth += {"{": 1, "}": -1}.get(code[j], 0)
                j += 1
        gap = re.sub(r"[^\n]", " ", code[m.start():j]) if keep_lines else ""
        code = code[:m.start()] + gap + code[j:]


def module_of(path: str, src: str, root_file: str) -> tuple:
    rel = os.path.relpath(path, src)
    if os.path.normpath(path) == os.path.normpath(root_file):
        return ("crate",)
    parts = rel[:-3].split(os.sep)
    base = os.path.relpath(os.path.dirname(root_file), src)
    if base != ".":
        parts = parts[len(base.split(os.sep)):]
    if parts[-1] == "mod":
        parts = parts[:-1]
    return ("crate", *parts)


def expand_use(body: str) -> list:
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e'] (self kept as the prefix)."""
    body = re.sub(r"\s+", "", body)
    m = re.match(r"^(.*?)::\{(.*)\}$", body)
    if not m:
        return [re.sub(r"as" + IDENT + "$", "", body)]
    prefix, inner = m.group(1), m.group(2)
    items, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    items.append(cur)
    out = []
    for it in filter(None, items):
        if it == "self":
            out.append(prefix)
        else:
            out.extend(expand_use(prefix + "::" + it))
    return out


def references(code: str, children: set) -> list:
    refs = []
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        refs.extend(expand_use(m.group(1)))
    code_wo_use = re.sub(r"\buse\s+[^;]+;", "", code)
    refs += re.findall(r"\b(?:crate|super|self)(?:::" + IDENT + ")+", code_wo_use)
    for child in children:
        refs += re.findall(r"(?<![:\w])" + child + r"(?:::" + IDENT + ")+", code_wo_use)
    return refs


def resolve(ref: str, here: tuple, is_dir_module: bool, modules: set, children: set):
    segs = [s for s in ref.split("::") if s]
    if not segs:
        return None
    if segs[0] == "crate":
        path = ["crate"]
        segs = segs[1:]
    elif segs[0] in ("super", "self"):
        # `super` of a `mod.rs` (or of lib.rs) module is its parent.
        path = list(here)
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                path = path[:-1]
            segs = segs[1:]
    elif segs[0] in children:
        path = list(here)
    else:
        return None  # an external crate or a local item
    best = tuple(path)
    for s in segs:
        path.append(s)
        if tuple(path) in modules:
            best = tuple(path)
        else:
            break
    return best


def check(src: str, root_file: str, skip: list) -> list:
    files = []
    for d, _, names in os.walk(src):
        for name in names:
            p = os.path.join(d, name)
            if not name.endswith(".rs") or any(os.path.commonpath([p, s]) == s for s in skip):
                continue
            if name in ("tests.rs", "testing.rs") or name.endswith("_tests.rs"):
                continue
            files.append(p)
    mods = {module_of(p, src, root_file): p for p in files}
    graph = {}
    for mod, path in mods.items():
        code = strip_code(open(path, encoding="utf-8").read())
        children = set(re.findall(r"\bmod\s+(" + IDENT + r")\s*;", code))
        edges = {}
        for ref in references(code, children):
            target = resolve(ref, mod, path.endswith("mod.rs"), set(mods), children)
            if target and target != mod and target in mods:
                edges.setdefault(target, ref)
        graph[mod] = edges
    return cycles(graph)


def cycles(graph: dict) -> list:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return [(comp, {a: {b: r for b, r in graph[a].items() if b in comp} for a in comp}) for comp in out]


def main(argv):
    crates = []  # (src dir, root file, skip dirs)
    root = os.path.abspath(argv[1] if len(argv) > 1 else "src")
    crates.append((root, os.path.join(root, "lib.rs"), [os.path.join(root, "bin")]))
    bins = os.path.join(root, "bin")
    if os.path.isdir(bins):
        for name in sorted(os.listdir(bins)):
            d = os.path.join(bins, name)
            if os.path.isdir(d) and os.path.exists(os.path.join(d, "main.rs")):
                crates.append((d, os.path.join(d, "main.rs"), []))
    found = 0
    for src, root_file, skip in crates:
        for comp, edges in check(src, root_file, skip):
            found += 1
            names = ["::".join(m) for m in comp]
            print(f"import cycle among {', '.join(names)}:")
            for a, bs in edges.items():
                for b, ref in bs.items():
                    print(f"  {'::'.join(a)} -> {'::'.join(b)}   (via {ref})")
    if found:
        print(f"{found} import cycle(s): imports must run one way (CONTRIBUTING.md, Layout)", file=sys.stderr)
        return 1
    print(f"no import cycles ({', '.join(os.path.relpath(c[0]) for c in crates)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
