#!/usr/bin/env python3
"""Mint an RS256 JWT with the TEST-ONLY example key, for oam-authz examples.

    python3 examples/keys/mint.py '{"iss": "...", "aud": "...", "iat": 1767225600, "exp": 1767227400}'

Needs the `cryptography` package. Never use this key outside tests.
"""
import base64, json, pathlib, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

KEY = pathlib.Path(__file__).with_name("example-idp.test-only.pem")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(claims: dict, kid: str = "example-2026") -> str:
    key = serialization.load_pem_private_key(KEY.read_bytes(), None)
    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    signing_input = b64(json.dumps(header, separators=(",", ":")).encode()) + "." + b64(
        json.dumps(claims, separators=(",", ":")).encode()
    )
    sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64(sig)


if __name__ == "__main__":
    print(mint(json.loads(sys.argv[1])))
