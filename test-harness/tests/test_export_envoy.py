"""`oam-authz export-envoy --bootstrap` on every example passes
`envoy --mode validate` (the filters, matchers and URI templates are real
Envoy 1.40 configuration); how they decide is the differential test's job."""
import glob
import os
import subprocess

import pytest

from harness import envoy as E
from harness.differential import CLI

APPS = sorted(glob.glob(os.path.join(E.REPO, "examples", "*", "app.yaml")))


@pytest.mark.parametrize("app", APPS, ids=[os.path.basename(os.path.dirname(a)) for a in APPS])
def test_export_envoy_bootstrap_validates(workdir, app):
    out = subprocess.run([CLI, "export-envoy", app, "--bootstrap"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    docs = out.stdout.split("\n---\n")
    assert docs and all("http_filters" in d for d in docs)
    name = os.path.basename(os.path.dirname(app))
    for i, doc in enumerate(docs):
        path = os.path.join(workdir, f"export-envoy-{name}-{i}.yaml")
        with open(path, "w") as f:
            f.write(doc)
        r = subprocess.run([E.envoy_binary(), "--mode", "validate", "-c", path, "-l", "error"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"{path}:\n{r.stdout}\n{r.stderr}"
