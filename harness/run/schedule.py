"""Which worker computes which case: the run's scheduling as state and decisions, no processes.

Each backend starts with one worker holding every case, in order. A worker is kept fed: the
case it computes plus AHEAD more sent down its stdin, so it starts the next case the moment it
answers, not once the parent has compared the answer. A worker with nothing left takes half of
a sibling's queue (its backend's other worker), else quits, and its slot goes to the backend
with the most cases left (a helper: a second worker of that backend, see Schedule.lend_slot).
A worker that crashes or times out is replaced, and the cases it had been sent but not started
run again, first. Results do not depend on which worker computed them (ordering.Ordering
writes them in the canonical order), so none of this changes what a run writes.

The runner carries out the decisions, returned as actions: Send (a case to a worker), Quit,
StartHelper (a new worker, its cases already in its slot) and Restart (start a worker's
process again).
"""

from __future__ import annotations

from dataclasses import dataclass, field

AHEAD = 1  # cases sent to a worker beyond the one it computes
HELPER_MIN_CASES = 8  # a backend with fewer cases left gets no helper: its startup would not pay off


@dataclass
class Slot:
    """Where one worker stands: its cases not yet sent, the one it computes, those sent after it."""
    backend: int  # index of its backend in the plan's backends
    pending: list[int] = field(default_factory=list)
    in_flight: int | None = None  # the case the worker is computing
    queued: list[int] = field(default_factory=list)  # sent after it, waiting in the worker's stdin
    status: str | None = None  # its hello's status ("ok", "missing", "broken"); None until it says hello
    quitting: bool = False  # nothing left for it: told to quit (or retired), its exit is expected
    helper: bool = False  # a second worker of the backend, started on a finished backend's slot

    @property
    def busy(self) -> bool:
        """It has something to do (a broken or missing backend's worker has not)."""
        return self.status is None or bool(self.pending or self.queued) or self.in_flight is not None


@dataclass(frozen=True)
class Send:
    worker: int
    case: int
    computing: bool  # the case the worker computes now (its timeout runs from here), else queued behind it


@dataclass(frozen=True)
class Quit:
    worker: int


@dataclass(frozen=True)
class StartHelper:
    worker: int  # the new worker's index; its cases are in Schedule.slots[worker].pending
    backend: int


@dataclass(frozen=True)
class Restart:
    worker: int  # start the worker's process again: it has cases pending


Action = Send | Quit | StartHelper | Restart


class Schedule:
    """Every worker's slot, by worker index: one per backend (index = backend), helpers appended."""

    def __init__(self, n_backends: int, n_cases: int, helpers: bool = True):
        self.n_backends = n_backends
        self.helpers = helpers
        self.slots = [Slot(b, pending=list(range(n_cases))) for b in range(n_backends)]

    # --- a worker's own cases ------------------------------------------------------------

    def dispatch(self, w: int) -> list[Send]:
        """Keep worker w fed: the case it computes plus AHEAD more."""
        s, sends = self.slots[w], []
        while s.pending and (s.in_flight is None or len(s.queued) < AHEAD):
            ci = s.pending.pop(0)
            if s.in_flight is None:
                s.in_flight = ci
                sends.append(Send(w, ci, True))
            else:
                s.queued.append(ci)
                sends.append(Send(w, ci, False))
        return sends

    def answered(self, w: int) -> tuple[int, int | None]:
        """Worker w answered its case: the first queued one is the one it computes now.
        Returns (the answered case, the case it computes now or None)."""
        s = self.slots[w]
        ci, s.in_flight = s.in_flight, None
        assert ci is not None  # called only for a worker with a case in flight
        if s.queued:
            s.in_flight = s.queued.pop(0)
        return ci, s.in_flight

    def said_hello(self, w: int, status: str) -> None:
        self.slots[w].status = status

    def drop(self, w: int, ci: int) -> None:
        """Case ci needs no run on worker w (its result is known from an earlier run)."""
        self.slots[w].pending.remove(ci)

    def take_pending(self, w: int) -> list[int]:
        """Worker w's unsent cases, taken away (its backend cannot run them: they are recorded as such)."""
        s = self.slots[w]
        cases, s.pending = s.pending, []
        return cases

    def waiting(self, w: int) -> bool:
        """Worker w owes an answer (a case's result or its hello), so its deadline applies."""
        s = self.slots[w]
        return s.in_flight is not None or s.status is None

    # --- a worker with nothing left, helpers ---------------------------------------------

    def when_idle(self, w: int) -> list[Action]:
        """Worker w with nothing left to do takes half of a sibling's cases, else quits now, while the
        others run: its teardown (seconds for TensorFlow or JAX) and memory are not left to the end
        of the run, and its slot goes to a busy backend."""
        s = self.slots[w]
        if s.pending or s.in_flight is not None or s.quitting or s.status is None:
            return []
        donor = max(self._siblings(w), key=lambda d: len(d.pending), default=None)
        if donor is not None and len(donor.pending) >= 2:
            half = len(donor.pending) // 2
            s.pending, donor.pending = donor.pending[half:], donor.pending[:half]
            return list(self.dispatch(w))
        s.quitting = True
        return [Quit(w), *self.lend_slot()]

    def _siblings(self, w: int) -> list[Slot]:
        """The other live workers of w's backend."""
        me = self.slots[w]
        return [s for s in self.slots if s is not me and s.backend == me.backend and not s.quitting]

    def lend_slot(self) -> list[StartHelper]:
        """While fewer workers run than there are backends, the backend with the most cases left (at
        least HELPER_MIN_CASES, one helper at most, its own worker started and said ok) gets a helper,
        which takes the last half of its worker's cases. The run's cores would otherwise idle while
        one slow backend (JAX compiling op by op) finishes alone."""
        if not self.helpers:
            return []
        live = [s for s in self.slots if not s.quitting and s.busy]
        if len(live) >= self.n_backends:
            return []
        candidates = [s for s in live if not s.helper and s.status == "ok"
                      and not any(h.helper and h.backend == s.backend for h in live)
                      and len(s.pending) >= HELPER_MIN_CASES]
        if not candidates:
            return []
        donor = max(candidates, key=lambda s: len(s.pending))
        half = len(donor.pending) // 2
        take, donor.pending = donor.pending[half:], donor.pending[:half]
        self.slots.append(Slot(donor.backend, pending=take, helper=True))
        return [StartHelper(len(self.slots) - 1, donor.backend)]

    def retire_helper(self, w: int) -> list[Restart]:
        """Helper w did not start, or is not the same backend (its process is gone): its cases go back
        to its backend's worker, in order, which is started again if it had already quit."""
        s = self.slots[w]
        back = s.queued + ([] if s.in_flight is None else [s.in_flight]) + s.pending
        s.pending, s.queued, s.in_flight, s.quitting = [], [], None, True
        main = self.slots[s.backend]
        main.pending = sorted(main.pending + back)
        if main.quitting and main.pending:
            main.quitting = False
            return self.restart(s.backend)
        return []

    # --- a worker that died ---------------------------------------------------------------

    def restart(self, w: int) -> list[Restart]:
        """Worker w's process is gone (its case in flight already recorded): the cases sent to it but
        never started run again first, on a new process (none when nothing is left)."""
        s = self.slots[w]
        s.status, s.in_flight = None, None
        s.pending[:0], s.queued = s.queued, []
        return [Restart(w)] if s.pending else []
