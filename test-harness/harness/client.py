"""A raw HTTP/1.1 client over TLS (or plaintext) that sends exactly what it is
given: the raw request target (no normalization or quoting), duplicate headers,
any Host, and the chosen client certificate (or none)."""
from __future__ import annotations

import http.client
import json
import socket
import ssl
from dataclasses import dataclass


@dataclass
class Response:
    status: int
    headers: list  # [(lower-name, value)], in order, duplicates kept
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def json(self):
        return json.loads(self.body)

    @property
    def reason_code(self) -> str | None:
        """The filter's reason: the x-oam-authz-reason header, else the JSON body."""
        h = self.header("x-oam-authz-reason")
        if h:
            return h
        try:
            return self.json().get("reason")
        except Exception:
            return None

    # for an allowed request, the echo upstream's view
    @property
    def upstream(self) -> dict:
        return self.json()

    def upstream_headers(self, name: str) -> list[str]:
        return [v for k, v in self.upstream["headers"] if k == name.lower()]

    def __repr__(self):
        return f"<Response {self.status} reason={self.reason_code} headers={self.headers} body={self.body[:300]!r}>"


def tls_context(ca: str | None, cert=None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        ctx.load_verify_locations(ca)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def request(port: int, path: str = "/", method: str = "GET", headers=None, *, body: bytes = b"",
            cert=None, ca: str | None = None, tls: bool = True, host: str | None = "localhost",
            bearer: str | None = None, timeout: float = 10.0) -> Response:
    """Sends one request on a fresh connection (``Connection: close``).

    ``headers``: list of (name, value) pairs sent verbatim and in order (so a
    name may repeat). ``host=None`` omits the Host header. ``bearer`` adds
    ``Authorization: Bearer <token>``.
    """
    hdrs = list(headers or [])
    if bearer is not None:
        hdrs.append(("Authorization", f"Bearer {bearer}"))
    lines = [f"{method} {path} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in hdrs]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if tls:
            sock = tls_context(ca, cert).wrap_socket(sock, server_hostname="localhost")
        sock.sendall(raw)
        resp = http.client.HTTPResponse(sock, method=method)
        resp.begin()
        data = resp.read()
        return Response(resp.status, [(k.lower(), v) for k, v in resp.getheaders()], data)
    finally:
        sock.close()
