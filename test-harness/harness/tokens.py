"""JWTs minted by hand with `cryptography`, so tests can also craft malicious
ones (alg none, HS256 keyed with the RSA public key, tampered payloads,
duplicate claims, oversized tokens...).

``Issuer`` holds fresh keys (made per test session) for RS256, PS256, ES256
and EdDSA, exports them as a JWK set, and signs arbitrary claim sets.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _int_b64(n: int, length: int | None = None) -> str:
    length = length or (n.bit_length() + 7) // 8
    return b64url(n.to_bytes(length, "big"))


def compact(header: dict | str, payload: dict | str, signer) -> str:
    """Builds ``b64(header).b64(payload).b64(sig)``. ``header``/``payload`` may be
    raw JSON text (to craft duplicate keys); ``signer(signing_input) -> bytes``."""
    h = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    p = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    signing_input = f"{b64url(h.encode())}.{b64url(p.encode())}"
    return f"{signing_input}.{b64url(signer(signing_input.encode('ascii')))}"


@dataclass
class Key:
    kid: str
    alg: str
    private: object
    jwk: dict = field(default_factory=dict)

    def sign(self, data: bytes) -> bytes:
        k = self.private
        if self.alg in RSA_HASH:
            return k.sign(data, padding.PKCS1v15(), RSA_HASH[self.alg]())
        if self.alg == "PS256":
            return k.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
        if self.alg == "ES256":
            r, s = decode_dss_signature(k.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS: raw r||s, not DER
        if self.alg == "ES384":
            r, s = decode_dss_signature(k.sign(data, ec.ECDSA(hashes.SHA384())))
            return r.to_bytes(48, "big") + s.to_bytes(48, "big")
        if self.alg == "EdDSA":
            return k.sign(data)
        raise ValueError(self.alg)

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)

    def public_der(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)


RSA_HASH = {"RS256": hashes.SHA256, "RS384": hashes.SHA384, "RS512": hashes.SHA512}


def make_key(alg: str, kid: str) -> Key:
    if alg in ("RS256", "RS384", "RS512", "PS256"):
        priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        nums = priv.public_key().public_numbers()
        jwk = {"kty": "RSA", "kid": kid, "use": "sig", "alg": alg, "n": _int_b64(nums.n), "e": _int_b64(nums.e)}
    elif alg == "ES256":
        priv = ec.generate_private_key(ec.SECP256R1())
        nums = priv.public_key().public_numbers()
        jwk = {"kty": "EC", "kid": kid, "use": "sig", "alg": alg, "crv": "P-256",
               "x": _int_b64(nums.x, 32), "y": _int_b64(nums.y, 32)}
    elif alg == "ES384":
        priv = ec.generate_private_key(ec.SECP384R1())
        nums = priv.public_key().public_numbers()
        jwk = {"kty": "EC", "kid": kid, "use": "sig", "alg": alg, "crv": "P-384",
               "x": _int_b64(nums.x, 48), "y": _int_b64(nums.y, 48)}
    elif alg == "EdDSA":
        priv = ed25519.Ed25519PrivateKey.generate()
        raw = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "kid": kid, "use": "sig", "alg": alg, "crv": "Ed25519", "x": b64url(raw)}
    else:
        raise ValueError(alg)
    return Key(kid, alg, priv, jwk)


class Issuer:
    """An identity provider: issuer URL, audience and a set of keys by alg."""

    def __init__(self, issuer: str, audience: str, algs=("RS256",), kid_prefix: str = "k"):
        self.issuer = issuer
        self.audience = audience
        self.keys = {alg: make_key(alg, f"{kid_prefix}-{alg.lower()}") for alg in algs}

    def jwks(self) -> dict:
        return {"keys": [k.jwk for k in self.keys.values()]}

    def claims(self, lifetime: int = 300, **extra) -> dict:
        now = int(time.time())
        c = {"iss": self.issuer, "aud": self.audience, "sub": "user-1",
             "iat": now, "nbf": now, "exp": now + lifetime}
        c.update(extra)
        return {k: v for k, v in c.items() if v is not None}

    def token(self, alg: str = "RS256", claims: dict | None = None, header_extra: dict | None = None,
              kid: str | None = None, **claim_kw) -> str:
        key = self.keys[alg]
        header = {"alg": alg, "typ": "JWT", "kid": kid or key.kid}
        header.update(header_extra or {})
        return compact(header, claims if claims is not None else self.claims(**claim_kw), key.sign)

    # ---- crafted / malicious tokens ----------------------------------------------------

    def alg_none(self, **claim_kw) -> str:
        """``alg: none`` with an empty signature segment."""
        h = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        p = b64url(json.dumps(self.claims(**claim_kw)).encode())
        return f"{h}.{p}."

    def alg_none_signed(self, **claim_kw) -> str:
        """``alg: none`` but with a non-empty (junk) signature segment."""
        return self.alg_none(**claim_kw) + b64url(b"\x00" * 32)

    def alg_confusion(self, secret: str = "pem", **claim_kw) -> str:
        """HS256 signed with the RSA *public* key (PEM text or DER) as the HMAC secret,
        with the RSA key's kid: the classic RS256->HS256 confusion."""
        key = self.keys["RS256"]
        secret_bytes = key.public_pem() if secret == "pem" else key.public_der()
        return compact({"alg": "HS256", "typ": "JWT", "kid": key.kid}, self.claims(**claim_kw),
                       lambda data: hmac.new(secret_bytes, data, hashlib.sha256).digest())

    def tampered(self, alg: str = "RS256", **claim_kw) -> str:
        """A valid token whose payload is replaced (extra privileges) while the
        original signature is kept."""
        good = self.token(alg, **claim_kw)
        h, _, s = good.split(".")
        evil = self.claims(**claim_kw)
        evil["groups"] = ["admins"]
        evil["sub"] = "attacker"
        return f"{h}.{b64url(json.dumps(evil, separators=(',', ':')).encode())}.{s}"

    def unknown_kid(self, alg: str = "RS256", **claim_kw) -> str:
        return self.token(alg, kid="no-such-kid", **claim_kw)

    def duplicate_claims(self, alg: str = "RS256", **claim_kw) -> str:
        """Hand-built claims JSON with ``exp`` twice (first in the past, then future)
        and ``sub`` twice; validly signed."""
        c = self.claims(**claim_kw)
        body = json.dumps(c, separators=(",", ":"))
        dup = body[:-1] + f',"exp":{int(time.time()) - 3600},"sub":"admin"' + "}"
        key = self.keys[alg]
        return compact({"alg": alg, "typ": "JWT", "kid": key.kid}, dup, key.sign)

    def huge(self, size: int = 64 * 1024, alg: str = "RS256", **claim_kw) -> str:
        """A validly signed token of about ``size`` bytes (padding claim)."""
        c = self.claims(**claim_kw)
        c["pad"] = ""
        base = len(self.token(alg, claims=c))
        c["pad"] = "A" * max(0, int((size - base) * 3 / 4))
        return self.token(alg, claims=c)
