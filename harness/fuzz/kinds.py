"""The kind of a finding: who computed it (backend, implementation, mode), its verdict, and what
went wrong with the numbers left out, so that the same bug on another shape, dtype or value counts
once. "loss: 3 / 16 out of tolerance; greatest absolute difference 0.5, ..." and "loss: 1 / 1 out
of tolerance; greatest absolute difference 2e+03, ..." are one kind ("loss: out of tolerance").
What went wrong is report.md's wording (xentcheck.reports.kinds), so a campaign's kinds and a
run's Findings table group alike (the campaign's also by mode and verdict).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace

from xentcheck.core.metrics import BAD_VERDICTS
from xentcheck.core.records import Result

# a number not glued to a word (float32, x100 and the e+4 of scale1e+4 keep theirs), or nan / inf
_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z0-9_])"
                     r"|(?<![A-Za-z/])[-+]?(?:nan|inf)(?![A-Za-z])")  # not the "NaN/inf" of a reason
_RUN = re.compile(r"([\[(])#(?:,\s*#)*,?([\])])")  # "(#, #, #)", "(#,)": shapes and indices of any rank


def strip_numbers(text: str) -> str:
    """`text` with every number (and nan/inf) written as '#', a list of them as one '#'."""
    return _RUN.sub(r"\1#\2", _NUMBER.sub("#", text))


def reason_of(record: Result) -> str:
    """What went wrong as report.md's Findings table words it (xentcheck.reports.kinds.kind: the
    first reason's first clause, its counts taken out), with its case id and numbers left out too."""
    from xentcheck.reports.kinds import kind

    own = replace(record, reasons=[r.replace(str(record.case_id), "<case>") for r in record.reasons or []])
    return strip_numbers(kind(own))


def key_of(record: Result) -> str:
    """The kind's key: 'backend impl mode verdict: reasons' (a bad result's)."""
    return f"{record.backend} {record.impl or ''} {record.mode or ''} {record.verdict}: " \
           f"{reason_of(record)}"


def elements(case_id: str) -> int:
    """N x d1 x ... x K of a case, the measure of 'smallest'."""
    from xentcheck.core.cases import Case

    c = Case.from_id(case_id)
    return c.rows * c.k


@dataclass
class Kind:
    key: str
    backend: str
    impl: str
    mode: str
    verdict: str
    reason: str  # the reasons with the numbers left out
    example: list[str]  # one record's reasons in full (the first found)
    first: dict  # {"case_id", "result_id", "batch"}: where it was first found
    smallest: dict  # the same for its case with the fewest elements
    cases: list[str] = field(default_factory=list)  # every case id showing it, in the order found
    repro: str | None = None  # the first result's repro script, relative to the campaign folder
    shrunk: dict | None = None  # {"script", "case_id", "note"}: the shrunk repro, or why there is none

    def to_dict(self) -> dict:
        return asdict(self)


class Findings:
    """The kinds found so far, by key, in the order found. Adding a record twice changes nothing
    (a resumed batch's results are read again)."""

    def __init__(self, kinds: list[dict] | None = None):
        self.kinds: dict[str, Kind] = {d["key"]: Kind(**d) for d in kinds or []}

    def add(self, record: Result, batch: str, result_id: str) -> Kind | None:
        """Count a result; returns its Kind when the kind is new, else None (also for good results)."""
        if record.verdict not in BAD_VERDICTS:
            return None
        key = key_of(record)
        case_id = str(record.case_id)
        where = {"case_id": case_id, "result_id": result_id, "batch": batch}
        kind = self.kinds.get(key)
        if kind is None:
            kind = Kind(key, str(record.backend), record.impl or "", record.mode or "", str(record.verdict),
                        reason_of(record), list(record.reasons or []), where, dict(where), [case_id])
            self.kinds[key] = kind
            return kind
        if case_id not in kind.cases:
            kind.cases.append(case_id)
            if elements(case_id) < elements(kind.smallest["case_id"]):
                kind.smallest = where
                kind.shrunk = None  # shrink the new smallest case (after this batch)
        return None

    def to_list(self) -> list[dict]:
        return [k.to_dict() for k in self.kinds.values()]
