"""The shipped examples are real: examples/envoy/envoy.yaml and the ECDS
variant run in Envoy with the paths examples/envoy/local.py substitutes (as
the README's steps do; ports made kernel-chosen, loopback only), a token
minted by examples/keys/mint.py is accepted, envoy-remote-jwks.yaml passes
`envoy --mode validate`, and `make demo`'s scripts run to completion (the
shop demo, and `make demo APP=… CASES=…` on an example application)."""
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import yaml

from harness import client as C
from harness import envoy as E

EXAMPLES = os.path.join(E.REPO, "examples", "envoy")
sys.path.insert(0, EXAMPLES)
sys.path.insert(0, os.path.join(E.REPO, "examples", "keys"))

import local  # noqa: E402  (examples/envoy/local.py)
from mint import mint  # noqa: E402  (examples/keys/mint.py)


def localize(text, pki, echo, ecds_dir=None):
    paths = {"wasm": E.WASM, "cert": pki.server.cert, "key": pki.server.key, "ca": pki.ca_cert}
    if ecds_dir:
        paths["ecds"] = ecds_dir
    text = local.localize(text, paths, {"admin": 0, "inbound": 0, "app": echo.port})
    live = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    assert not [ln for ln in live if "/etc/" in ln], "unsubstituted path in example"
    return text


def get(env, pki, path, who="frontend"):
    return C.request(env.ports["inbound"], path, cert=pki.clients[who], ca=pki.ca_cert, timeout=5)


def check_shop_policy(env, pki):
    assert get(env, pki, "/healthz", "backend").status == 200
    r = get(env, pki, "/api/items")
    assert r.status == 200 and r.upstream_headers("x-oam-principal") == [pki.spiffe["frontend"]], r
    assert get(env, pki, "/api/items", "backend").reason_code == "role_required"
    r = get(env, pki, "/admin/users")
    assert r.status == 401 and r.reason_code == "token_missing", r
    r = get(env, pki, "/public/../admin/users")  # normalized by Envoy, then judged
    assert r.status == 401 and r.reason_code == "token_missing", r
    # A token minted with the test-only example key, as the README shows.
    now = int(time.time())
    admin = mint({"iss": "https://shop.okta.example/oauth2/default", "aud": "api://shop", "sub": "alice",
                  "groups": ["admins"], "iat": now, "exp": now + 600})
    r = C.request(env.ports["inbound"], "/admin/users", cert=pki.clients["frontend"], ca=pki.ca_cert, timeout=5,
                  bearer=admin)
    assert r.status == 200, r


def test_example_envoy_yaml(workdir, pki, echo, wasm):
    text = localize(open(os.path.join(EXAMPLES, "envoy.yaml")).read(), pki, echo)
    env = E.Envoy(os.path.join(workdir, "example"), text, name="example")
    with env:
        check_shop_policy(env, pki)


def test_example_ecds_with_hot_reload(workdir, pki, echo, wasm):
    ecds_dir = os.path.join(workdir, "example-ecds", "ecds")
    os.makedirs(ecds_dir, exist_ok=True)
    filt = localize(open(os.path.join(EXAMPLES, "ecds", "oam-authz.yaml")).read(), pki, echo)
    target = os.path.join(ecds_dir, "oam-authz.yaml")
    with open(target, "w") as f:
        f.write(filt)
    text = localize(open(os.path.join(EXAMPLES, "envoy-ecds.yaml")).read(), pki, echo, ecds_dir)
    env = E.Envoy(os.path.join(workdir, "example-ecds"), text, name="example-ecds")
    with env:
        check_shop_policy(env, pki)
        # hot reload: /healthz is no longer public
        changed = filt.replace('"public": true', '"public": false, "roles": ["storefront"]')
        assert changed != filt
        with open(target + ".tmp", "w") as f:
            f.write(changed)
        os.rename(target + ".tmp", target)
        deadline = time.monotonic() + 15
        while get(env, pki, "/healthz", "backend").status == 200:
            assert time.monotonic() < deadline, "ECDS reload never applied\n" + env.log_tail()
            time.sleep(0.2)
        assert get(env, pki, "/healthz", "backend").reason_code == "role_required"
        assert get(env, pki, "/healthz", "frontend").status == 200


def test_example_remote_jwks_yaml_validates(workdir, pki, wasm):
    """envoy-remote-jwks.yaml fetches its keys from a real IdP (DNS and the
    Internet), so it is not started here: `envoy --mode validate` checks the
    whole file instead, the policy included (validation loads the module,
    which refuses a bad policy). Remote JWKS at run time: test_jwks_remote.py."""
    text = open(os.path.join(EXAMPLES, "envoy-remote-jwks.yaml")).read()
    text = text.replace("/etc/ssl/certs/ca-certificates.crt", pki.ca_cert)
    text = localize(text, pki, SimpleNamespace(port=8080))
    path = os.path.join(workdir, "envoy-remote-jwks.yaml")
    with open(path, "w") as f:
        f.write(text)
    out = subprocess.run([E.envoy_binary(), "--mode", "validate", "-c", path, "--log-level", "info"],
                         capture_output=True, text=True, timeout=120)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert "policy shop-api@remote-jwks-example loaded: 1 providers" in log, log[-3000:]


def test_demo_runs(wasm):
    out = subprocess.run([sys.executable, os.path.join(E.REPO, "test-harness", "demo.py")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for needle in ("=> HTTP 200", "x-oam-authz-reason: token_missing", "x-oam-authz-reason: token_expired",
                   "x-oam-authz-reason: token_bad_signature", "x-oam-authz-reason: role_required",
                   'oam-authz-audit {"ts"', "curl -sS"):
        assert needle in out.stdout, needle


def test_local_setup_writes_runnable_configs(workdir, wasm):
    """examples/envoy/local.py (the README's first step): every /etc path of
    the examples is replaced, the files it names exist, and the token verifies."""
    out = os.path.join(workdir, "envoy-example")
    made = local.setup(out)
    for name in ("envoy.yaml", "envoy-ecds.yaml", os.path.join("ecds", "oam-authz.yaml")):
        text = open(os.path.join(out, name)).read()
        live = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
        assert not [ln for ln in live if "/etc/" in ln], name
        for ln in live:
            if "filename:" in ln:
                path = ln.split("filename:", 1)[1].strip(" }")
                assert os.path.exists(path), (name, path)
    assert made["token"].count(".") == 2


@pytest.mark.parametrize("app,workload", [
    ("artifact-store", "spiffe://cluster.local/ns/ci/sa/tekton-release"),  # recorded tokens, times shifted
    ("quickstart", "spiffe://cluster.local/ns/tekton-pipelines/sa/builder"),  # the README's app, remoteJwks
])
def test_demo_app_runs_your_application(wasm, app, workload):
    """`make demo APP=examples/<app>/app.yaml CASES=…/cases.yaml`: every
    case through a real Envoy with certificates and signed tokens."""
    d = os.path.join(E.REPO, "examples", app)
    n = len(yaml.safe_load(open(os.path.join(d, "cases.yaml")))["cases"])
    assert n > 0
    out = subprocess.run([sys.executable, os.path.join(E.REPO, "test-harness", "demo_app.py"),
                          os.path.join(d, "app.yaml"), os.path.join(d, "cases.yaml")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"{n} of {n} cases answered by Envoy as expected" in out.stdout, out.stdout[-2000:]
    for needle in ("curl -sS --cacert", '-H "authorization: Bearer $TOKEN"', "=> HTTP 200", "=> HTTP 401",
                   "x-oam-authz-reason: role_required", f"# as workload {workload}"):
        assert needle in out.stdout, needle
    assert "DIFFERENT" not in out.stdout


def test_demo_app_reports_a_case_envoy_answers_differently(wasm, workdir):
    """A wrong expectation is shown as DIFFERENT and fails the run."""
    cases = os.path.join(workdir, "wrong-cases.yaml")
    with open(cases, "w") as f:
        f.write("cases:\n  - {name: wrong, component: api, method: POST, path: /deployments/staging, "
                "expect: {decision: allow}}\n")
    out = subprocess.run([sys.executable, os.path.join(E.REPO, "test-harness", "demo_app.py"),
                          os.path.join(E.REPO, "examples", "deploy-api", "app.yaml"), cases],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "=> HTTP 401  x-oam-authz-reason: token_missing" in out.stdout, out.stdout
    assert "DIFFERENT" in out.stdout and "0 of 1 cases answered by Envoy as expected" in out.stdout
