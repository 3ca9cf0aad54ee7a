"""results.parquet: the flat table of results.csv as typed columns (pandas + pyarrow)."""

from __future__ import annotations

import json
from pathlib import Path

from xentcheck.core.records import Result


def frame(records: list[Result]):
    """One row per result; nested metrics become columns like grad.rel_err, lists JSON text."""
    import pandas as pd

    from xentcheck.reports.csv import rows as flat_rows

    rows = []
    for row in flat_rows(records):
        flat = {}
        for k, v in row.items():
            # a column must hold one type: lists and the 'inf'/'nan' strings of worst_* as JSON text
            flat[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
        rows.append(flat)
    df = pd.DataFrame(rows)
    for col in df.columns:
        if df[col].dtype == object and df[col].map(lambda v: isinstance(v, str)).any():
            df[col] = df[col].map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
    return df


def write(records: list[Result], path: Path) -> None:
    """Write atomically: a temporary file beside `path`, then rename."""
    import os
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frame(records).to_parquet(tmp, engine="pyarrow", index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
