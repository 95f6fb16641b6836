"""Session fixtures: PKI, token issuers, the echo upstream and the main Envoy
(started once for the session; each other Envoy is module-scoped)."""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from harness import client as C  # noqa: E402
from harness import envoy as E  # noqa: E402
from harness import pki as P  # noqa: E402
from harness import policy as POL  # noqa: E402
from harness.checks import Caller, start_envoy  # noqa: E402



@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="oam-authz-e2e-")
    yield d
    if os.environ.get("OAM_E2E_KEEP"):
        print(f"\nkept e2e workdir: {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pki(workdir):
    return P.TestPKI(os.path.join(workdir, "pki"))


@pytest.fixture(scope="session")
def issuers():
    return POL.make_issuers()


@pytest.fixture(scope="session")
def echo():
    srv = E.EchoServer()
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def wasm():
    if not os.path.exists(E.WASM):
        pytest.fail(f"{E.WASM} not built: run `make build` (or `make e2e`)", pytrace=False)
    return E.WASM


@pytest.fixture(scope="session")
def wasm_full():
    """The full module build (RSA-PSS, and RSA/ECDSA without the host)."""
    if not os.path.exists(E.WASM_FULL):
        pytest.fail(f"{E.WASM_FULL} not built: run `make build`", pytrace=False)
    return E.WASM_FULL


@pytest.fixture(scope="session")
def policy(issuers):
    return POL.build_policy(issuers)


@pytest.fixture(scope="session")
def main_envoy(workdir, pki, echo, wasm, policy):
    env = start_envoy(workdir, "main", pki, echo, POL.to_json(policy))
    yield env
    env.stop()


@pytest.fixture(scope="session")
def call(main_envoy, pki):
    return Caller(main_envoy, pki)
