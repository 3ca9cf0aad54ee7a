"""Writing and reading results folders: atomic writes and the JSON-lines results file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a report."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResultsWriter:
    """Appends one JSON line per result and flushes it at once, so a crash loses nothing done."""

    def __init__(self, path: Path, append: bool = False):
        self.path = Path(path)
        self._f: IO[str] = open(self.path, "a" if append else "w", encoding="utf-8")
        self.records: list[dict] = []

    def __call__(self, record: dict) -> None:
        self._f.write(json.dumps(record, sort_keys=False) + "\n")
        self._f.flush()
        self.records.append(record)

    def close(self) -> None:
        self._f.close()


def read_results(path: Path) -> list[dict]:
    """Records of a results.jsonl; a torn last line (from a killed run) is dropped."""
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                if f.read().strip():  # only the very last line may be torn
                    raise ValueError(f"{path}:{n}: not a JSON line") from None
    return records
