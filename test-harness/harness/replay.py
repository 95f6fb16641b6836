"""Replay an example application's policy test cases (``oam-authz test``
cases.yaml) through a real Envoy running the plugin configuration that
``oam-authz compile --format envoy`` emits, and ask the CLI for its own
decision of every case, so a test can prove the two agree.

* ``App``: what the compiler reads from app.yaml to resolve identities
  (namespace, service accounts, trust domain, providers).
* ``SpiffePKI``: one mesh CA, the Envoy server certificate and a client
  certificate minted on demand for any SPIFFE ID a case names.
* ``Cli``: ``compile --format envoy --out-dir``, ``test`` (per-case PASS/FAIL
  lines) and ``explain`` (the full decision: status, reason, rule, roles).
* ``token_for_case``: the token sent for a case: claims signed with the
  test-only example IdP key (examples/keys/), or the case's own token, re-signed
  with its times shifted when the case's ``now`` and the real clock would judge
  its lifetime differently.
* ``listeners``: mTLS-required and optional-certificate listeners, each with
  Envoy's path normalization on (as deployed) and off (so the filter sees the
  exact path the CLI judged).
"""
from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import subprocess
from dataclasses import dataclass

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from . import envoy as E
from .pki import CertFiles, _CA, _write_cert, _write_key

CLI = os.environ.get("OAM_AUTHZ_CLI", os.path.join(E.REPO, "target", "release", "oam-authz"))
EXAMPLES = os.path.join(E.REPO, "examples")
EXAMPLE_KEY = os.path.join(EXAMPLES, "keys", "example-idp.test-only.pem")
EXAMPLE_KID = "example-2026"
DEFAULT_SKEW = 30
DEFAULT_MAX_LIFETIME = 86400


def load_yaml(path: str):
    with open(path) as f:
        return yaml.safe_load(f)


# --------------------------------------------------------------------------------------
# The application, as the compiler reads it
# --------------------------------------------------------------------------------------

@dataclass
class App:
    path: str
    name: str
    namespace: str
    trust_domain: str
    service_accounts: dict  # component -> service account
    protected: list         # components with a mesh-access trait, in order
    providers: dict         # provider name -> mesh-identity properties of it

    @classmethod
    def load(cls, path: str) -> "App":
        doc = load_yaml(path)
        meta = doc.get("metadata") or {}
        spec = doc.get("spec") or {}
        sas, protected = {}, []
        for comp in spec.get("components") or []:
            sa = None
            traits = comp.get("traits") or []
            for t in traits:
                if t.get("type") == "service-account":
                    sa = (t.get("properties") or {}).get("name")
            if sa is None:
                sa = (comp.get("properties") or {}).get("serviceAccountName")
            sas[comp["name"]] = sa or "default"
            if any(t.get("type") == "mesh-access" for t in traits):
                protected.append(comp["name"])
        trust_domain, providers = "cluster.local", {}
        for pol in spec.get("policies") or []:
            if pol.get("type") == "mesh-identity":
                props = pol.get("properties") or {}
                trust_domain = props.get("trustDomain", trust_domain)
                for p in props.get("providers") or []:
                    providers[p["name"]] = p
        return cls(path, meta["name"], meta.get("namespace") or "default", trust_domain, sas, protected,
                   providers)

    def spiffe(self, principal: str) -> str:
        """A case's principal as a SPIFFE ID: a component name is resolved the
        way the compiler does (its namespace and service account),
        ``ns/<ns>/sa/<sa>`` in the application's trust domain."""
        if principal.startswith("spiffe://"):
            return principal
        parts = principal.split("/")
        if len(parts) == 4 and parts[0] == "ns" and parts[2] == "sa" and "*" not in principal:
            return f"spiffe://{self.trust_domain}/{principal}"
        if "/" in principal or "*" in principal or principal not in self.service_accounts:
            raise ValueError(f"principal {principal!r} is neither a SPIFFE ID nor a component of {self.name}")
        return f"spiffe://{self.trust_domain}/ns/{self.namespace}/sa/{self.service_accounts[principal]}"

    def provider_for(self, claims: dict, name: str | None) -> dict:
        """The provider the CLI takes claims as coming from: the case's
        ``provider``, else the one whose issuer is ``iss``, else the only one."""
        if name:
            return self.providers[name]
        for p in self.providers.values():
            if p.get("issuer") == claims.get("iss"):
                return p
        if len(self.providers) == 1:
            return next(iter(self.providers.values()))
        raise ValueError(f"no provider of {self.name} for claims {claims}")


# --------------------------------------------------------------------------------------
# PKI: client certificates for arbitrary SPIFFE IDs
# --------------------------------------------------------------------------------------

class SpiffePKI:
    """Duck-types harness.pki.TestPKI for ``envoy.render_bootstrap`` (``server``,
    ``ca_cert``) and mints a client certificate per SPIFFE ID on first use."""

    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        self.dir = directory
        self._ca = _CA("oam-authz replay mesh CA")
        self.ca_cert = os.path.join(directory, "ca.pem")
        _write_cert(self.ca_cert, self._ca.cert)
        key, cert = self._ca.issue("localhost", [x509.DNSName("localhost"),
                                                 x509.IPAddress(ipaddress.ip_address("127.0.0.1"))], server=True)
        self.server = self._save("server", key, cert)
        self._clients: dict[str, CertFiles] = {}

    def client(self, spiffe_id: str) -> CertFiles:
        if spiffe_id not in self._clients:
            key, cert = self._ca.issue(spiffe_id.rsplit("/", 1)[-1],
                                       [x509.UniformResourceIdentifier(spiffe_id)], server=False)
            self._clients[spiffe_id] = self._save(f"client-{len(self._clients)}", key, cert)
        return self._clients[spiffe_id]

    def _save(self, stem: str, key, cert) -> CertFiles:
        c = os.path.join(self.dir, f"{stem}.pem")
        k = os.path.join(self.dir, f"{stem}-key.pem")
        _write_cert(c, cert)
        _write_key(k, key)
        return CertFiles(c, k)


# --------------------------------------------------------------------------------------
# The CLI
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CliDecision:
    allowed: bool
    status: int
    reason: str
    rule: str | None
    roles: tuple

    def as_tuple(self):
        return (self.status, self.reason, self.rule, tuple(sorted(self.roles)))


_DECISION = re.compile(r"^decision:\s+(ALLOW|DENY) (\d{3}) ([a-z_]+)(?:, rule '([^']*)')? \(roles held: (.*)\)\s*$",
                       re.M)
_CASE_LINE = re.compile(r"^(PASS|FAIL)  cases\[(\d+)\] ", re.M)


class Cli:
    def __init__(self, binary: str = CLI):
        if not os.path.exists(binary):
            raise FileNotFoundError(f"{binary} not built: run `make cli`")
        self.binary = binary

    def run(self, *args, check=True) -> subprocess.CompletedProcess:
        out = subprocess.run([self.binary, *args], capture_output=True, text=True, timeout=60)
        if check and out.returncode != 0:
            raise RuntimeError(f"oam-authz {' '.join(args)} exited {out.returncode}:\n{out.stdout}{out.stderr}")
        return out

    def compile_envoy(self, app: App, out_dir: str) -> dict:
        """``compile --format envoy --out-dir``: component -> plugin config text."""
        self.run("compile", app.path, "--format", "envoy", "--out-dir", out_dir)
        configs = {}
        for comp in app.protected:
            p = os.path.join(out_dir, f"oam-authz-{app.name}-{comp}.json")
            with open(p) as f:
                configs[comp] = f.read()
        extra = set(os.listdir(out_dir)) - {f"oam-authz-{app.name}-{c}.json" for c in app.protected}
        assert not extra, f"compile wrote files for no protected component: {extra}"
        return configs

    def test(self, app: App, cases_path: str) -> tuple[dict, str]:
        """``oam-authz test``: case index -> "PASS"/"FAIL", and the full output."""
        out = self.run("test", app.path, cases_path, check=False)
        if out.returncode not in (0, 1):
            raise RuntimeError(f"oam-authz test exited {out.returncode}:\n{out.stdout}{out.stderr}")
        return {int(m.group(2)): m.group(1) for m in _CASE_LINE.finditer(out.stdout)}, out.stdout

    def explain(self, app: App, component: str, *, method: str, path: str, host: str | None = None,
                principal: str | None = None, claims: dict | None = None, token_file: str | None = None,
                provider: str | None = None, now: int | None = None) -> tuple[CliDecision, str]:
        args = ["explain", app.path, "--component", component, "--method", method, "--path", path]
        if host is not None:
            args += ["--host", host]
        if principal is not None:
            args += ["--principal", principal]
        if claims is not None:
            args += ["--claims", json.dumps(claims)]
        if token_file is not None:
            args += ["--token", token_file]
        if provider is not None:
            args += ["--provider", provider]
        if now is not None:
            args += ["--now", str(now)]
        out = self.run(*args)
        m = _DECISION.search(out.stdout)
        if not m:
            raise RuntimeError(f"no decision line in explain output:\n{out.stdout}")
        roles = () if m.group(5) == "none" else tuple(r.strip() for r in m.group(5).split(","))
        return CliDecision(m.group(1) == "ALLOW", int(m.group(2)), m.group(3), m.group(4), roles), out.stdout


# --------------------------------------------------------------------------------------
# Tokens signed with the test-only example IdP key (as examples/keys/mint.py)
# --------------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _key():
    with open(EXAMPLE_KEY, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def sign(header: dict, claims: dict) -> str:
    signing_input = _b64(json.dumps(header, separators=(",", ":")).encode()) + "." + _b64(
        json.dumps(claims, separators=(",", ":")).encode())
    sig = _key().sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64(sig)


def signed_by_example_key(token: str) -> bool:
    head, payload, sig = token.split(".")
    try:
        _key().public_key().verify(_unb64(sig), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return True
    except InvalidSignature:
        return False


def decode(token: str) -> tuple[dict, dict]:
    head, payload, _ = token.split(".")
    return json.loads(_unb64(head)), json.loads(_unb64(payload))


def _time_view(claims: dict, now: int, skew: int) -> tuple:
    """How a verifier at ``now`` sees the token's times (with the clock skew)."""
    view = []
    for k, future_is_bad in (("nbf", True), ("iat", True), ("exp", False)):
        v = claims.get(k)
        if not isinstance(v, (int, float)):
            view.append(None)
        elif future_is_bad:
            view.append(v - skew <= now)
        else:
            view.append(v + skew >= now)
    return tuple(view)


@dataclass
class CaseToken:
    token: str | None
    how: str          # "none", "minted", "as-is", "re-signed (times shifted by N s)"
    provider: dict | None = None


def token_for_case(app: App, case: dict, case_now: int | None, real_now: int) -> CaseToken:
    if case.get("claims") is not None:
        claims = dict(case["claims"])
        p = app.provider_for(claims, case.get("provider"))
        # What the CLI does not check for given claims (signature, audience,
        # lifetime), a real token must satisfy: fill in what the case leaves out
        # and give it a fresh, short lifetime within the provider's limit.
        claims.setdefault("iss", p["issuer"])
        claims.setdefault("aud", p["audiences"][0])
        lifetime = min(600, int(p.get("maxLifetimeSeconds", DEFAULT_MAX_LIFETIME)) - 60)
        claims["iat"] = real_now - 30
        claims["exp"] = real_now - 30 + lifetime
        claims.pop("nbf", None)
        alg = (p.get("algorithms") or ["RS256"])[0]
        assert alg == "RS256", f"the example key signs RS256 only, provider {p['name']} wants {alg}"
        return CaseToken(sign({"alg": "RS256", "typ": "JWT", "kid": EXAMPLE_KID}, claims), "minted", p)
    tok = case.get("token")
    if tok is None:
        return CaseToken(None, "none")
    tok = tok.strip()
    header, claims = decode(tok)
    try:
        p = app.provider_for(claims, case.get("provider"))
    except ValueError:
        p = None
    if case_now is None:
        return CaseToken(tok, "as-is", p)
    skew = int((p or {}).get("clockSkewSeconds", DEFAULT_SKEW))
    if _time_view(claims, case_now, skew) == _time_view(claims, real_now, skew):
        return CaseToken(tok, "as-is", p)
    if not signed_by_example_key(tok):
        raise ValueError("the case's token is not signed by the example key and its times mean something else "
                         "now than at the case's 'now': it cannot be replayed faithfully")
    delta = real_now - case_now
    shifted = dict(claims)
    for k in ("nbf", "iat", "exp"):
        if isinstance(shifted.get(k), (int, float)):
            shifted[k] = int(shifted[k]) + delta
    return CaseToken(sign(header, shifted), f"re-signed (times shifted by {delta} s)", p)


def token_location(plugin_config: dict, provider_name: str | None) -> dict:
    """Where the filter looks for this provider's token (its first ``from``)."""
    for p in plugin_config.get("providers", []):
        if p["name"] == provider_name and p.get("from"):
            return p["from"][0]
    return {"header": {"name": "authorization", "prefix": "Bearer "}}


def place_token(token: str, location: dict, path: str) -> tuple[list, str]:
    """(extra headers, path) carrying ``token`` at ``location``."""
    if "header" in location:
        h = location["header"]
        return [(h["name"], (h.get("prefix") or "") + token)], path
    if "query" in location:
        return [], path + ("&" if "?" in path else "?") + f"{location['query']}={token}"
    if "cookie" in location:
        return [("cookie", f"{location['cookie']}={token}")], path
    raise ValueError(f"unknown token location {location}")


# --------------------------------------------------------------------------------------
# Envoy
# --------------------------------------------------------------------------------------

def listeners(filters) -> list:
    return [
        E.Listener("mtls", tls="require", http_filters=filters),
        E.Listener("optional", tls="optional", http_filters=filters),
        E.Listener("mtls-raw", tls="require", normalize=False, http_filters=filters),
        E.Listener("optional-raw", tls="optional", normalize=False, http_filters=filters),
    ]


def start_component_envoy(workdir: str, name: str, pki: SpiffePKI, echo, plugin_config: str) -> "E.Envoy":
    filters = [E.wasm_filter(plugin_config)]
    boot = E.render_bootstrap(listeners(filters), pki, echo.port)
    return E.Envoy(os.path.join(workdir, name), boot, name=name).start()
