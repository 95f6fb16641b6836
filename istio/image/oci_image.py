#!/usr/bin/env python3
"""Build and check the OCI image of the oam-authz wasm module, without docker.

`build` writes an OCI image layout (https://github.com/opencontainers/image-spec,
image-layout.md): `oci-layout`, `index.json` and `blobs/sha256/*`, holding one
image in Istio's "compat" variant: an OCI image manifest whose single layer,
`application/vnd.oci.image.layer.v1.tar+gzip`, is a tar with `plugin.wasm`.
It is reproducible: the same module gives the same bytes, hence the same digest
(fixed tar header fields and gzip mtime). It prints the manifest digest, which
is what Istio compares with a WasmPlugin's `sha256` for an `oci://` URL.

`check` judges an image the way Istio's image fetcher does (see `istio_accepts`),
from an OCI layout or from a registry (plain HTTP on loopback, for the test).

Only the standard library: `make image` needs python3 and nothing else.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import io
import json
import os
import sys
import tarfile
from dataclasses import dataclass

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"
REF_NAME = "org.opencontainers.image.ref.name"
# Istio's limit on the module it extracts (ISTIO_WASM_MAX_BINARY_SIZE_BYTES).
MAX_WASM = 256 * 1024 * 1024


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, annotations: dict | None = None) -> dict:
    d = {"mediaType": media_type, "digest": f"sha256:{sha256_hex(data)}", "size": len(data)}
    if annotations:
        d["annotations"] = annotations
    return d


def canonical(obj) -> bytes:
    """The JSON bytes we publish: sorted keys, no spaces (stable digests)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def plugin_tar(module: bytes) -> bytes:
    """A tar holding only `plugin.wasm`, with fixed header fields."""
    info = tarfile.TarInfo("plugin.wasm")
    info.size, info.mode, info.mtime = len(module), 0o644, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(module))
    return buf.getvalue()


@dataclass
class Image:
    manifest: bytes
    blobs: dict  # hex digest -> bytes (config and layer)

    @property
    def digest(self) -> str:
        return sha256_hex(self.manifest)


def image_for(module: bytes, version: str) -> Image:
    """The compat-variant image of `module`."""
    tar = plugin_tar(module)
    layer = gzip.compress(tar, compresslevel=9, mtime=0)
    # A regular image config: registries and clients that inspect images
    # (skopeo, crane, Harbor) expect one; Istio does not read it. os/arch are
    # Go's names for the target the module is built for.
    config = canonical({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha256_hex(tar)}"]},
    })
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(OCI_LAYER_GZIP, layer)],
        "annotations": {
            "org.opencontainers.image.title": "oam-authz",
            "org.opencontainers.image.version": version,
            # The module's own SHA-256 (what an https:// WasmPlugin pins).
            "io.oam-authz.module.sha256": sha256_hex(module),
        },
    })
    return Image(manifest, {sha256_hex(config): config, sha256_hex(layer): layer})


def write_layout(img: Image, out: str, tag: str) -> None:
    """An OCI image layout with this one image, tagged `tag`."""
    blob_dir = os.path.join(out, "blobs", "sha256")
    os.makedirs(blob_dir, exist_ok=True)
    for name in os.listdir(blob_dir):  # a rebuild leaves no stale blobs
        os.remove(os.path.join(blob_dir, name))
    for hexd, data in list(img.blobs.items()) + [(img.digest, img.manifest)]:
        with open(os.path.join(blob_dir, hexd), "wb") as f:
            f.write(data)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [descriptor(OCI_MANIFEST, img.manifest, {REF_NAME: tag})]}
    with open(os.path.join(out, "index.json"), "wb") as f:
        f.write(canonical(index))
    with open(os.path.join(out, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))


# ---------------------------------------------------------------------------------------
# What Istio accepts. A port of the acceptance logic of Istio's image fetcher,
# pkg/wasm/imagefetcher.go (PrepareFetch, extractDockerImage,
# extractOCIStandardImage, extractWasmPluginBinary, extractOCIArtifactImage) and
# of the digest check in pkg/wasm/cache.go (getOrFetch), at
# https://github.com/istio/istio/blob/86c9f01fd735fb01d8192f5bcaf0d424afb7f14c/pkg/wasm/imagefetcher.go
# https://github.com/istio/istio/blob/86c9f01fd735fb01d8192f5bcaf0d424afb7f14c/pkg/wasm/cache.go
# ---------------------------------------------------------------------------------------

class Rejected(Exception):
    """Istio would refuse the image (the message says which step)."""


def _plugin_wasm(layer: bytes) -> bytes:
    """extractWasmPluginBinary: the first tar entry whose base name is plugin.wasm."""
    try:
        raw = gzip.decompress(layer)
    except OSError as e:
        raise Rejected(f"failed to parse layer as tar.gz: {e}") from e
    with tarfile.open(fileobj=io.BytesIO(raw[:MAX_WASM]), mode="r:") as tar:
        for member in tar:
            if os.path.basename(member.name) == "plugin.wasm":
                f = tar.extractfile(member)
                if f is None:
                    raise Rejected("plugin.wasm is not a regular file")
                return f.read()
    raise Rejected("plugin.wasm not found in the archive")


def istio_accepts(content_type: str, manifest: bytes, blob, sha256: str | None = None) -> tuple[bytes, str]:
    """The module Istio would load from this image, and the digest it compares
    with the WasmPlugin's `sha256`; raises Rejected otherwise.

    `content_type`: the manifest's media type as the registry serves it;
    `blob(hex_digest) -> bytes`; `sha256`: the WasmPlugin's field, if set.
    """
    # remote.Get accepts image manifests and indexes; desc.Image() would resolve an
    # index to the linux/amd64 image (which a wasm image has no reason to carry),
    # so an index is refused here: publish the manifest itself.
    if content_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise Rejected(f"could not fetch image: manifest media type {content_type!r} is not an image manifest")
    m = json.loads(manifest)
    # The digest Istio compares is the manifest's (img.Digest()), not the module's:
    # cache.go getOrFetch, `dChecksum != key.checksum` for the "oci" scheme.
    digest = sha256_hex(manifest)
    if sha256 is not None and sha256 != digest:
        raise Rejected(f"module has checksum {digest}, which does not match: {sha256}")
    layers = m.get("layers") or []

    def layer_bytes(d: dict) -> bytes:
        data = blob(d["digest"].removeprefix("sha256:"))
        if f"sha256:{sha256_hex(data)}" != d["digest"]:
            raise Rejected(f"layer {d['digest']} does not match its content")
        return data

    if m.get("mediaType") == DOCKER_MANIFEST:
        if not layers:
            raise Rejected("number of layers must be greater than zero")
        if layers[-1]["mediaType"] != DOCKER_LAYER:
            raise Rejected(f"invalid media type {layers[-1]['mediaType']} (expect {DOCKER_LAYER})")
        wasm = _plugin_wasm(layer_bytes(layers[-1]))
    else:
        errors = []
        wasm = None
        # The compat variant first: the LAST layer must be tar+gzip holding plugin.wasm.
        try:
            if not layers:
                raise Rejected("number of layers must be greater than zero")
            if layers[-1]["mediaType"] != OCI_LAYER_GZIP:
                raise Rejected(f"invalid media type {layers[-1]['mediaType']} (expect {OCI_LAYER_GZIP})")
            wasm = _plugin_wasm(layer_bytes(layers[-1]))
        except Rejected as e:
            errors.append(f"could not parse as compat variant: {e}")
        if wasm is None:
            # The oci variant: exactly two LAYERS (the config descriptor does not count).
            try:
                if len(layers) != 2:
                    raise Rejected(f"number of layers must be 2 but got {len(layers)}")
                found = [d for d in layers if d["mediaType"] == WASM_LAYER]
                if not found:
                    raise Rejected(f"could not find the layer of type {WASM_LAYER}")
                wasm = layer_bytes(found[0])[:MAX_WASM]
            except Rejected as e:
                errors.append(f"could not parse as oci variant: {e}")
        if wasm is None:
            raise Rejected("the given image is in invalid format as an OCI image: " + "; ".join(errors))
    # isValidWasmBinary: at least 8 bytes, starting with the wasm magic number.
    if len(wasm) < 8 or wasm[:4] != b"\0asm":
        raise Rejected("fetched Wasm binary is invalid")
    return wasm, digest


def read_layout(path: str, tag: str | None = None) -> tuple[str, bytes, callable]:
    """(media type, manifest bytes, blob reader) of the image tagged `tag` (or
    the only one) in an OCI layout."""
    with open(os.path.join(path, "index.json"), "rb") as f:
        index = json.load(f)
    ms = [d for d in index.get("manifests", [])
          if tag is None or d.get("annotations", {}).get(REF_NAME) == tag]
    if len(ms) != 1:
        raise Rejected(f"{path}: expected one image{f' tagged {tag}' if tag else ''}, found {len(ms)}")

    def blob(hexd: str) -> bytes:
        with open(os.path.join(path, "blobs", "sha256", hexd), "rb") as f:
            return f.read()

    manifest = blob(ms[0]["digest"].removeprefix("sha256:"))
    if f"sha256:{sha256_hex(manifest)}" != ms[0]["digest"]:
        raise Rejected(f"{path}: the manifest does not match its digest in index.json")
    return ms[0]["mediaType"], manifest, blob


def read_registry(host: str, repo: str, ref: str) -> tuple[str, bytes, callable, str | None]:
    """The same from a registry over plain HTTP (the Distribution API), plus the
    Docker-Content-Digest header the registry sent."""
    def get(path: str, accept: str | None = None) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(host, timeout=10)
        try:
            conn.request("GET", path, headers={"Accept": accept} if accept else {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    # The Accept list go-containerregistry's remote.Get sends.
    accept = ",".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
    status, headers, manifest = get(f"/v2/{repo}/manifests/{ref}", accept)
    if status != 200:
        raise Rejected(f"could not fetch manifest: HTTP {status}")

    def blob(hexd: str) -> bytes:
        status, _, data = get(f"/v2/{repo}/blobs/sha256:{hexd}")
        if status != 200:
            raise Rejected(f"blob sha256:{hexd}: HTTP {status}")
        return data

    return headers.get("content-type", ""), manifest, blob, headers.get("docker-content-digest")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write an OCI image layout of a module")
    b.add_argument("--module", required=True, help="the .wasm file")
    b.add_argument("--out", required=True, help="the OCI layout directory to (re)write")
    b.add_argument("--tag", required=True)
    c = sub.add_parser("check", help="judge a layout as Istio's image fetcher would")
    c.add_argument("layout")
    c.add_argument("--tag")
    c.add_argument("--sha256", help="the WasmPlugin's sha256 to verify")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "build":
            with open(a.module, "rb") as f:
                module = f.read()
            img = image_for(module, a.tag)
            write_layout(img, a.out, a.tag)
            istio_accepts(*read_layout(a.out, a.tag), sha256=img.digest)
            print(f"{a.out}: {a.tag} sha256:{img.digest} (module {a.module}, sha256 {sha256_hex(module)})")
        else:
            wasm, digest = istio_accepts(*read_layout(a.layout, a.tag), sha256=a.sha256)
            print(f"{a.layout}: accepted by Istio's fetcher; image sha256 {digest}, module {len(wasm)} bytes")
    except (Rejected, OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
