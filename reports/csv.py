"""results.csv: one flat row per result (nested metrics become columns like grad.rel_err)."""

from __future__ import annotations

import json

from xentcheck.core.records import Result


def render(records: list[Result]) -> str:
    import pandas as pd

    flat = [{k: (json.dumps(v) if isinstance(v, list) else v) for k, v in row.items()} for row in rows(records)]
    return pd.DataFrame(flat).to_csv(index=False)


def rows(records: list[Result]) -> list[dict]:
    """One flat row per result, its serialised form (results.jsonl's line) with nested fields as
    dotted columns: the one place the tables (results.csv, results.parquet) turn records into rows."""
    return [_flatten(r.to_dict()) for r in records]


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
