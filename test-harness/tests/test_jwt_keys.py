"""Key selection and header size through a real Envoy: a token without
`kid` is tried against each key of its algorithm (at most four, as
docs/security.md "Tokens without kid" says), and a header carrying an `x5c`
certificate chain fits the 8 KiB header cap."""
from __future__ import annotations

import base64
import os

import pytest

from harness import policy as POL
from harness import tokens as T
from harness.checks import Caller, assert_allowed, assert_denied, start_envoy

ISS = "https://rotating.example.com"
AUD = "api://rot"


@pytest.fixture(scope="module")
def rotation(workdir, pki, echo, wasm):
    """An IdP mid-rotation: two Ed25519 keys and two RSA keys, no `alg` on the JWKs."""
    keys = [T.make_key("EdDSA", "ed-old"), T.make_key("EdDSA", "ed-new"),
            T.make_key("RS256", "rs-old"), T.make_key("RS256", "rs-new")]
    jwks = {"keys": [{k: v for k, v in key.jwk.items() if k != "alg"} for key in keys]}
    policy = {
        "schema_version": 1, "policy_version": "e2e-keys", "trust_domain": "cluster.local",
        "providers": [{"name": "rot", "issuer": ISS, "audiences": [AUD], "algorithms": ["EdDSA", "RS256"],
                       "jwks": jwks}],
        "roles": [{"name": "any-token", "jwt": {"provider": "rot"}}],
        "rules": [{"name": "read", "roles": ["any-token"], "paths": ["/r"]}],
    }
    env = start_envoy(workdir, "jwt-keys", pki, echo, POL.to_json(policy))
    yield Caller(env, pki), {k.kid: k for k in keys}
    env.stop()


def _claims():
    return T.Issuer(ISS, AUD).claims()


def _kidless(key: T.Key) -> str:
    return T.compact({"alg": key.alg, "typ": "JWT"}, _claims(), key.sign)


@pytest.mark.parametrize("kid", ["ed-old", "ed-new", "rs-old", "rs-new"])
def test_token_without_kid_is_verified_by_any_key_of_its_algorithm(rotation, kid):
    call, keys = rotation
    assert_allowed(call("/r", token=_kidless(keys[kid])), "/r")


@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
def test_token_without_kid_no_key_verifies_is_refused(rotation, alg):
    call, _ = rotation
    assert_denied(call("/r", token=_kidless(T.make_key(alg, "stranger"))), 401, "token_bad_signature")


def test_kid_lookup_stays_exact(rotation):
    """With a kid only that key is tried: the new key's token under the old kid fails."""
    call, keys = rotation
    tok = T.compact({"alg": "EdDSA", "typ": "JWT", "kid": "ed-old"}, _claims(), keys["ed-new"].sign)
    assert_denied(call("/r", token=tok), 401, "token_bad_signature")


def _x5c(n_certs: int, der_len: int = 1400) -> list:
    return [base64.b64encode(os.urandom(der_len)).decode() for _ in range(n_certs)]


def test_token_with_an_x5c_chain_in_its_header_is_accepted(call, issuers):
    """Two certificates of 1.4 KB: a header of about 5 KB (the cap used to be 1 KiB)."""
    okta = issuers["okta"]
    tok = okta.token("RS256", header_extra={"x5c": _x5c(2)}, dept="eng")
    assert len(tok.split(".")[0]) > 4096
    assert_allowed(call("/claim/eq", token=tok))


def test_header_over_8_kib_is_too_large(call, issuers):
    okta = issuers["okta"]
    tok = okta.token("RS256", header_extra={"x5c": _x5c(5)}, dept="eng")
    assert len(tok.split(".")[0]) > 8192
    assert_denied(call("/claim/eq", token=tok), 401, "token_too_large")
