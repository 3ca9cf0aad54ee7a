"""A run's results in their canonical order (case, then backend), whoever computed them and when.

Each (case, backend) slot's records arrive when its worker answers; `Ordering` hands them to
`emit` (results.jsonl) as soon as every slot before them is complete, so the file is
deterministic and grows while the run goes on. A resumed run's earlier results (`prior`) are
claimed per slot once the backend says who it is, take their place in the order, and are not
emitted again (they are in results.jsonl already). `records` holds every result, prior ones
included, in the canonical order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from xentcheck.core.records import Result


class Ordering:
    def __init__(self, n_cases: int, n_backends: int, emit: Callable[[Result], None], prior: Iterable[Result] = ()):
        self.n_backends = n_backends
        self.total = n_cases * n_backends
        self.emit = emit
        # prior results per (case id, backend name) slot, one per (impl, mode); a repeated one keeps the last
        self.prior: dict[tuple[str, str], list[Result]] = {}
        for r in prior:
            slot = self.prior.setdefault((r.case_id or "", r.backend or ""), [])
            slot[:] = [x for x in slot if (x.impl, x.mode) != (r.impl, r.mode)] + [r]
        self.replayed: set[tuple[int, int]] = set()  # slots taken from prior: not emitted again
        self.records: list[Result] = []  # every result, prior ones included, in canonical order
        self.done: dict[tuple[int, int], list[Result]] = {}  # finished slots waiting for an earlier one
        self.cursor = 0  # slot index (case * n_backends + backend) of the first one not yet written

    @property
    def complete(self) -> bool:
        return self.cursor >= self.total

    def add(self, ci: int, bi: int, recs: list[Result], replayed: bool = False) -> None:
        """Slot (case ci, backend bi) is finished; write every finished slot up to the first open one."""
        if replayed:
            self.replayed.add((ci, bi))
        self.done[(ci, bi)] = recs
        while self.cursor < self.total:
            key = divmod(self.cursor, self.n_backends)
            if key not in self.done:
                break
            self._emit(key)
            self.cursor += 1

    def _emit(self, key: tuple[int, int]) -> None:
        recs = self.done.pop(key)
        self.records.extend(recs)
        if key not in self.replayed:  # prior results are in results.jsonl already
            for rec in recs:
                self.emit(rec)

    def claim_prior(self, case_id: str, backend: str, expected: set[tuple[str, str]]) -> list[Result] | None:
        """The earlier run's records of the slot when they hold every expected (impl, mode); a slot cut
        short by a kill (some variants written, not all) is dropped and run again (None)."""
        recs = self.prior.pop((case_id, backend), None)
        if recs is None or not expected <= {(r.impl, r.mode) for r in recs}:
            return None
        return recs

    def close(self, interrupted: bool) -> None:
        """The run ended: an interrupted one keeps what finished, even out of order; prior results no
        backend claimed (names changed?) are kept, never dropped."""
        if interrupted:
            for key in sorted(self.done):
                self._emit(key)
        self.records.extend(r for recs in self.prior.values() for r in recs)
        self.prior = {}
