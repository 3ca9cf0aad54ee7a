"""results.csv: one flat row per result (nested metrics become columns like grad.rel_err)."""

from __future__ import annotations

import json


def render(records: list[dict]) -> str:
    import pandas as pd

    flat = [{k: (json.dumps(v) if isinstance(v, list) else v) for k, v in _flatten(r).items()}
            for r in records]
    return pd.DataFrame(flat).to_csv(index=False)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if k == "traceback":
            continue
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
