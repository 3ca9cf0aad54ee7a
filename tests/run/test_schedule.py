"""The run's scheduling on its own (no processes): who gets which case, helpers, stealing, restarts;
and the canonical order of results whoever computed them."""

from __future__ import annotations

import random

import pytest

from xentcheck.core.records import Result
from xentcheck.run.ordering import Ordering
from xentcheck.run.schedule import AHEAD, HELPER_MIN_CASES, Quit, Restart, Schedule, Send, Slot, StartHelper


def _started(n_backends: int, n_cases: int, helpers: bool = True) -> Schedule:
    """Every backend's worker said hello ("ok")."""
    sched = Schedule(n_backends, n_cases, helpers)
    for w in range(n_backends):
        sched.said_hello(w, "ok")
    return sched


def test_a_worker_gets_its_case_and_ahead_more_and_the_next_on_each_answer():
    sched = _started(1, 5)
    assert sched.dispatch(0) == [Send(0, 0, True)] + [Send(0, 1 + i, False) for i in range(AHEAD)]
    assert sched.dispatch(0) == []  # fed: nothing more until it answers
    assert sched.answered(0) == (0, 1)  # case 1, queued behind it, is the one it computes now
    assert sched.dispatch(0) == [Send(0, 1 + AHEAD, False)]
    slot = sched.slots[0]
    assert slot.in_flight == 1 and slot.queued == list(range(2, 2 + AHEAD)) and slot.pending == list(range(2 + AHEAD, 5))


def test_a_crash_runs_the_queued_cases_again_first_and_in_order():
    sched = _started(1, 5)
    sched.dispatch(0)  # 0 computing, 1 queued
    assert sched.restart(0) == [Restart(0)]  # case 0 was recorded crashed by the runner
    slot = sched.slots[0]
    assert slot.in_flight is None and slot.queued == [] and slot.pending == [1, 2, 3, 4]
    assert slot.status is None and sched.waiting(0)  # the new process owes its hello
    # a worker with nothing left is not started again
    sched.take_pending(0)
    assert sched.restart(0) == []


def test_a_worker_with_nothing_left_quits_once():
    sched = _started(1, 1)
    sched.dispatch(0)
    assert sched.answered(0) == (0, None)
    assert sched.when_idle(0) == [Quit(0)]
    assert sched.when_idle(0) == []
    assert sched.slots[0].quitting


def test_a_finished_backends_slot_goes_to_the_backend_with_most_cases_left():
    sched = _started(3, 40)
    sched.slots[0].pending = []
    sched.slots[1].pending = list(range(10, 30))  # 20 left
    sched.slots[2].pending = list(range(30, 40))  # 10 left
    actions = sched.when_idle(0)
    assert actions == [Quit(0), StartHelper(3, 1)]
    helper = sched.slots[3]
    assert helper.helper and helper.backend == 1 and helper.status is None
    assert sched.slots[1].pending == list(range(10, 20)) and helper.pending == list(range(20, 30))
    # one helper per backend: the next finished slot goes to backend 2 (10 >= HELPER_MIN_CASES)...
    sched.slots[1].pending = []
    sched.slots[1].in_flight = None
    sched.said_hello(3, "ok")
    assert sched.lend_slot() == [StartHelper(4, 2)]
    assert sched.slots[2].pending == list(range(30, 35)) and sched.slots[4].pending == list(range(35, 40))


def test_no_helper_for_too_few_cases_nor_when_helpers_are_off():
    sched = _started(3, 40)
    sched.slots[0].pending = []
    sched.slots[1].pending = list(range(HELPER_MIN_CASES - 1))
    sched.slots[2].pending = list(range(HELPER_MIN_CASES - 1))
    assert sched.when_idle(0) == [Quit(0)]
    off = _started(2, 40, helpers=False)
    off.slots[0].pending = []
    assert off.when_idle(0) == [Quit(0)] and len(off.slots) == 2


def test_no_helper_for_a_backend_whose_worker_has_not_said_ok():
    sched = Schedule(2, 40)
    sched.said_hello(0, "ok")
    sched.slots[0].pending = []
    assert sched.when_idle(0) == [Quit(0)]  # backend 1 has 40 cases, but its worker has not started
    assert len(sched.slots) == 2


@pytest.mark.parametrize("main_quit", [False, True])
def test_a_helper_that_fails_to_start_hands_its_cases_back_in_order(main_quit):
    sched = _started(2, 40)
    sched.slots[0].pending = []
    sched.slots[1].pending = list(range(4, 40))
    sched.when_idle(0)
    assert sched.slots[1].pending == list(range(4, 22)) and sched.slots[2].pending == list(range(22, 40))
    if main_quit:  # backend 1's own worker finished its half and quit meanwhile
        sched.slots[1].pending = []
        sched.slots[1].quitting = True
    else:
        sched.dispatch(1)  # 4 computing, 5 queued
    actions = sched.retire_helper(2)
    helper, main = sched.slots[2], sched.slots[1]
    assert helper.quitting and helper.pending == [] and helper.in_flight is None
    if main_quit:
        assert actions == [Restart(1)] and not main.quitting and main.pending == list(range(22, 40))
    else:
        assert actions == [] and main.in_flight == 4 and main.pending == list(range(6, 40))


def test_a_helper_retired_mid_run_gives_back_its_queued_and_computing_cases():
    sched = _started(2, 40)
    sched.slots[0].pending = []
    sched.slots[1].pending = list(range(20, 40))
    sched.when_idle(0)  # helper 2 takes 30..39
    sched.said_hello(2, "ok")
    sched.dispatch(2)  # 30 computing, 31 queued
    sched.retire_helper(2)
    assert sched.slots[1].pending == list(range(20, 40))


def test_an_idle_worker_takes_half_of_its_siblings_cases():
    sched = _started(1, 7)
    sched.slots.append(Slot(0, pending=[3, 4, 5, 6], status="ok", helper=True))
    sched.slots[0].pending = []
    actions = sched.when_idle(0)
    assert actions == [Send(0, 5, True), Send(0, 6, False)]
    assert sched.slots[1].pending == [3, 4] and not sched.slots[0].quitting


def _simulate(seed: int, helpers: bool, n_backends: int = 3, n_cases: int = 40) -> tuple[list[dict], set[int]]:
    """A run with workers answering in a random order (backend 2 ten times slower than the others):
    the records written, and which workers computed something."""
    rng = random.Random(seed)
    sched = Schedule(n_backends, n_cases, helpers)
    written: list[dict] = []
    order = Ordering(n_cases, n_backends, written.append)
    computed_by: set[int] = set()

    def act(actions) -> None:
        for a in actions:
            if isinstance(a, StartHelper):  # it starts and says hello at once
                sched.said_hello(a.worker, "ok")
                act(sched.dispatch(a.worker))

    for w in range(n_backends):
        sched.said_hello(w, "ok")
        act(sched.dispatch(w))
    while not order.complete:
        busy = [w for w, s in enumerate(sched.slots) if s.in_flight is not None]
        w = rng.choices(busy, weights=[1 if sched.slots[b].backend == 2 else 10 for b in busy])[0]
        ci, _ = sched.answered(w)
        act(sched.dispatch(w))
        bi = sched.slots[w].backend
        order.add(ci, bi, [{"case": ci, "backend": bi}])
        computed_by.add(w)
        act(sched.when_idle(w))
    return written, computed_by


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_order_of_results_does_not_depend_on_who_computed_them(seed):
    with_helpers, workers = _simulate(seed, helpers=True)
    alone, workers_alone = _simulate(seed, helpers=False)
    canonical = [{"case": c, "backend": b} for c in range(40) for b in range(3)]
    assert with_helpers == canonical and alone == canonical
    assert workers_alone == {0, 1, 2} and max(workers) >= 3  # a helper computed some of the slow backend's cases


def test_prior_results_take_their_place_and_are_not_written_again():
    written: list[dict] = []
    prior = [Result(case_id="c0", backend="b", impl="i", mode="m", other={"v": 1}),
             Result(case_id="c1", backend="b", impl="i", mode="x")]  # c1 cut short: "m" missing
    order = Ordering(2, 1, written.append, prior)
    assert order.claim_prior("c1", "b", {("i", "m")}) is None  # run again
    recs = order.claim_prior("c0", "b", {("i", "m")})
    assert recs == prior[:1]
    order.add(1, 0, [{"new": 1}])
    assert written == [] and not order.complete  # slot 0 is not done yet
    order.add(0, 0, recs, replayed=True)
    assert written == [{"new": 1}] and order.records == [prior[0], {"new": 1}] and order.complete


def test_an_interrupted_run_keeps_its_results_out_of_order_and_unclaimed_prior_ones():
    written: list[dict] = []
    prior = [Result(case_id="c9", backend="renamed", impl="i", mode="m")]
    order = Ordering(3, 1, written.append, prior)
    order.add(2, 0, [{"slot": 2}])
    order.close(interrupted=True)
    assert written == [{"slot": 2}] and order.records == [{"slot": 2}, prior[0]]
