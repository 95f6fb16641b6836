"""`explain`/`test` and the filter agree: every policy test case of every
example application (examples/<app>/cases.yaml) is replayed as a real HTTP
request through a real Envoy running the plugin configuration that
`oam-authz compile --format envoy` emits now (one Envoy per protected
component), with a real client certificate for the case's SPIFFE identity
(component names resolved as the compiler does) and a real token signed with
the test-only example IdP key.

For each case:

1. `oam-authz test app.yaml cases.yaml` reports it PASS;
2. `oam-authz explain` with the case's own inputs gives the CLI's full
   decision (status, reason, rule, roles held), which must satisfy `expect`;
3. through Envoy, the response status and `x-oam-authz-reason`, and the
   filter's audit event (decision, status, reason, rule, peer; roles as
   documented, see `_check_envoy`), equal the CLI's decision: on a listener
   without Envoy's path normalization (the filter sees the exact path the CLI
   judged) and, for canonical paths, on one with it (as deployed);
4. when the token sent is not the case's own (claims signed into a real token,
   or a recorded token re-signed with its times moved to the present), `explain`
   of the token actually sent gives the same decision: the replay changed
   nothing that matters.
"""
from __future__ import annotations

import json
import os
import time
import uuid

import pytest

from harness import client as C
from harness import replay as R
from harness.checks import SENT_TOKENS

APPS = ["shop", "deploy-api", "artifact-store"]


def _cases(app: str) -> tuple[dict, list]:
    doc = R.load_yaml(os.path.join(R.EXAMPLES, app, "cases.yaml"))
    return doc, doc["cases"]


CASES = [(app, i) for app in APPS for i in range(len(_cases(app)[1]))]


class AppReplay:
    """One example application: its compiled plugin configs, the CLI's verdicts,
    and an Envoy per protected component (started on first use)."""

    def __init__(self, name: str, workdir: str, echo, cli: R.Cli):
        self.name = name
        self.dir = os.path.join(workdir, "replay", name)
        os.makedirs(self.dir, exist_ok=True)
        self.app = R.App.load(os.path.join(R.EXAMPLES, name, "app.yaml"))
        self.cases_path = os.path.join(R.EXAMPLES, name, "cases.yaml")
        self.doc, self.cases = _cases(name)
        self.cli = cli
        self.echo = echo
        # What the CLI emits now, not the checked-in copy.
        self.configs = cli.compile_envoy(self.app, os.path.join(self.dir, "compiled"))
        self.verdicts, self.test_output = cli.test(self.app, self.cases_path)
        self.pki = R.SpiffePKI(os.path.join(self.dir, "pki"))
        self.envoys: dict = {}
        self.sent_tokens: list[str] = []

    def envoy(self, component: str):
        if component not in self.envoys:
            cfg = self.configs[component]
            assert json.loads(cfg).get("mode", "enforce") == "enforce", \
                f"{self.name}/{component} compiles to audit mode: replayed decisions would not be enforced"
            self.envoys[component] = R.start_component_envoy(self.dir, f"{self.name}-{component}", self.pki,
                                                             self.echo, cfg)
        return self.envoys[component]

    def stop(self):
        for env in self.envoys.values():
            env.stop()


@pytest.fixture(scope="module")
def replays(workdir, echo, wasm):
    cli = R.Cli()
    made: dict[str, AppReplay] = {}

    def get(name: str) -> AppReplay:
        if name not in made:
            made[name] = AppReplay(name, workdir, echo, cli)
        return made[name]

    yield get
    for r in made.values():
        r.stop()


def _tmpfile(directory: str, text: str) -> str:
    path = os.path.join(directory, f"token-{uuid.uuid4().hex}.jwt")
    with open(path, "w") as f:
        f.write(text)
    return path


def _send(rp: AppReplay, env, case: dict, listener: str, token: R.CaseToken, cert):
    rid = f"replay-{uuid.uuid4().hex}"
    headers = [("x-request-id", rid)]
    path = case["path"]
    if token.token is not None:
        loc = R.token_location(json.loads(rp.configs[case["component"]]),
                               token.provider["name"] if token.provider else None)
        extra, path = R.place_token(token.token, loc, path)
        headers += extra
    r = C.request(env.ports[listener], path, case.get("method", "GET"), headers, cert=cert, ca=rp.pki.ca_cert,
                  host=case.get("host", case["component"]), timeout=10)
    return rid, r


def _check_envoy(env, rid, r, want: R.CliDecision, peer: str | None, config: dict, where: str):
    """Envoy's answer and audit event against the CLI's decision.

    Status, reason (header and audit) and deciding rule must be equal. Roles:
    `explain` evaluates every role and prints all the caller holds; the filter
    evaluates only the roles named by the rules covering the request and audits
    the held ones among them, except when it forwards roles upstream
    (`forward.roles_header`, allowed requests), where it computes them all (README
    "Audit"). So: equal when forwarded, else a subset that, when a role granted
    the request, includes one of the deciding rule's roles."""
    got_reason = r.header("x-oam-authz-reason")
    ev = env.wait_audit(rid, timeout=10)
    got = {"status": r.status, "x-oam-authz-reason": got_reason,
           "audit": (ev["decision"], ev["status"], ev["reason"], ev["rule"], ev["peer"])}
    exp = {"status": want.status, "x-oam-authz-reason": None if want.allowed else want.reason,
           "audit": ("allow" if want.allowed else "deny", want.status, want.reason, want.rule, peer)}
    assert got == exp, f"{where}: Envoy and the CLI disagree\n envoy: {got}\n cli:   {exp}\n response: {r!r}"

    audited, held = sorted(ev["roles"]), sorted(want.roles)
    roles_header = (config.get("forward") or {}).get("roles_header")
    if want.allowed and roles_header:
        assert audited == held, f"{where}: audited roles {audited} != roles held per explain {held}"
        if r.body:  # not HEAD
            # absent when no role is held (a public rule): never a client-sent value
            assert r.upstream_headers(roles_header) == ([",".join(ev["roles"])] if ev["roles"] else []), r
    else:
        assert set(audited) <= set(held), f"{where}: audited roles {audited} not all held per explain {held}"
    if want.reason == "role_granted":
        rule = next(x for x in config["rules"] if x["name"] == want.rule)
        assert set(rule.get("roles", [])) & set(audited), f"{where}: no role of rule {want.rule} in {audited}"
    if want.allowed and r.body:  # not HEAD: the echo upstream answered
        assert r.upstream["path"].split("?")[0] == ev["path"], r


def test_cli_compiles_and_passes_every_case(replays):
    for name in APPS:
        rp = replays(name)
        assert set(rp.configs) == set(rp.app.protected), rp.configs.keys()
        assert sorted(rp.verdicts) == list(range(len(rp.cases))), rp.test_output
        assert f"{len(rp.cases)} passed, 0 failed" in rp.test_output, rp.test_output


@pytest.mark.parametrize("app,index", CASES, ids=[f"{a}[{i}]" for a, i in CASES])
def test_replay_case(replays, app, index):
    rp = replays(app)
    case = rp.cases[index]
    comp = case["component"]
    case_now = case.get("now", rp.doc.get("now"))

    # 1. the CLI's `test` verdict
    assert rp.verdicts.get(index) == "PASS", f"oam-authz test: cases[{index}] {case['name']}\n{rp.test_output}"

    # 2. the CLI's full decision for the case as written
    real_now = int(time.time())
    explain_args = dict(method=case.get("method", "GET"), path=case["path"], host=case.get("host"),
                        principal=case.get("principal"), provider=case.get("provider"),
                        now=case_now if case_now is not None else real_now)
    if case.get("claims") is not None:
        explain_args["claims"] = case["claims"]
    if case.get("token") is not None:
        explain_args["token_file"] = _tmpfile(rp.dir, case["token"].strip())
    want, trace = rp.cli.explain(rp.app, comp, **explain_args)
    e = case["expect"]
    assert want.allowed == (e["decision"] == "allow"), trace
    for k, got in (("status", want.status), ("reason", want.reason), ("rule", want.rule)):
        if k in e:
            assert got == e[k], f"explain {k}: {got!r} != expect {e[k]!r}\n{trace}"

    # 3. the same request through Envoy, with a real certificate and token
    token = R.token_for_case(rp.app, case, case_now, real_now)
    if token.token is not None:
        SENT_TOKENS.append(token.token)
        rp.sent_tokens.append(token.token)
    if token.how not in ("none", "as-is"):
        # 4. what is sent means to the CLI what the case meant
        args = {k: v for k, v in explain_args.items() if k not in ("claims", "token_file", "now")}
        same, trace2 = rp.cli.explain(rp.app, comp, token_file=_tmpfile(rp.dir, token.token),
                                      now=int(time.time()), **args)
        assert same == want, f"the token sent ({token.how}) changes the CLI's decision\n{trace2}\nvs\n{trace}"

    principal = case.get("principal")
    peer = rp.app.spiffe(principal) if principal else None
    cert = rp.pki.client(peer) if peer else None
    env = rp.envoy(comp)
    config = json.loads(rp.configs[comp])
    raw = "mtls-raw" if cert else "optional-raw"
    rid, r = _send(rp, env, case, raw, token, cert)
    _check_envoy(env, rid, r, want, peer, config, f"{raw} listener (no path normalization), token {token.how}")

    normalized = "mtls" if cert else "optional"
    rid, r = _send(rp, env, case, normalized, token, cert)
    if want.reason == "path_not_canonical":
        # Envoy's own normalization answers first (a redirect to the canonical
        # path, or a 400): the request never reaches the filter or the upstream.
        assert r.status in (307, 400), r
        assert not [q for q in rp.echo.requests if ("x-request-id", rid) in map(tuple, q["headers"])], r
    else:
        _check_envoy(env, rid, r, want, peer, config, f"{normalized} listener (Envoy path normalization on)")


@pytest.mark.parametrize("app", APPS)
def test_replay_logs_are_clean(replays, app):
    """After the replay: no token text in any component Envoy's log, no VM trap."""
    rp = replays(app)
    for comp, env in rp.envoys.items():
        text = env.log_text()
        for tok in rp.sent_tokens:
            for needle in [tok] + [p for p in tok.split(".")[1:] if len(p) >= 16]:
                assert needle not in text, f"{app}/{comp}: token text in the Envoy log"
        low = text.lower()
        for bad in ("panicked", "wasm trap", "unreachable", "failed to load"):
            assert bad not in low, f"{app}/{comp}: {bad!r} in the Envoy log"
