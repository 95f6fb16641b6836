"""Envoy's native `verify_signature` (BoringSSL) and the pure-wasm verifier of
the full module build must agree on every vector: the same policy runs once
with `signature_backend: host` and once with `wasm`, and each token must get
the same status and reason from both (and the expected one). The default
module, which has no software RSA/ECDSA, refuses what it cannot verify."""
import json
import os
import re

import pytest

from harness import tokens as T
from harness.checks import Caller, start_envoy

ALGS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA")
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.fixture(scope="module")
def issuer():
    return T.Issuer("https://sig.example.com", "api://sig", algs=ALGS, kid_prefix="sig")


def policy(iss, backend):
    return json.dumps({
        "schema_version": 1, "policy_version": f"sig-{backend}", "trust_domain": "cluster.local",
        "signature_backend": backend,
        "providers": [{"name": "sig", "issuer": iss.issuer, "audiences": [iss.audience],
                       "algorithms": list(ALGS), "jwks": iss.jwks()}],
        "roles": [{"name": "user", "jwt": {"provider": "sig"}}],
        "rules": [{"name": "any", "roles": ["user"]}],
    })


@pytest.fixture(scope="module")
def callers(workdir, pki, echo, wasm_full, issuer):
    envs = {b: start_envoy(workdir, f"sig-{b}", pki, echo, policy(issuer, b), wasm=wasm_full)
            for b in ("host", "wasm")}
    yield {b: Caller(e, pki) for b, e in envs.items()}
    for e in envs.values():
        e.stop()


def replace_sig(token, sig: bytes):
    h, p, _ = token.split(".")
    return f"{h}.{p}.{T.b64url(sig)}"


def vectors(iss):
    other = T.Issuer(iss.issuer, iss.audience, algs=ALGS, kid_prefix="sig")  # same kids, other keys
    out = []
    for alg in ALGS:
        good = iss.token(alg)
        out.append((f"{alg}-valid", good, 200, None))
        out.append((f"{alg}-tampered", iss.tampered(alg), 401, "token_bad_signature"))
        out.append((f"{alg}-other-key", other.token(alg), 401, "token_bad_signature"))
        h, p, s = good.split(".")
        sig = bytearray(T.b64url_decode(s))
        sig[len(sig) // 2] ^= 1
        out.append((f"{alg}-bitflip", replace_sig(good, bytes(sig)), 401, "token_bad_signature"))
    es = iss.token("ES256")
    raw = T.b64url_decode(es.split(".")[2])
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    out.append(("ES256-psychic-zero", replace_sig(es, bytes(64)), 401, "token_bad_signature"))
    out.append(("ES256-r-s-equal-n", replace_sig(es, P256_N.to_bytes(32, "big") * 2), 401, "token_bad_signature"))
    # The malleable twin (r, n - s) is mathematically valid; both verifiers
    # must treat it the same way (the expected result is pinned below).
    out.append(("ES256-high-s", replace_sig(es, r.to_bytes(32, "big") + (P256_N - s).to_bytes(32, "big")), None, None))
    return out


def test_each_backend_says_which_it_uses(callers):
    # Envoy writes its log file asynchronously: wait for the line.
    callers["host"].env.wait_for_log(re.escape("signatures RS*/ES* native (Envoy verify_signature)"))
    callers["wasm"].env.wait_for_log(re.escape("signatures all wasm"))


def test_backends_agree_on_every_vector(callers, issuer):
    mismatches, unexpected = [], []
    for name, token, want_status, want_reason in vectors(issuer):
        got = {}
        for backend, call in callers.items():
            r = call("/x", token=token)
            got[backend] = (r.status, r.header("x-oam-authz-reason"))
        if got["host"] != got["wasm"]:
            mismatches.append(f"{name}: host={got['host']} wasm={got['wasm']}")
        if want_status is not None and got["wasm"] != (want_status, want_reason):
            unexpected.append(f"{name}: got {got['wasm']}, want {(want_status, want_reason)}")
    assert not mismatches, "native and wasm verifiers disagree:\n" + "\n".join(mismatches)
    assert not unexpected, "\n".join(unexpected)


@pytest.mark.parametrize("backend,needle", [
    ("auto", r"providers\[0\]\.algorithms: PS256 needs the full module build"),
    ("wasm", r"signature_backend: 'wasm' needs the full module build"),
])
def test_default_module_refuses_what_it_cannot_verify(workdir, pki, echo, wasm, issuer, backend, needle):
    """The default module has no software RSA/ECDSA: a policy that needs it
    (RSA-PSS, or `signature_backend: wasm`) is refused at load, naming the
    field and the fix, and Envoy does not serve with it."""
    from harness import envoy as E
    from harness.checks import standard_listeners
    boot = E.render_bootstrap(standard_listeners([E.wasm_filter(policy(issuer, backend), wasm)]), pki, echo.port)
    env = E.Envoy(os.path.join(workdir, f"sig-default-{backend}"), boot, name=f"sig-default-{backend}")
    try:
        code = env.wait_exit(timeout=30)
        assert code not in (None, 0), env.log_tail()
        assert re.search(r"\[critical\]\[wasm\][^\n]*configuration rejected: " + needle, env.log_text()), env.log_tail()
    finally:
        env.stop()
