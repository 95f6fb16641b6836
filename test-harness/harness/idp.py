"""A loopback identity provider for the remote-JWKS tests.

``TestIdP`` serves, on 127.0.0.1 and a port that survives ``down()``/``up()``:

* ``GET /jwks``                               the current JWK set
* ``GET /.well-known/openid-configuration``   ``{"issuer", "jwks_uri"}``

and can be told to misbehave: ``mode = "ok" | "garbage" | "bad_keys" |
"dup_kid" | "one_bad_key" | "500" | "hang"``, or go ``down()`` (listening socket closed: connection refused) and
come back ``up()``. Every request is logged (time, path) so tests can count
what the filter fetched. Keys are ES256 (``tokens.make_key``) and rotate with
``rotate()``; ``token()`` signs claims with any key, known to the IdP or not.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import tokens as T

MODES = ("ok", "garbage", "bad_keys", "dup_kid", "one_bad_key", "500", "hang")

# An Ed25519 key of a supported type whose x (32 bytes, y = 2) is not a curve point.
OFF_CURVE_ED25519 = {"kty": "OKP", "crv": "Ed25519", "kid": "off-curve", "use": "sig",
                     "x": "AgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with self.server.conns_lock:  # type: ignore[attr-defined]
            self.server.conns.add(self.connection)  # type: ignore[attr-defined]

    def finish(self):
        with self.server.conns_lock:  # type: ignore[attr-defined]
            self.server.conns.discard(self.connection)  # type: ignore[attr-defined]
        super().finish()

    def do_GET(self):  # noqa: N802
        idp: TestIdP = self.server.idp  # type: ignore[attr-defined]
        idp._log(self.path)
        mode = idp.mode
        if mode == "hang":
            # Hold the connection past the filter's timeout, then drop it.
            idp._release.wait(idp.hang_seconds)
            self.close_connection = True
            return
        if mode == "500":
            return self._send(500, b'{"error":"internal"}')
        if self.path == "/.well-known/openid-configuration":
            doc = {"issuer": idp.issuer, "jwks_uri": f"{idp.base}/jwks",
                   "id_token_signing_alg_values_supported": ["ES256"]}
            return self._send(200, json.dumps(doc).encode())
        if self.path != "/jwks":
            return self._send(404, b"not found")
        if mode == "garbage":
            return self._send(200, b"<html>\x00\xff not a JWKS</html>", "text/html")
        if mode == "bad_keys":
            # Valid JSON, but not a usable key set: must never replace good keys.
            return self._send(200, json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "kid": "broken",
                                                          "x": "AAAA", "y": "AAAA"}]}).encode())
        if mode == "one_bad_key":
            # One broken key published first, next to the good ones: it must be
            # skipped (logged, counted), never cost the good keys.
            return self._send(200, json.dumps({"keys": [OFF_CURVE_ED25519] + idp.jwks()["keys"]}).encode())
        if mode == "dup_kid":
            # The real keys plus a second key under an existing kid: ambiguous,
            # so the whole response must be refused (new keys in it included).
            keys = idp.jwks()["keys"]
            dup = dict(idp.new_key().jwk, kid=keys[0]["kid"])
            return self._send(200, json.dumps({"keys": keys + [dup]}).encode())
        return self._send(200, json.dumps(idp.jwks()).encode())

    def _send(self, status: int, body: bytes, ctype: str = "application/json"):
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class TestIdP:
    __test__ = False  # not a pytest class

    def __init__(self, audience: str = "api", start: bool = True, hang_seconds: float = 5.0):
        # Reserve a port now so the issuer (which embeds it) is known before
        # the first start, and stays the same across down()/up().
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.base = f"http://127.0.0.1:{self.port}"
        self.issuer = self.base
        self.audience = audience
        self.mode = "ok"
        self.hang_seconds = hang_seconds
        self._release = threading.Event()
        self._lock = threading.Lock()
        self.requests: list[tuple[float, str]] = []
        self.keys: list[T.Key] = [T.make_key("ES256", "k1")]
        self._n = 1
        self._httpd: _Server | None = None
        if start:
            self.up()

    # -- lifecycle ----------------------------------------------------------------------

    def up(self) -> None:
        if self._httpd:
            return
        deadline = time.monotonic() + 5
        while True:
            try:
                httpd = _Server(("127.0.0.1", self.port), _Handler)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        httpd.idp = self  # type: ignore[attr-defined]
        httpd.conns = set()  # type: ignore[attr-defined]
        httpd.conns_lock = threading.Lock()  # type: ignore[attr-defined]
        self._release.clear()
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._httpd = httpd

    def down(self) -> None:
        """Stop listening and drop every open (keep-alive) connection: new
        connections are refused, pooled ones are reset."""
        httpd, self._httpd = self._httpd, None
        if httpd:
            self._release.set()
            httpd.shutdown()
            httpd.server_close()
            with httpd.conns_lock:  # type: ignore[attr-defined]
                for c in list(httpd.conns):  # type: ignore[attr-defined]
                    try:
                        c.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

    close = down

    # -- keys and tokens ----------------------------------------------------------------

    def jwks(self) -> dict:
        return {"keys": [k.jwk for k in self.keys]}

    def new_key(self) -> T.Key:
        self._n += 1
        return T.make_key("ES256", f"k{self._n}")

    def rotate(self, keep_old: bool = False) -> T.Key:
        """Publish a new key; drop the old ones unless ``keep_old``."""
        k = self.new_key()
        self.keys = (self.keys + [k]) if keep_old else [k]
        return k

    def token(self, key: T.Key | None = None, lifetime: int = 600, kid: str | None = None, **extra) -> str:
        key = key or self.keys[0]
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.audience, "sub": "alice", "iat": now, "exp": now + lifetime}
        claims.update(extra)
        header = {"alg": key.alg, "typ": "JWT", "kid": kid or key.kid}
        return T.compact(header, claims, key.sign)

    # -- request log --------------------------------------------------------------------

    def _log(self, path: str) -> None:
        with self._lock:
            self.requests.append((time.monotonic(), path))

    def count(self, path: str | None = None, since: float = 0.0) -> int:
        with self._lock:
            return sum(1 for t, p in self.requests if t >= since and (path is None or p == path))

    def set_mode(self, mode: str) -> None:
        assert mode in MODES, mode
        if self.mode == "hang" and mode != "hang":
            self._release.set()
        self.mode = mode
        if mode == "hang":
            self._release.clear()
