"""Findings grouped by kind: one row per backend x implementation x what went wrong.

A full-suite run has hundreds of bad results, most of them a handful of causes repeated over
dtypes, modes and cases (Keras computing float16 in float32, say). Grouping them by the first
reason with its numbers taken out gives a table a person can read to the end, so no finding hides
behind the per-result table's cut.
"""

from __future__ import annotations

import re
from collections import defaultdict

from xentcheck.core.metrics import BAD_VERDICTS
from xentcheck.core.records import Result

_COUNT = re.compile(r"\b\d+ / \d+ ")  # "3 / 20 out of tolerance" -> "out of tolerance"


def kind(record: Result) -> str:
    """What went wrong, without the numbers that differ from case to case."""
    reasons = record.reasons or []
    text = reasons[0] if reasons else str(record.verdict)
    text = _COUNT.sub("", text.split(";")[0]).split(", e.g.")[0].split("\n")[0]
    text = re.sub(r"\s*\([^)]*\)$", "", text)  # a trailing detail such as "(label 10 with K = 10)"
    return text[:160]


def _options(case_id: str) -> str:
    return case_id.partition("_opt-")[2]


def group(records: list[Result], verdicts: frozenset[str] = BAD_VERDICTS) -> list[dict]:
    """The results with one of `verdicts` (the bad ones; {"widened"}: those computed in a wider
    dtype, listed apart) grouped by (backend, implementation, kind), the largest groups first."""
    groups: dict[tuple, list[Result]] = defaultdict(list)
    for r in records:
        if r.verdict in verdicts:
            groups[(r.backend, r.impl or "", kind(r))].append(r)
    out = []
    for (backend, impl, what), rs in groups.items():
        cases = list(dict.fromkeys(str(r.case_id) for r in rs))
        out.append({"backend": backend, "impl": impl, "kind": what, "results": len(rs),
                    "verdicts": sorted({str(r.verdict) for r in rs}),
                    "modes": sorted({r.mode or "" for r in rs}),
                    "dtypes": sorted({str(r.dtype) for r in rs}),
                    "options": sorted({_options(c) or "none" for c in cases}),
                    "cases": cases})
    out.sort(key=lambda g: (-g["results"], g["backend"], g["impl"], g["kind"]))
    return out
