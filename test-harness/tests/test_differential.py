"""The short seed set of the differential test (`make differential` runs
thousands of pairs): random policies in oam-authz and in the native filters
`oam-authz export-envoy` emits must agree on allow/deny for every request,
except where the request carries a difference documented in
docs/differences.md "Differential test"."""
from __future__ import annotations

import os
import random
import re

from harness import differential as D

SEEDS = (1, 2)
PAIRS, REQUESTS = 30, 20


def test_short_seed_set_agrees_with_native_envoy(workdir, pki, echo, wasm):
    total = D.Result()
    for seed in SEEDS:
        total.merge(D.run(seed, PAIRS, REQUESTS, PAIRS, os.path.join(workdir, f"differential-{seed}"), pki, echo))
    print("\n" + total.summary())
    assert total.pairs == PAIRS * len(SEEDS)
    assert not total.mismatches, total.summary()
    # Not vacuous: both sides allowed and denied plenty of requests.
    allowed = sum(n for (ours, native), n in total.statuses.items() if ours == native == 200)
    denied = sum(n for (ours, native), n in total.statuses.items() if ours >= 400 and native >= 400)
    assert allowed > 50 and denied > 300, total.statuses


def test_every_tolerated_difference_is_documented():
    text = open(D.DOCS).read()
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', text))
    assert set(D.DIFFERENCES.values()) <= anchors, set(D.DIFFERENCES.values()) - anchors


def test_the_comparison_catches_a_wrong_export(workdir, pki, echo, wasm):
    """Native filters that allow everything must show up as unexplained mismatches."""
    rng = random.Random(7)
    issuers = D.make_issuers()
    pols = [D.gen_policy(rng, issuers) for _ in range(3)]
    reqs = [[D.gen_request(rng, p, issuers) for _ in range(20)] for p in pols]
    allow_all = [{"name": "envoy.filters.http.rbac", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"}}]
    res = D.run_batch(os.path.join(workdir, "differential-mutant"), "mutant", pki, echo, D.extra_certs(pki),
                      pols, reqs, native_override=allow_all)
    assert len(res.mismatches) >= 10, res.summary()
