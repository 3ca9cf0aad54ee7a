"""Known differences: accepted, documented behaviour differences, kept as data (TOML).

Each `[[difference]]` entry names the results it covers by fields, every one a fnmatch pattern
or a list of patterns (a result matches when each given field matches one of its patterns):
`backend`, `impl`, `mode`, `case` (the case id), `family`, `dtype`, `labels`, `reduction` and
`verdict`; plus an `id`, a `reason` and a `link` upstream. A bad result (fail, nonfinite...)
that an entry matches becomes verdict `known`, keeps its verdict in `original_verdict`, and
no longer fails the run (the rule is xentcheck.core.evaluate's mark_known; this module reads
the file and re-applies it to a folder's results). An entry that matches no result is stale: the behaviour changed or
the entry is wrong, and either way the file needs a look.
"""

from __future__ import annotations

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from dataclasses import replace
from pathlib import Path

from xentcheck.core.evaluate import mark_known
from xentcheck.core.metrics import BAD_VERDICTS
from xentcheck.core.records import MATCH_FIELDS, Result

REQUIRED = ("id", "reason", "link")
DEFAULT_FILE = Path(__file__).resolve().parents[2] / "known-differences.toml"  # the checkout's file


class KnownFileError(ValueError):
    """The known-differences file is missing, not TOML, or an entry is malformed."""


def load(path: str | Path) -> list[dict]:
    """The entries of a known-differences file, validated."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise KnownFileError(f"cannot read known-differences file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise KnownFileError(f"{path}: not valid TOML: {exc}") from None
    entries = data.get("difference", [])
    if not isinstance(entries, list):
        raise KnownFileError(f"{path}: 'difference' must be an array of tables ([[difference]])")
    seen = set()
    for n, e in enumerate(entries, 1):
        missing = [k for k in REQUIRED if not e.get(k)]
        if missing:
            raise KnownFileError(f"{path}: entry {n} lacks {', '.join(missing)}")
        unknown = set(e) - set(MATCH_FIELDS) - set(REQUIRED)
        if unknown:
            raise KnownFileError(f"{path}: entry {e['id']!r} has unknown field(s) {', '.join(sorted(unknown))} "
                                 f"(match fields: {', '.join(MATCH_FIELDS)})")
        if not any(k in e for k in MATCH_FIELDS):
            raise KnownFileError(f"{path}: entry {e['id']!r} matches everything: give at least one match field")
        if e["id"] in seen:
            raise KnownFileError(f"{path}: duplicate entry id {e['id']!r}")
        seen.add(e["id"])
        for k in MATCH_FIELDS:
            if k in e and not (isinstance(e[k], str) or (isinstance(e[k], list) and all(isinstance(v, str) for v in e[k]))):
                raise KnownFileError(f"{path}: entry {e['id']!r}: {k} must be a string or a list of strings")
    return entries


def unapply(record: Result) -> Result:
    """The record as it was before any known-difference was applied (for re-applying on merge);
    a new record, `record` is left as it is."""
    if record.verdict != "known":
        return record
    return replace(record, verdict=record.original_verdict, original_verdict=None, known=None)


def apply(records: list[Result], entries: list[dict]) -> tuple[list[Result], dict]:
    """Mark bad results that an entry matches as `known` (mark_known), afresh: a result marked by
    an earlier file is judged again. Returns the new records and a summary
    {"entries": n, "matched": {id: count}, "stale": [entries that matched nothing]}."""
    counts = {e["id"]: 0 for e in entries}
    out = []
    for r in records:
        r = unapply(r)
        if r.verdict in BAD_VERDICTS:
            result = mark_known(replace(r), entries)  # a copy: the caller's record stays as it was
            if result.known is not None:
                counts[result.known["id"]] += 1
                r = result
        out.append(r)
    stale = [e for e in entries if counts[e["id"]] == 0]
    return out, {"entries": entries, "matched": counts, "stale": [e["id"] for e in stale]}
