"""Shards: split a run's cases over machines (`--shard i/n`) and merge the folders back.

Shard i of n (1-based, 1 <= i <= n, as CI matrices count) takes the cases whose position in the
unsharded suite is congruent to i - 1 modulo n: round-robin, so every shard gets a mix of
families and sizes, and the split depends only on the suite, never on timing. Each shard's
summary.json records the unsharded case order, so `merge` can restore it exactly.
"""

from __future__ import annotations

import re
from pathlib import Path

from xentcheck.core.records import Result

_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
# what every shard of one run must share (the shard itself and the case count differ)
SHARED_CONFIG = ("backends", "dtypes", "seed", "device", "case_order")


class MergeError(ValueError):
    """Folders that cannot be merged: missing files, different runs, missing or repeated shards."""


def parse(text: str) -> tuple[int, int]:
    m = _SHARD_RE.match(text)
    if not m:
        raise ValueError(f"--shard must be I/N (e.g. 1/3), got {text!r}")
    i, n = int(m[1]), int(m[2])
    if not 1 <= i <= n:
        raise ValueError(f"--shard {text}: need 1 <= I <= N (shards are numbered from 1)")
    return i, n


def select(cases: list, index: int, count: int) -> list:
    return [c for pos, c in enumerate(cases) if pos % count == index - 1]


def _load(folder: Path) -> tuple[dict, list[Result]]:
    from xentcheck.reports.files import read_results, read_summary

    try:
        summary = read_summary(folder / "summary.json")
        records = read_results(folder / "results.jsonl")
    except (OSError, ValueError) as exc:
        raise MergeError(f"{folder} is not a complete results folder: {exc}") from None
    return summary, records


def merge(folders: list[Path]) -> tuple[list[Result], dict, dict | None]:
    """Records in the unsharded order, the merged run context, and the known-differences
    entries to re-apply (or None). Raises MergeError when the folders are not shards of one run."""
    from xentcheck.regress import known

    loaded = [(f, *_load(Path(f))) for f in folders]
    first_folder, first, _ = loaded[0]
    cfg0 = first.get("config", {})
    for f, s, _ in loaded[1:]:
        for key in SHARED_CONFIG:
            if s.get("config", {}).get(key) != cfg0.get(key):
                raise MergeError(f"{f} and {first_folder} are not shards of one run: their {key} differ")
        if s.get("tolerances") != first.get("tolerances"):
            raise MergeError(f"{f} and {first_folder} are not shards of one run: their tolerances differ")
    shards = [s.get("config", {}).get("shard") for _, s, _ in loaded]
    if any(sh is not None for sh in shards):
        if any(sh is None for sh in shards):
            raise MergeError("cannot merge a sharded run with an unsharded one")
        counts = {sh["count"] for sh in shards}
        if len(counts) != 1:
            raise MergeError(f"shards of different splits: /{' /'.join(str(c) for c in sorted(counts))}")
        indices = sorted(sh["index"] for sh in shards)
        n = counts.pop()
        if indices != list(range(1, n + 1)):
            missing = sorted(set(range(1, n + 1)) - set(indices))
            repeated = sorted({i for i in indices if indices.count(i) > 1})
            raise MergeError("shards " + "; ".join(filter(None, [
                f"missing: {', '.join(map(str, missing))}" if missing else "",
                f"repeated: {', '.join(map(str, repeated))}" if repeated else ""])) + f" (of {n})")
    order = {cid: i for i, cid in enumerate(cfg0.get("case_order") or [])}
    backend_rank: dict[str, int] = {}
    for _, s, _ in loaded:
        for b in s.get("backends", []):
            backend_rank.setdefault(b.get("name", b.get("spec")), len(backend_rank))
    records: list[Result] = []
    seen = set()
    for f, _, recs in loaded:
        for r in recs:
            ident = (r.case_id, r.backend, r.impl, r.mode, r.dtype)
            if ident in seen:
                raise MergeError(f"{f}: result {ident} appears in two folders")
            seen.add(ident)
            records.append(known.unapply(r))
    records.sort(key=lambda r: (order.get(r.case_id or "", len(order)), backend_rank.get(r.backend or "", 0)))
    context = {k: v for k, v in first.items() if k in ("xentcheck_version", "config", "environment", "backends",
                                                         "tolerances", "reference_float64")}
    context["config"] = {**cfg0, "n_cases": len({r.case_id for r in records})}
    context["config"].pop("shard", None)
    context["interrupted"] = any(s.get("interrupted") for _, s, _ in loaded)
    context["merged_from"] = [str(f) for f, _, _ in loaded]
    kd = first.get("known_differences")
    entries = {"file": kd["file"], "entries": kd["entries"]} if kd else None
    return records, context, entries
