#!/usr/bin/env python3
"""Fail on a non-test Rust function longer than 80 lines whose comment does
not say why ("Long on purpose: ..." in the comment just above it).

Lines are counted from the `fn` line to its closing brace. Test code
(`#[cfg(test)]` modules, `tests.rs`, `*_tests.rs`, `testing.rs`) is not
checked: table-driven tests are long by nature. Usage: fnlength.py [SRC].
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modcycles import drop_test_items  # noqa: E402

LIMIT = 80
FN = re.compile(r"^\s*(pub(\([^)]*\))?\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)")


def long_functions(path: str):
    text = open(path, encoding="utf-8").read()
    # Keep line numbers: blank test items line by line instead of cutting them.
    kept = drop_test_items(text, keep_lines=True)
    lines = kept.split("\n")
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m:
            continue
        depth, started, end = 0, False, i
        for j in range(i, len(lines)):
            code = re.sub(r"//.*", "", lines[j])
            depth += code.count("{") - code.count("}")
            started = started or "{" in code
            end = j
            if (started and depth <= 0) or (not started and code.rstrip().endswith(";")):
                break
        n = end - i + 1
        if n <= LIMIT:
            continue
        above = []
        k = i - 1
        while k >= 0 and re.match(r"^\s*(//|#\[)", lines[k]):
            above.append(lines[k])
            k -= 1
        if not any("Long on purpose" in a for a in above):
            yield i + 1, m.group(5), n


def main(argv):
    src = argv[1] if len(argv) > 1 else "src"
    bad = 0
    for d, _, names in os.walk(src):
        for name in sorted(names):
            if not name.endswith(".rs") or name in ("tests.rs", "testing.rs") or name.endswith("_tests.rs"):
                continue
            p = os.path.join(d, name)
            for line, fn, n in long_functions(p):
                bad += 1
                print(f"{p}:{line}: fn {fn} is {n} lines (limit {LIMIT}); split it, or say why in a 'Long on purpose: ...' comment")
    if bad:
        return 1
    print(f"no function over {LIMIT} lines without a reason ({src})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
