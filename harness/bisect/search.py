"""Where the verdict changes along a list of versions, the first known good and the last known bad.

`bisect` halves the range between the last good and the first bad version known so far, as `git
bisect` does: about log2 N tests. A version that cannot be tested (a skip) is passed over for the
untested version nearest the middle; when only skips remain between the two, the transition lies
somewhere among them and the result says so. `sweep` tests every version instead, which also
shows a second transition (a fix, then the bug again) that bisection cannot see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Test = Callable[[int], str]  # index -> "good", "bad" or "skip"


@dataclass
class Transition:
    before: int  # the last version with the old verdict
    after: int  # the first version with the new one
    kind: str  # "regression" (good -> bad) or "fix" (bad -> good)
    skipped: list[int] = field(default_factory=list)  # untestable versions between them: the change may be there


def next_probe(verdicts: dict[int, str], lo: int, hi: int) -> int | None:
    """The untested index between lo and hi nearest their middle (the lower of two as near)."""
    untested = [i for i in range(lo + 1, hi) if i not in verdicts]
    if not untested:
        return None
    middle = (lo + hi) // 2
    return min(untested, key=lambda i: (abs(i - middle), i))


def bisect(n: int, test: Test, verdicts: dict[int, str]) -> Transition:
    """The good -> bad transition between index 0 (good) and n - 1 (bad), whose verdicts are in
    `verdicts` already; every verdict found is added to it."""
    if verdicts.get(0) != "good" or verdicts.get(n - 1) != "bad":
        raise ValueError("bisect needs a good first and a bad last version")
    lo, hi = 0, n - 1
    while (i := next_probe(verdicts, lo, hi)) is not None:
        verdicts[i] = test(i)
        if verdicts[i] == "good":
            lo = i
        elif verdicts[i] == "bad":
            hi = i
    return Transition(lo, hi, "regression", list(range(lo + 1, hi)))


def transitions(verdicts: dict[int, str]) -> list[Transition]:
    """Every change of verdict between consecutive tested versions, in order."""
    judged = sorted(i for i, v in verdicts.items() if v != "skip")
    out = []
    for a, b in zip(judged, judged[1:]):
        if verdicts[a] != verdicts[b]:
            out.append(Transition(a, b, "regression" if verdicts[b] == "bad" else "fix", list(range(a + 1, b))))
    return out


def sweep(n: int, test: Test, verdicts: dict[int, str]) -> list[Transition]:
    """Test every version (oldest first) and return every transition."""
    for i in range(n):
        if i not in verdicts:
            verdicts[i] = test(i)
    return transitions(verdicts)
