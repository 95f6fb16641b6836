#!/usr/bin/env python3
"""`make differential`: thousands of random policy pairs, oam-authz against the
native filters `oam-authz export-envoy` emits (harness/differential.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness.differential import main  # noqa: E402

sys.exit(main())
