"""Runs last (file order): the main Envoy's log after the whole suite. No token
(nor its signature or payload segment) is ever logged, every audit line is
valid JSON, and the VM never trapped or panicked."""
import json

from harness.checks import SENT_TOKENS


def test_no_token_text_in_log(main_envoy, call):
    call("/healthz")  # the fixture may be fresh if this file runs alone
    text = main_envoy.log_text()
    leaked = []
    for tok in set(SENT_TOKENS):
        parts = tok.split(".")
        needles = [tok] + [p for p in parts[1:] if len(p) >= 16]
        leaked += [n[:40] for n in needles if n in text]
    assert not leaked, f"token text found in the Envoy log: {leaked[:5]}"


def test_every_audit_line_is_json(main_envoy):
    n = 0
    for line in main_envoy.log_text().splitlines():
        i = line.find("oam-authz-audit ")
        if i >= 0:
            ev = json.loads(line[i + len("oam-authz-audit "):])
            assert ev["decision"] in ("allow", "deny", "audit_deny"), ev
            assert isinstance(ev["status"], int) and ev["reason"], ev
            n += 1
    assert n >= 1


def test_vm_never_trapped(main_envoy):
    text = main_envoy.log_text().lower()
    for bad in ("panicked", "wasm trap", "unreachable", "failed to load", "function: proxy_on_"):
        assert bad not in text, bad
