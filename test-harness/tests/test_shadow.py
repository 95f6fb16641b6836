"""A shadow policy in a real Envoy, then `oam-authz replay` of what it logged.

The shop example (examples/shop/app.yaml) is enforced with its revision
examples/diff/shop-v2.yaml as the shadow (`oam-authz compile NEW --shadow-of
OLD --format envoy`). Through a real Envoy per protected component, with real
client certificates and real signed tokens, we send every region example
`oam-authz diff OLD NEW` reports and every case of examples/shop/cases.yaml.
For each request:

1. the response and the audit event are the enforced (OLD) decision;
2. the event carries a `shadow` object exactly when the two decisions differ,
   and it is NEW's decision as predicted: by `diff` for its examples, by
   `oam-authz explain NEW` for the cases (whose OLD decision `explain OLD`
   gives);
3. the shadow counters count the changes by kind, the per-rule counters
   count each deciding rule, enforced and shadow.

Then the captured Envoy logs are replayed under NEW with the CLI: replay must
report exactly the requests whose events carry a `shadow` object, each with
the same change and new decision, and none undecidable. With
OAM_AUTHZ_WRITE_REPLAY_FIXTURE=PATH the captured audit lines are also written
to PATH (tests/testdata/replay/shop-shadow.log is made so, for the CLI tests).
"""
from __future__ import annotations

import json
import os
import re
import time
import uuid

import pytest

from harness import client as C
from harness import replay as R
from harness.checks import SENT_TOKENS

OLD = os.path.join(R.EXAMPLES, "shop", "app.yaml")
NEW = os.path.join(R.EXAMPLES, "diff", "shop-v2.yaml")
CASES = os.path.join(R.EXAMPLES, "shop", "cases.yaml")


def _kind(old: R.CliDecision, new: R.CliDecision) -> str | None:
    """`Change::between`: allow/deny first, then the reason code."""
    if old.allowed and not new.allowed:
        return "allow_to_deny"
    if new.allowed and not old.allowed:
        return "deny_to_allow"
    if old.reason != new.reason:
        return "reason_changed"
    return None


def _decision(d: dict) -> R.CliDecision:
    return R.CliDecision(d["decision"] == "allow", d["status"], d["reason"], d.get("rule"), ())


def _metric(rule: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", rule)


class Shadowed:
    def __init__(self, workdir: str, echo):
        self.dir = os.path.join(workdir, "shadow")
        os.makedirs(self.dir, exist_ok=True)
        self.cli = R.Cli()
        self.old, self.new = R.App.load(OLD), R.App.load(NEW)
        out = os.path.join(self.dir, "compiled")
        self.cli.run("compile", NEW, "--shadow-of", OLD, "--format", "envoy", "--out-dir", out)
        self.configs = {}
        for comp in self.old.protected:
            with open(os.path.join(out, f"oam-authz-{self.old.name}-{comp}.json")) as f:
                self.configs[comp] = f.read()
        d = self.cli.run("diff", OLD, NEW, "--output", "json", check=False)
        assert d.returncode == 4, d.stdout + d.stderr
        self.diff = json.loads(d.stdout)
        self.pki = R.SpiffePKI(os.path.join(self.dir, "pki"))
        self.echo = echo
        self.envoys: dict = {}

    def envoy(self, comp: str):
        if comp not in self.envoys:
            self.envoys[comp] = R.start_component_envoy(self.dir, f"shadow-{comp}", self.pki, self.echo,
                                                        self.configs[comp])
        return self.envoys[comp]

    def send(self, comp: str, req: dict, token: R.CaseToken):
        rid = f"shadow-{uuid.uuid4().hex}"
        headers = [("x-request-id", rid)]
        path = req["path"]
        if token.token is not None:
            SENT_TOKENS.append(token.token)
            loc = R.token_location(json.loads(self.configs[comp]), token.provider["name"] if token.provider else None)
            extra, path = R.place_token(token.token, loc, path)
            headers += extra
        principal = req.get("principal")
        cert = self.pki.client(self.old.spiffe(principal)) if principal else None
        r = C.request(self.envoy(comp).ports["mtls-raw" if cert else "optional-raw"], path, req.get("method", "GET"),
                      headers, cert=cert, ca=self.pki.ca_cert, host=req.get("host") or comp, timeout=10)
        return rid, r

    def stop(self):
        for env in self.envoys.values():
            env.stop()


@pytest.fixture(scope="module")
def shadowed(workdir, echo, wasm):
    s = Shadowed(workdir, echo)
    yield s
    s.stop()


def _requests(s: Shadowed):
    """(component, request, token, old, new): diff's examples with its
    predictions, then the cases with `explain` under each revision."""
    now = int(time.time())
    for c in s.diff["components"]:
        for region in c["regions"]:
            ex = region["example"]
            req = {k: ex.get(k) for k in ("method", "path", "host", "principal")}
            case = {**req, "claims": ex.get("claims")}
            yield c["component"], req, R.token_for_case(s.old, case, None, now), _decision(ex["old"]), \
                _decision(ex["new"])
    doc = R.load_yaml(CASES)
    for case in doc["cases"]:
        comp = case["component"]
        case_now = case.get("now", doc.get("now"))
        token = R.token_for_case(s.old, case, case_now, now)
        args = dict(method=case.get("method", "GET"), path=case["path"], host=case.get("host"),
                    principal=case.get("principal"), provider=case.get("provider"), now=int(time.time()))
        if token.token is not None:
            args["token_file"] = os.path.join(s.dir, f"token-{uuid.uuid4().hex}.jwt")
            with open(args["token_file"], "w") as f:
                f.write(token.token)
        old, _ = s.cli.explain(s.old, comp, **args)
        new, _ = s.cli.explain(s.new, comp, **args)
        yield comp, case, token, old, new


@pytest.fixture(scope="module")
def traffic(shadowed):
    """Every request sent, with its audit event and the predictions."""
    sent = []
    for comp, req, token, old, new in _requests(shadowed):
        rid, r = shadowed.send(comp, req, token)
        sent.append((comp, req, old, new, r, rid))
    return [(comp, req, old, new, r, shadowed.envoy(comp).wait_audit(rid)) for comp, req, old, new, r, rid in sent]


def test_compile_shadow_of_pairs_the_revisions(shadowed):
    """Each component: OLD's config as `compile OLD` writes it, with NEW's as
    `compile NEW` writes it as the shadow."""
    alone = {}
    for app, tag in ((shadowed.old, "old"), (shadowed.new, "new")):
        alone[tag] = shadowed.cli.compile_envoy(app, os.path.join(shadowed.dir, f"alone-{tag}"))
    for comp, text in shadowed.configs.items():
        cfg = json.loads(text)
        shadow = cfg.pop("shadow")
        assert cfg == json.loads(alone["old"][comp]), comp
        assert shadow == json.loads(alone["new"][comp]), comp
    orders = json.loads(shadowed.configs["orders"])
    assert orders["shadow"]["policy_version"] != orders["policy_version"]


def test_enforced_decision_is_unchanged_and_the_shadow_differs_as_predicted(shadowed, traffic):
    changed = 0
    for comp, req, old, new, r, ev in traffic:
        where = f"{comp} {req.get('method', 'GET')} {req['path']} peer={req.get('principal')}"
        assert r.status == old.status, f"{where}: {r!r}"
        assert (ev["decision"], ev["status"], ev["reason"], ev["rule"]) == \
            ("allow" if old.allowed else "deny", old.status, old.reason, old.rule), f"{where}: {ev}"
        version = json.loads(shadowed.configs[comp])["shadow"]["policy_version"]
        if _kind(old, new) is None:
            assert "shadow" not in ev, f"{where}: the decisions agree, yet {ev['shadow']}"
        else:
            changed += 1
            want = {"decision": "allow" if new.allowed else "deny", "status": new.status, "reason": new.reason,
                    "rule": new.rule, "policy_version": version}
            assert ev.get("shadow") == want, f"{where}: {ev}"
    assert changed >= 7, "every diff region changes a decision"


def test_counters_count_changes_by_kind_and_rule_hits(shadowed, traffic):
    for comp in shadowed.envoys:
        rows = [t for t in traffic if t[0] == comp]
        want: dict[str, int] = {}

        def add(name):
            want[name] = want.get(name, 0) + 1

        for _, _, old, new, _, _ in rows:
            kind = _kind(old, new)
            if kind:
                add(f"wasmcustom.oam_authz.shadow.{kind}")
            if old.rule:
                add(f"wasmcustom.oam_authz.rule_hits.{_metric(old.rule)}")
            if new.rule:
                add(f"wasmcustom.oam_authz.shadow.rule_hits.{_metric(new.rule)}")
        env = shadowed.envoys[comp]
        got = env.wait_stats("oam_authz", want)
        for name, n in want.items():
            assert got.get(name) == n, f"{comp} {name}: {got.get(name)} != {n}\n{got}"
        # Every other shadow and rule counter of this component is at zero.
        extra = {k: v for k, v in got.items() if v and k not in want
                 and (".shadow." in k or ".rule_hits." in k or "over_cap" in k)}
        assert not extra, f"{comp}: unexpected counts {extra}"


def test_replay_of_the_captured_log_reports_the_same_changes(shadowed, traffic):
    # The events are all in (the traffic fixture waited on each): capture now.
    log = "".join(env.log_text() for env in shadowed.envoys.values())
    path = os.path.join(shadowed.dir, "envoy.log")
    with open(path, "w") as f:
        f.write(log)
    fixture = os.environ.get("OAM_AUTHZ_WRITE_REPLAY_FIXTURE")
    if fixture:
        with open(fixture, "w") as f:
            f.write("# Audit lines of test-harness/tests/test_shadow.py: examples/shop/app.yaml enforced with\n"
                    "# examples/diff/shop-v2.yaml as its shadow, Envoy 1.40. Regenerate with\n"
                    "# OAM_AUTHZ_WRITE_REPLAY_FIXTURE=$PWD/tests/testdata/replay/shop-shadow.log make e2e\n")
            f.writelines(line + "\n" for line in log.splitlines() if "oam-authz-audit " in line)
    out = shadowed.cli.run("replay", NEW, "--log", path, "--output", "json", check=False)
    assert out.returncode == 4, out.stdout + out.stderr  # something widens, as diff said
    report = json.loads(out.stdout)
    assert report["unreadable"] == 0 and report["unmatched"] == {}, report
    got = {}
    for c in report["components"]:
        assert c["undecidable"] == [], c
        assert c["events"] == len([t for t in traffic if t[0] == c["component"]]), c
        for ch in c["changes"]:
            assert ch["count"] == len(ch["requests"]), ch
            for rq in ch["requests"]:
                got[rq["request_id"]] = (ch["counter"], ch["new"])
    want = {ev["request_id"]: (_kind(old, new), ev["shadow"]) for _, _, old, new, _, ev in traffic if "shadow" in ev}
    for rid, (kind, shadow) in want.items():
        assert rid in got, f"replay misses {rid}: {shadow}\n{out.stdout}"
        counter, new = got[rid]
        assert counter == kind, (rid, counter, kind)
        assert new == {k: shadow[k] for k in ("decision", "status", "reason", "rule")}, (rid, new, shadow)
    assert set(got) == set(want), f"replay reports requests the shadow did not change: {set(got) - set(want)}"
