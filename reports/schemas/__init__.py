"""Published JSON Schemas of results.jsonl records and summary.json (draft 2020-12)."""

from __future__ import annotations

import json
from importlib.resources import files


def load(name: str) -> dict:
    """The schema `name` ("results" or "summary")."""
    return json.loads(files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8"))
