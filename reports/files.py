"""Writing and reading results folders: atomic writes and the JSON-lines results file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO

from xentcheck.core.records import Result, result_line


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
        self.records: list[Result] = []

    def __call__(self, record: Result) -> None:
        self._f.write(result_line(record))
        self._f.flush()
        self.records.append(record)

    def close(self) -> None:
        self._f.close()


class ResultsFileError(ValueError):
    """A results.jsonl that cannot be used; the message is one line naming the file, the line
    and what is wrong, for the command line to print as a usage error (exit status 2)."""


def required_keys() -> tuple[str, ...]:
    """The keys every record has: the published results schema's "required" list."""
    from xentcheck.reports.schemas import load

    return tuple(load("results")["required"])


def read_results(path: Path) -> list[Result]:
    """Records of a results.jsonl, one JSON object a line (blank lines ignored), each read by
    the one serialiser (xentcheck.core.records.Result.from_dict): typed, as every report takes them.

    The last line, when it has no newline and does not parse, is a write torn by a killed run:
    dropped. Anything else wrong raises ResultsFileError rather than skipping a result: a file
    that cannot be read, a line that is not UTF-8 or not JSON, JSON that is not an object, and an
    object without a key the results schema requires."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ResultsFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    *lines, tail = data.split(b"\n")  # tail: what follows the last newline, b"" when none
    required = required_keys()
    records = []
    for n, raw in enumerate([*lines, tail], 1):
        if not raw.strip():
            continue
        torn = n == len(lines) + 1
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            if torn:
                break
            raise ResultsFileError(f"{path}:{n}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                                   f"{exc.start + 1})") from None
        except json.JSONDecodeError as exc:
            if torn:
                break
            raise ResultsFileError(f"{path}:{n}: not a JSON line (column {exc.colno}: {exc.msg})") from None
        if not isinstance(record, dict):
            raise ResultsFileError(f"{path}:{n}: not a result record (a JSON {_json_kind(record)}, not an object)")
        missing = [k for k in required if k not in record]
        if missing:
            raise ResultsFileError(f"{path}:{n}: not a result record (no {', '.join(map(repr, missing))})")
        records.append(Result.from_dict(record))
    return records


def _json_kind(value: object) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def read_summary(path: Path) -> dict:
    """A run's summary.json; ResultsFileError (one line) when it is unreadable or not a JSON object."""
    path = Path(path)
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResultsFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ResultsFileError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ResultsFileError(f"{path}:{exc.lineno}: not valid JSON (column {exc.colno}: {exc.msg})") from None
    if not isinstance(summary, dict):
        raise ResultsFileError(f"{path}: not a JSON object")
    return summary
