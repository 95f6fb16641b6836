//! `compile --module`: the `sha256` a WasmPlugin pins. What Istio checks it
//! against depends on the URL: for `https://` the module's own SHA-256, for
//! `oci://` the image's manifest digest (istio/ROLLOUT.md "The module
//! image"). So `--module` takes the `.wasm` file for an HTTP(S) or file URL
//! and the OCI image layout `make image` writes for an `oci://` URL; the
//! other pairings would produce a WasmPlugin every sidecar refuses.

use crate::common::Fatal;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The hex digest to pin for `--module` and `--url`, or `None` without `--module`.
pub fn pin(url: &str, module: Option<&Path>) -> Result<Option<String>, Fatal> {
    let Some(m) = module else { return Ok(None) };
    let oci = url.starts_with("oci://");
    if m.is_dir() {
        if !oci {
            return Err(Fatal(format!(
                "--module {}: an OCI image layout pins the image digest, which Istio checks only for oci:// URLs; for {url} pass the .wasm file",
                m.display()
            )));
        }
        let digest = layout_digest(m)?;
        if let Some((_, in_url)) = url.split_once("@sha256:") {
            if in_url != digest {
                return Err(Fatal(format!(
                    "--url {url} names image sha256:{in_url}, but --module {} holds sha256:{digest}",
                    m.display()
                )));
            }
        }
        return Ok(Some(digest));
    }
    let bytes = std::fs::read(m).map_err(|e| Fatal(format!("--module {}: {e}", m.display())))?;
    if oci {
        return Err(Fatal(format!(
            "--module {}: for an oci:// URL Istio compares sha256 with the image's manifest digest, not the module's; pass the image layout that `make image` writes (--module target/oci/oam-authz), or leave --module out and pin the digest in the URL (oci://…@sha256:…)",
            m.display()
        )));
    }
    Ok(Some(hex_sha256(&bytes)))
}

fn read_json(path: &Path) -> Result<(Vec<u8>, Value), Fatal> {
    let bytes =
        std::fs::read(path).map_err(|e| Fatal(format!("--module {}: {e}", path.display())))?;
    let v = serde_json::from_slice(&bytes)
        .map_err(|e| Fatal(format!("--module {}: not JSON: {e}", path.display())))?;
    Ok((bytes, v))
}

/// The manifest digest of the one image in an OCI image layout, after
/// checking that Istio's fetcher takes it as the compat variant (an OCI
/// manifest whose last layer is tar+gzip; `make image` checks the rest).
fn layout_digest(dir: &Path) -> Result<String, Fatal> {
    let bad = |why: String| Fatal(format!("--module {}: {why}", dir.display()));
    let (_, index) = read_json(&dir.join("index.json"))?;
    let manifests = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("index.json has no manifests".into()))?;
    let [desc] = manifests.as_slice() else {
        return Err(bad(format!(
            "index.json lists {} images; keep one image per layout",
            manifests.len()
        )));
    };
    if desc.get("mediaType").and_then(Value::as_str) != Some(OCI_MANIFEST) {
        return Err(bad(format!(
            "the image is not an OCI image manifest ({OCI_MANIFEST})"
        )));
    }
    let digest = desc
        .get("digest")
        .and_then(Value::as_str)
        .and_then(|d| d.strip_prefix("sha256:"))
        .filter(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| bad("index.json: the image has no sha256 digest".into()))?;
    let (bytes, manifest) = read_json(&dir.join("blobs").join("sha256").join(digest))?;
    if hex_sha256(&bytes) != digest {
        return Err(bad(format!(
            "blobs/sha256/{digest} does not match its digest"
        )));
    }
    let last_layer = manifest
        .get("layers")
        .and_then(Value::as_array)
        .and_then(|l| l.last())
        .and_then(|l| l.get("mediaType"))
        .and_then(Value::as_str);
    if last_layer != Some(OCI_LAYER_GZIP) {
        return Err(bad(format!(
            "not an image Istio's fetcher takes as the compat variant: its last layer must be {OCI_LAYER_GZIP} holding plugin.wasm"
        )));
    }
    Ok(digest.to_string())
}
