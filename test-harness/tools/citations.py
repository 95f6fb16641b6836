#!/usr/bin/env python3
"""Fail when a source comment cites a repository path that does not exist
(`docs/policy.md`, `istio/ROLLOUT.md`, `test-harness/...`), or a markdown
heading that the cited file does not have: `docs/policy.md "Principal
patterns"`. Usage: citations.py [SRC ...] (default: src tests benches).
"""
import os
import re
import sys

ROOTS = ("docs/", "istio/", "test-harness/", "examples/", "src/", "tests/", "benches/", "CONTRIBUTING.md", "README.md")
CITE = re.compile(r"((?:docs|istio|test-harness|examples|src|tests|benches)/[\w./-]*[\w/]|CONTRIBUTING\.md|README\.md)"
                  r"(?:`)?(?:\s*\(?\"([^\"]+)\"\)?)?")


def headings(path: str) -> set:
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        return set()
    return {re.sub(r"[`*]", "", m.group(1)).strip() for m in re.finditer(r"^#+\s+(.*)$", text, re.M)}


def main(argv):
    dirs = argv[1:] or ["src", "tests", "benches"]
    bad = 0
    for d in dirs:
        for base, _, names in os.walk(d):
            for name in names:
                if not name.endswith(".rs"):
                    continue
                p = os.path.join(base, name)
                for n, line in enumerate(open(p, encoding="utf-8"), 1):
                    if "//" not in line:
                        continue
                    comment = line[line.index("//"):]
                    for m in CITE.finditer(comment):
                        target, heading = m.group(1).rstrip("."), m.group(2)
                        if not os.path.exists(target):
                            print(f"{p}:{n}: cites {target}, which does not exist")
                            bad += 1
                        elif heading and target.endswith(".md") and heading not in headings(target):
                            print(f"{p}:{n}: cites \"{heading}\" in {target}, which has no such heading")
                            bad += 1
    if bad:
        return 1
    print(f"every path and heading cited in comments exists ({', '.join(dirs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
