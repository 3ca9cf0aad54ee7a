"""The runner keeps each worker fed (one case computing, AHEAD more sent), so a worker never waits
for the parent's comparisons; a dead worker's unstarted cases are run again, in order."""

from __future__ import annotations

import shutil

import pytest

from xentcheck.core.cases import default_suite
from xentcheck.run.runner import AHEAD, RunConfig, Runner, _State


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


# --- helpers: a finished backend's slot goes to the backend with the most cases left ------------

def test_a_quitting_worker_lends_its_slot_to_the_busiest_backend(runners, monkeypatch):
    from xentcheck.run import runner as runner_mod
    cases = default_suite(["float32"])[:20]
    runner = Runner(RunConfig(backends=["numpy", "slow"], cases=cases, progress=False), emit=lambda rec: None)
    runners.append(runner)
    started = []
    monkeypatch.setattr(runner_mod.Worker, "start", lambda self: started.append(self.index))
    done, busy = FakeWorker(), FakeWorker()
    runner.states = [_State(done, info={"status": "ok"}, pending=[], backend=0),
                     _State(busy, info={"status": "ok"}, pending=list(range(2, 20)), backend=1)]
    runner._quit_if_done(runner.states[0])
    helper = runner.states[2]
    assert started == [2] and helper.helper and helper.backend == 1
    assert runner.states[1].pending == list(range(2, 11)) and helper.pending == list(range(11, 20))
    # a helper that is not the same backend (another version) hands its cases back
    runner.infos[1] = {"name": "slow", "version": "1"}
    helper.worker.kill = lambda: None
    runner._on_hello(helper, 1, {"op": "hello", "status": "ok", "name": "slow", "version": "2"})
    assert helper.quitting and helper.pending == [] and runner.states[1].pending == list(range(2, 20))


def test_an_idle_worker_takes_half_of_its_siblings_cases(runners):
    runner, st, worker = _runner(runners, 7)
    sibling = _State(FakeWorker(), info={"status": "ok"}, pending=[3, 4, 5, 6], helper=True)
    runner.states = [st, sibling]
    st.pending = []
    runner._quit_if_done(st)
    assert not st.quitting and sibling.pending == [3, 4]
    assert st.in_flight == 5 and st.queued == [6]


def test_a_slow_backend_gets_a_helper_and_every_result_once_in_order(tmp_path):
    import json

    from tests.conftest import ROOT, run_cli
    out = tmp_path / "run"
    proc = run_cli("run", "--backends", "numpy", "--backend-file", str(ROOT / "tests" / "helpers" / "toy_backends" / "slow.py"),
                   "--dtypes", "float32", "--cases", "24", "--out", str(out), "--no-progress",
                   env={"XENTCHECK_TEST_DELAY": "0.3"}, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    ids = [c.id for c in default_suite(["float32"])[:24]]
    assert [(r["case_id"], r["backend"]) for r in records] == [(c, b) for c in ids for b in ("numpy", "slow")]
    assert (out / "logs" / "worker-2.log").exists()  # numpy's slot went to a second worker of "slow"
    assert {r["verdict"] for r in records if r["backend"] == "slow" and r["n"] > 1} == {"pass"}
