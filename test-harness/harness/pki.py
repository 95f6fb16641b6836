"""A throw-away test PKI: one mesh CA, a server certificate for Envoy's
listeners and SPIFFE workload client certificates (URI SAN
``spiffe://<td>/ns/<ns>/sa/<sa>``), plus a certificate from a foreign trust
domain and one signed by a CA Envoy does not trust.

Everything is written as PEM files into a directory the caller owns (a
per-session temp dir). Keys are P-256 so minting is fast.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TRUST_DOMAIN = "cluster.local"
ALIAS_DOMAIN = "old.example.com"
FOREIGN_DOMAIN = "partner.example"

# name -> SPIFFE ID. Tests refer to workloads by these names.
WORKLOADS = {
    "frontend": f"spiffe://{TRUST_DOMAIN}/ns/shop/sa/frontend",
    "backend": f"spiffe://{TRUST_DOMAIN}/ns/shop/sa/backend",
    "deployer": f"spiffe://{TRUST_DOMAIN}/ns/ci/sa/deployer",
    "ci-other": f"spiffe://{TRUST_DOMAIN}/ns/ci/sa/other",
    "batch": f"spiffe://{TRUST_DOMAIN}/ns/batch/sa/worker",
    "admin": f"spiffe://{TRUST_DOMAIN}/ns/admin/sa/admin",
    # the same workload as "frontend", presented in the alias trust domain
    "frontend-alias": f"spiffe://{ALIAS_DOMAIN}/ns/shop/sa/frontend",
    # a workload of a foreign (federated) trust domain
    "partner": f"spiffe://{FOREIGN_DOMAIN}/ns/x/sa/y",
    # a foreign trust domain that no pattern names
    "stranger": "spiffe://evil.example/ns/shop/sa/frontend",
}


@dataclass(frozen=True)
class CertFiles:
    cert: str
    key: str


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "oam-authz-test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: str, key) -> None:
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o600)


def _write_cert(path: str, cert: x509.Certificate) -> None:
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


class _CA:
    def __init__(self, cn: str):
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, cn: str, sans: list, server: bool) -> tuple:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        eku = [ExtendedKeyUsageOID.SERVER_AUTH] if server else [ExtendedKeyUsageOID.CLIENT_AUTH]
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return key, cert


class TestPKI:
    """Mints everything on construction. Attributes:

    ``ca_cert`` (the trusted mesh CA, PEM path), ``server`` (CertFiles for
    localhost/127.0.0.1), ``clients[name]`` (CertFiles, see WORKLOADS),
    ``untrusted`` (a frontend-looking cert signed by another CA), ``spiffe[name]``.
    """

    __test__ = False  # not a pytest class

    def __init__(self, directory: str):
        os.makedirs(directory, exist_ok=True)
        self.dir = directory
        ca = _CA("oam-authz test mesh CA")
        self.ca_cert = os.path.join(directory, "ca.pem")
        _write_cert(self.ca_cert, ca.cert)

        key, cert = ca.issue("localhost", [x509.DNSName("localhost"),
                                           x509.IPAddress(ipaddress.ip_address("127.0.0.1"))], server=True)
        self.server = self._save("server", key, cert)

        self.spiffe = dict(WORKLOADS)
        self.clients: dict[str, CertFiles] = {}
        for name, uri in WORKLOADS.items():
            key, cert = ca.issue(name, [x509.UniformResourceIdentifier(uri)], server=False)
            self.clients[name] = self._save(f"client-{name}", key, cert)

        self._ca = ca
        rogue = _CA("rogue CA")
        _write_cert(os.path.join(directory, "rogue-ca.pem"), rogue.cert)
        key, cert = rogue.issue("frontend", [x509.UniformResourceIdentifier(WORKLOADS["frontend"])], server=False)
        self.untrusted = self._save("client-untrusted", key, cert)

    def issue_client(self, stem: str, uris: list[str]) -> CertFiles:
        """A client certificate from the mesh CA with these URI SANs (in order)."""
        key, cert = self._ca.issue(stem, [x509.UniformResourceIdentifier(u) for u in uris], server=False)
        return self._save(f"client-{stem}", key, cert)

    def _save(self, stem: str, key, cert) -> CertFiles:
        c = os.path.join(self.dir, f"{stem}.pem")
        k = os.path.join(self.dir, f"{stem}-key.pem")
        _write_cert(c, cert)
        _write_key(k, key)
        return CertFiles(c, k)
