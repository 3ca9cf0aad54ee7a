"""The runner keeps each worker fed (one case computing, AHEAD more sent), so a worker never waits
for the parent's comparisons; a dead worker's unstarted cases are run again, in order."""

from __future__ import annotations

import shutil

import pytest

from harness.cases import default_suite
from harness.runner import AHEAD, RunConfig, Runner, _State


class FakeWorker:
    """Records what the runner sends instead of talking to a process."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.generation = 1

    def send(self, msg: dict) -> bool:
        self.sent.append(msg)
        return True


@pytest.fixture
def runners():
    made: list[Runner] = []
    yield made
    for r in made:
        shutil.rmtree(r.scratch, ignore_errors=True)


def _runner(made: list[Runner], n_cases: int) -> tuple[Runner, _State, FakeWorker]:
    cases = default_suite(["float32"])[:n_cases]
    runner = Runner(RunConfig(backends=["numpy"], cases=cases, progress=False), emit=lambda rec: None)
    made.append(runner)
    worker = FakeWorker()
    st = _State(worker, info={"status": "ok"}, pending=list(range(n_cases)))
    return runner, st, worker


def test_worker_gets_the_next_case_before_it_answers(runners):
    runner, st, worker = _runner(runners, 5)
    runner._dispatch(st, 0)
    assert st.in_flight == 0 and st.queued == list(range(1, 1 + AHEAD))
    assert [m["case_id"] for m in worker.sent] == [runner.config.cases[i].id for i in range(1 + AHEAD)]
    # the answer to case 0: case 1 is now the one computing (its timeout runs from here), and one more goes out
    assert runner._next_in_flight(st) == 0
    assert st.in_flight == 1 and st.deadline > 0
    runner._dispatch(st, 0)
    assert st.queued == list(range(2, 2 + AHEAD)) and len(worker.sent) == 2 + AHEAD


def test_a_dead_workers_queued_cases_run_again_in_order(runners):
    runner, st, worker = _runner(runners, 5)
    runner._dispatch(st, 0)
    st.worker.start = lambda: None  # the replacement process
    runner._restart(st, 0)  # case 0 was recorded crashed (or timed out) by the caller
    assert st.in_flight is None and st.queued == []
    assert st.pending == list(range(1, 5))


def test_a_worker_with_nothing_left_is_told_to_quit_once(runners):
    runner, st, worker = _runner(runners, 1)
    runner._dispatch(st, 0)
    runner._next_in_flight(st)
    runner._quit_if_done(st)
    runner._quit_if_done(st)
    assert [m["op"] for m in worker.sent] == ["run", "quit"] and st.quitting
    runner._on_exit(st, 0)  # its EOF: expected, no crash recorded
    assert runner.done == {}
