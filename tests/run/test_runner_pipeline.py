"""The runner carries out the schedule's decisions on its workers: each worker is kept fed (one case
computing, AHEAD more sent), told to quit once, and a finished backend's slot goes to a helper
(tests/run/test_schedule.py has the decisions themselves)."""

from __future__ import annotations

import queue
import shutil

import pytest

from xentcheck.core.cases import default_suite
from xentcheck.run import runner as runner_mod
from xentcheck.run.plan import RunPlan
from xentcheck.run.processes import Worker
from xentcheck.run.protocol import Hello, RunRequest
from xentcheck.run.runner import Runner, RunOptions
from xentcheck.run.schedule import AHEAD


class FakeWorker(Worker):
    """Records what the runner sends instead of talking to a process."""

    def __init__(self, index: int = 0) -> None:
        super().__init__(index, "fake", queue.Queue(), None)
        self.generation = 1
        self.sent: list[dict] = []

    def send(self, msg: dict) -> bool:
        self.sent.append(msg)
        return True

    def kill(self) -> None:
        pass


@pytest.fixture
def runners():
    made: list[Runner] = []
    yield made
    for r in made:
        shutil.rmtree(r.scratch, ignore_errors=True)


def _runner(made: list[Runner], n_cases: int, backends: tuple[str, ...] = ("numpy",)) -> Runner:
    """A runner whose backends' workers are fakes that said hello."""
    plan = RunPlan(backends=list(backends), dtypes=["float32"], seed=3, cases=default_suite(["float32"])[:n_cases])
    runner = Runner(plan, emit=lambda rec: None, options=RunOptions(progress=False))
    made.append(runner)
    for w in range(len(backends)):
        runner.workers.append(FakeWorker(w))
        runner.schedule.said_hello(w, "ok")
    return runner


def test_worker_gets_the_next_case_before_it_answers(runners):
    runner = _runner(runners, 5)
    worker = runner.workers[0]
    runner._dispatch(0)
    ids = [c.id for c in runner.config.cases]
    assert [m["case_id"] for m in worker.sent] == ids[:1 + AHEAD]
    request = RunRequest.from_dict(worker.sent[0])
    rtol, atol = runner.config.tolerances.get(runner.config.cases[0].dtype, "grad")
    assert (request.seed, request.device, request.rtol, request.atol) == (3, "cpu", rtol, atol)
    assert request.out == str(runner.scratch / "0-0")
    assert worker.deadline == pytest.approx(worker.started_at + runner.config.case_timeout)


def test_a_worker_with_nothing_left_is_told_to_quit_once(runners):
    runner = _runner(runners, 1)
    worker = runner.workers[0]
    runner._dispatch(0)
    runner.schedule.answered(0)
    runner._act(runner.schedule.when_idle(0))
    runner._act(runner.schedule.when_idle(0))
    assert [m["op"] for m in worker.sent] == ["run", "quit"]
    runner._on_exit(0, 0)  # its EOF: expected, no crash recorded
    assert runner.ordering.done == {} and runner.records == []


def test_a_quitting_worker_lends_its_slot_to_the_busiest_backend(runners, monkeypatch):
    runner = _runner(runners, 20, ("numpy", "slow"))
    started = []
    monkeypatch.setattr(runner_mod.Worker, "start", lambda self: started.append(self.index))
    runner.schedule.slots[0].pending = []
    runner.schedule.slots[1].pending = list(range(2, 20))
    runner._act(runner.schedule.when_idle(0))
    assert runner.workers[0].sent == [{"op": "quit"}]
    helper = runner.schedule.slots[2]
    assert started == [2] and runner.workers[2].spec == "slow" and helper.helper and helper.backend == 1
    assert runner.workers[2].deadline > 0  # its hello is awaited within the startup timeout
    assert runner.schedule.slots[1].pending == list(range(2, 11)) and helper.pending == list(range(11, 20))
    # a helper that is not the same backend (another version) hands its cases back
    runner.infos[1] = {"name": "slow", "version": "1"}
    runner.workers[2].kill = lambda: None
    runner._on_hello(2, 1, Hello("ok", name="slow", version="2"))
    assert helper.quitting and helper.pending == [] and runner.schedule.slots[1].pending == list(range(2, 20))


def test_a_slow_backend_gets_a_helper_and_every_result_once_in_order(tmp_path):
    import json

    from tests.conftest import ROOT, run_here
    out = tmp_path / "run"
    proc = run_here("run", "--backends", "numpy", "--backend-file", str(ROOT / "tests" / "helpers" / "toy_backends" / "slow.py"),
                   "--dtypes", "float32", "--cases", "24", "--out", str(out), "--no-progress",
                   env={"XENTCHECK_TEST_DELAY": "0.3"})
    assert proc.returncode in (0, 1), proc.stderr
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    ids = [c.id for c in default_suite(["float32"])[:24]]
    assert [(r["case_id"], r["backend"]) for r in records] == [(c, b) for c in ids for b in ("numpy", "slow")]
    assert (out / "logs" / "worker-2.log").exists()  # numpy's slot went to a second worker of "slow"
    assert {r["verdict"] for r in records if r["backend"] == "slow" and r["n"] > 1} == {"pass"}
