"""The source checks of `make lint` find what they must find."""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "modcycles.py")
FNLEN = os.path.join(HERE, "fnlength.py")


def run(files: dict, tool: str = TOOL) -> subprocess.CompletedProcess:
    d = tempfile.mkdtemp()
    for rel, text in files.items():
        p = os.path.join(d, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    return subprocess.run([sys.executable, tool, d], capture_output=True, text=True)


class ModCycles(unittest.TestCase):
    def test_clean_tree_passes(self):
        r = run({"lib.rs": "mod a;\nmod b;\n", "a.rs": "use crate::b::X;\n", "b.rs": "pub struct X;\n"})
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_sibling_cycle(self):
        r = run({"lib.rs": "mod a;\nmod b;\n", "a.rs": "use crate::b::X;\npub struct Y;\n",
                 "b.rs": "pub struct X;\nfn f() -> crate::a::Y { crate::a::Y }\n"})
        self.assertEqual(r.returncode, 1)
        self.assertIn("crate::a -> crate::b", r.stdout)
        self.assertIn("crate::b -> crate::a", r.stdout)

    def test_parent_child_cycle(self):
        r = run({"lib.rs": "mod p;\n", "p/mod.rs": "mod c;\npub struct T;\nfn f() { c::g() }\n",
                 "p/c.rs": "use super::T;\npub fn g() {}\n"})
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("crate::p::c -> crate::p", r.stdout)

    def test_grouped_use_and_test_code(self):
        # A cycle only through test code is not reported; one through a
        # nested `use` group is.
        ok = run({"lib.rs": "mod a;\nmod b;\n", "a.rs": "pub struct X;\n#[cfg(test)]\nmod tests { use crate::b::Y; }\n",
                  "b.rs": "use crate::a::X;\npub struct Y;\n"})
        self.assertEqual(ok.returncode, 0, ok.stdout)
        bad = run({"lib.rs": "mod a;\nmod b;\n", "a.rs": "use crate::{b::{Y, Z}};\npub struct X;\n",
                   "b.rs": "use crate::a::X; // crate::nothing\npub struct Y;\npub struct Z;\n"})
        self.assertEqual(bad.returncode, 1, bad.stdout)

    def test_comments_and_strings_are_not_references(self):
        r = run({"lib.rs": "mod a;\nmod b;\n", "a.rs": "use crate::b::X;\n",
                 "b.rs": "pub struct X;\n// crate::a::Y\nconst S: &str = \"crate::a::Y\";\n"})
        self.assertEqual(r.returncode, 0, r.stdout)


def fn(name: str, lines: int, comment: str = "") -> str:
    body = "".join(f"    let x{i} = {i};\n" for i in range(lines - 2))
    return f"{comment}fn {name}() {{\n{body}}}\n"


class FnLength(unittest.TestCase):
    def test_limit_and_reason(self):
        ok = run({"lib.rs": fn("short", 80) + fn("long", 81, "/// Long on purpose: a table.\n")}, FNLEN)
        self.assertEqual(ok.returncode, 0, ok.stdout)
        bad = run({"lib.rs": fn("long", 81, "/// Just long.\n")}, FNLEN)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("lib.rs:2: fn long is 81 lines", bad.stdout)

    def test_test_code_is_not_checked(self):
        r = run({"lib.rs": "#[cfg(test)]\nmod tests {\n" + fn("big", 200) + "}\n", "x/tests.rs": fn("big", 200)}, FNLEN)
        self.assertEqual(r.returncode, 0, r.stdout)


class Citations(unittest.TestCase):
    def test_missing_path_and_heading(self):
        tool = os.path.join(HERE, "citations.py")
        d = tempfile.mkdtemp()
        os.makedirs(os.path.join(d, "docs"))
        os.makedirs(os.path.join(d, "src"))
        with open(os.path.join(d, "docs", "a.md"), "w") as f:
            f.write("# A\n## Key management\n")
        def check(comment):
            with open(os.path.join(d, "src", "lib.rs"), "w") as f:
                f.write(comment + "\nfn f() {}\n")
            return subprocess.run([sys.executable, tool, "src"], cwd=d, capture_output=True, text=True)
        self.assertEqual(check('// see docs/a.md "Key management"').returncode, 0)
        self.assertEqual(check("// see docs/b.md").returncode, 1)
        self.assertEqual(check('// see docs/a.md "Keys"').returncode, 1)


if __name__ == "__main__":
    unittest.main()
