"""A tiny YAML emitter (dicts, lists, scalars) so generated Envoy bootstraps are
readable without a PyYAML dependency. Strings are emitted JSON-quoted, which is
valid YAML."""
from __future__ import annotations

import json


def _scalar(v) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    return json.dumps(str(v))


def _emit(v, indent: int, out: list) -> None:
    pad = "  " * indent
    if isinstance(v, dict):
        if not v:
            out[-1] += " {}"
            return
        for k, val in v.items():
            key = json.dumps(k) if (k.startswith("@") or ":" in k) else k
            if isinstance(val, (dict, list)) and val:
                out.append(f"{pad}{key}:")
                _emit(val, indent + 1, out)
            elif isinstance(val, (dict, list)):
                out.append(f"{pad}{key}: {'{}' if isinstance(val, dict) else '[]'}")
            else:
                out.append(f"{pad}{key}: {_scalar(val)}")
    elif isinstance(v, list):
        for item in v:
            if isinstance(item, (dict, list)) and item:
                sub: list = []
                _emit(item, indent + 1, sub)
                first = sub[0].lstrip()
                if isinstance(item, list):
                    out.append(f"{pad}-")
                    out.extend(sub)
                else:
                    out.append(f"{pad}- {first}")
                    out.extend(sub[1:])
            else:
                out.append(f"{pad}- {_scalar(item) if not isinstance(item, (dict, list)) else ('{}' if isinstance(item, dict) else '[]')}")
    else:
        out.append(pad + _scalar(v))


def dump(v) -> str:
    out: list = []
    _emit(v, 0, out)
    return "\n".join(out) + "\n"
