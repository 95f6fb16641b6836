"""`make image` for real: the OCI images of both module builds go through a
local registry (Debian's `docker-registry`, on loopback) and back with a
standard client (`skopeo`), and are judged as Istio's image fetcher judges
them (istio/image/oci_image.py `istio_accepts`, a port of its acceptance
logic): layout, media types, the digest a WasmPlugin pins (what
`oam-authz compile --module <layout>` writes), and the module itself, which
an Envoy then loads from the pulled image and runs.

The checker is also shown to refuse the layouts Istio refuses (a one-layer
wasm-artifact push, a tar without plugin.wasm, a wrong digest), so a broken
checker cannot pass silently. `make image-tools` installs the registry and
skopeo; `make e2e` does both.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time

import pytest

from harness import envoy as E
from harness import policy as POL
from harness.checks import assert_allowed, assert_denied, Caller, start_envoy

sys.path.insert(0, os.path.join(E.REPO, "istio", "image"))
import oci_image as OCI  # noqa: E402

VERSION = re.search(r'^version = "([^"]+)"', open(os.path.join(E.REPO, "Cargo.toml")).read(), re.M).group(1)
CLI = os.environ.get("OAM_AUTHZ_CLI", os.path.join(E.REPO, "target", "release", "oam-authz"))
# (layout written by `make image`, its tag, the module it must hold)
IMAGES = [
    (os.path.join(E.REPO, "target", "oci", "oam-authz"), VERSION, E.WASM),
    (os.path.join(E.REPO, "target", "oci", "oam-authz-full"), f"{VERSION}-full", E.WASM_FULL),
]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.fail(f"{tool} not installed: run `make image-tools` (or `make e2e`)", pytrace=False)
    return path


@pytest.fixture(scope="module")
def registry(workdir):
    """A Distribution registry on 127.0.0.1 (kernel-chosen port, read from its log)."""
    binary = need("docker-registry")
    d = os.path.join(workdir, "registry")
    os.makedirs(d, exist_ok=True)
    config = os.path.join(d, "config.yml")
    with open(config, "w") as f:
        f.write("version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\n"
                f"storage:\n  filesystem:\n    rootdirectory: {d}/data\n"
                "http:\n  addr: 127.0.0.1:0\n")
    log = open(os.path.join(d, "registry.log"), "w+")
    proc = subprocess.Popen([binary, "serve", config], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, preexec_fn=E._die_with_parent)
    try:
        deadline = time.monotonic() + 15
        while True:
            log.seek(0)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read())
            if m:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"docker-registry did not start:\n{log.read()[-2000:]}", pytrace=False)
            time.sleep(0.05)
        yield f"127.0.0.1:{m.group(1)}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def skopeo(*args: str) -> str:
    r = subprocess.run([need("skopeo"), "--insecure-policy", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"skopeo {' '.join(args)}:\n{r.stderr}"
    return r.stdout


def compiled_sha256(url: str, module: str) -> str:
    """The sha256 `oam-authz compile` pins for this URL and --module."""
    r = subprocess.run([CLI, "compile", os.path.join(E.REPO, "examples", "shop", "app.yaml"),
                        "--url", url, "--module", module], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    pins = set(re.findall(r"^\s*sha256: ([0-9a-f]{64})$", r.stdout, re.M))
    assert len(pins) == 1, r.stdout
    return pins.pop()


@pytest.mark.parametrize("layout,tag,module", IMAGES, ids=["default", "full"])
def test_image_round_trip_through_a_registry(workdir, registry, layout, tag, module):
    if not os.path.isdir(layout):
        pytest.fail(f"{layout} missing: run `make image`", pytrace=False)
    wasm_bytes = open(module, "rb").read()
    # The layout as built: Istio takes it, it holds this very module, and compile pins its digest.
    built, digest = OCI.istio_accepts(*OCI.read_layout(layout, tag))
    assert built == wasm_bytes, f"{layout} is stale: run `make image`"
    url = f"oci://{registry}/oam-authz/filter:{tag}"
    assert compiled_sha256(url, layout) == digest

    # Push with a standard client; the registry must serve the same manifest bytes.
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:{tag}", f"docker://{registry}/oam-authz/filter:{tag}")
    ctype, manifest, blob, served = OCI.read_registry(registry, "oam-authz/filter", tag)
    assert ctype == OCI.OCI_MANIFEST
    assert served == f"sha256:{digest}"
    pulled, seen = OCI.istio_accepts(ctype, manifest, blob, sha256=digest)
    assert (pulled, seen) == (wasm_bytes, digest)
    m = json.loads(manifest)
    assert [d["mediaType"] for d in m["layers"]] == [OCI.OCI_LAYER_GZIP]
    assert m["config"]["mediaType"] == OCI.OCI_CONFIG

    # Pull back by digest with the standard client, into a fresh layout.
    back = os.path.join(workdir, f"pulled-{tag}")
    shutil.rmtree(back, ignore_errors=True)
    skopeo("copy", "--src-tls-verify=false", f"docker://{registry}/oam-authz/filter@sha256:{digest}", f"oci:{back}:{tag}")
    raw = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{registry}/oam-authz/filter:{tag}")
    assert OCI.sha256_hex(raw.encode()) == digest
    again, seen = OCI.istio_accepts(*OCI.read_layout(back, tag), sha256=digest)
    assert (again, seen) == (wasm_bytes, digest)
    # A WasmPlugin pinning the module's own sha256 would be refused for this URL.
    with pytest.raises(OCI.Rejected, match="does not match"):
        OCI.istio_accepts(ctype, manifest, blob, sha256=OCI.sha256_hex(wasm_bytes))
    with open(os.path.join(workdir, f"from-registry-{tag}.wasm"), "wb") as f:
        f.write(pulled)


def test_envoy_runs_the_module_pulled_from_the_registry(workdir, registry, pki, echo, issuers):
    """The default module, as pulled back above, loads in Envoy and decides."""
    path = os.path.join(workdir, f"from-registry-{VERSION}.wasm")
    if not os.path.exists(path):
        pytest.fail("the round-trip test did not leave the pulled module", pytrace=False)
    env = start_envoy(workdir, "from-registry", pki, echo, POL.to_json(POL.build_policy(issuers)), wasm=path)
    try:
        call = Caller(env, pki)
        assert_allowed(call("/mtls/exact", who="frontend"))
        assert_denied(call("/mtls/exact", who="backend"), 403, "role_required")
    finally:
        env.stop()


# ---- the checker refuses what Istio refuses ------------------------------------------------

def _image(layers: list[tuple[str, bytes]], manifest_type=OCI.OCI_MANIFEST):
    blobs = {OCI.sha256_hex(b): b for _, b in layers}
    config = b"{}"
    blobs[OCI.sha256_hex(config)] = config
    manifest = OCI.canonical({"schemaVersion": 2, "mediaType": manifest_type,
                              "config": OCI.descriptor(OCI.OCI_CONFIG, config),
                              "layers": [OCI.descriptor(t, b) for t, b in layers]})
    return manifest, blobs.__getitem__


def _targz(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue())


WASM_HEADER = b"\0asm\x01\0\0\0"


@pytest.mark.parametrize("layers,error", [
    # wasm-to-oci and ORAS-style pushes: one raw wasm layer.
    ([(OCI.WASM_LAYER, WASM_HEADER)], "number of layers must be 2 but got 1"),
    ([(OCI.OCI_LAYER_GZIP, _targz("module.wasm", WASM_HEADER))], "plugin.wasm not found"),
    ([(OCI.OCI_LAYER_GZIP, _targz("plugin.wasm", b"not wasm"))], "fetched Wasm binary is invalid"),
    ([(OCI.OCI_LAYER_GZIP, b"not gzip")], "failed to parse layer as tar.gz"),
    ([], "number of layers must be greater than zero"),
], ids=["wasm-artifact-one-layer", "no-plugin-wasm", "not-wasm", "not-gzip", "no-layers"])
def test_checker_refuses_what_istio_refuses(layers, error):
    manifest, blob = _image(layers)
    with pytest.raises(OCI.Rejected, match=error):
        OCI.istio_accepts(OCI.OCI_MANIFEST, manifest, blob)


def test_checker_accepts_the_other_layouts_istio_takes():
    # compat variant: the LAST layer counts, earlier layers are ignored.
    manifest, blob = _image([(OCI.OCI_LAYER_GZIP, _targz("x", b"")),
                             (OCI.OCI_LAYER_GZIP, _targz("./plugin.wasm", WASM_HEADER))])
    assert OCI.istio_accepts(OCI.OCI_MANIFEST, manifest, blob)[0] == WASM_HEADER
    # the oci variant: exactly two layers, one of them the raw module.
    manifest, blob = _image([(OCI.WASM_LAYER, WASM_HEADER), ("application/vnd.module.wasm.config.v1+json", b"{}")])
    assert OCI.istio_accepts(OCI.OCI_MANIFEST, manifest, blob)[0] == WASM_HEADER
    # a Docker manifest takes a Docker layer only.
    manifest, blob = _image([(OCI.DOCKER_LAYER, _targz("plugin.wasm", WASM_HEADER))], OCI.DOCKER_MANIFEST)
    assert OCI.istio_accepts(OCI.DOCKER_MANIFEST, manifest, blob)[0] == WASM_HEADER
    manifest, blob = _image([(OCI.OCI_LAYER_GZIP, _targz("plugin.wasm", WASM_HEADER))], OCI.DOCKER_MANIFEST)
    with pytest.raises(OCI.Rejected, match="invalid media type"):
        OCI.istio_accepts(OCI.DOCKER_MANIFEST, manifest, blob)
    # an index is not resolved to a wasm image
    with pytest.raises(OCI.Rejected, match="not an image manifest"):
        OCI.istio_accepts(OCI.OCI_INDEX, b"{}", blob)
