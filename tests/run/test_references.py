"""The parent's reference cache (xentcheck.run.references): a byte budget, least recently used out,
and a run whose references were dropped and computed again gives the same results."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from xentcheck.run import runner as runner_mod
from xentcheck.run.references import References, nbytes


@dataclass
class _Ref:
    loss: np.ndarray
    grads: dict = field(default_factory=dict)
    note: str = ""


def test_nbytes_counts_the_arrays_in_fields_dicts_and_lists():
    ref = _Ref(np.zeros(3), {"grad": np.zeros((4, 5), np.float32), "parts": [np.zeros(2, np.int8)]}, "x")
    assert nbytes(ref) == 3 * 8 + 20 * 4 + 2
    assert nbytes(None) == 0 and nbytes("text") == 0


def test_past_the_budget_the_least_recently_used_go_and_come_back_on_demand():
    calls: list[tuple[int, str]] = []

    def make(ci, key, size):
        def compute():
            calls.append((ci, key))
            return np.zeros(size, np.uint8)
        return compute

    refs = References(budget=250)
    a = refs.get(0, "plain", make(0, "plain", 100))
    refs.get(1, "plain", make(1, "plain", 100))
    assert refs.get(0, "plain", make(0, "plain", 100)) is a  # a hit: 0 is now the most recent
    refs.get(2, "plain", make(2, "plain", 100))  # 300 > 250: case 1, the least recent, goes
    assert set(refs.entries) == {(0, "plain"), (2, "plain")} and refs.held == 200
    refs.get(1, "plain", make(1, "plain", 100))  # computed again
    assert calls == [(0, "plain"), (1, "plain"), (2, "plain"), (1, "plain")] and refs.computed == 4
    big = refs.get(3, "plain", make(3, "plain", 1000))  # larger than the budget: kept alone
    assert list(refs.entries) == [(3, "plain")] and refs.held == 1000 and big.size == 1000
    refs.drop_case(3)
    assert refs.entries == {} and refs.held == 0


def test_a_run_that_computes_references_again_gives_the_same_results(tmp_path, monkeypatch):
    """numpy runs ahead of a slow backend; with a budget of 0 bytes every case's reference is
    computed again for the slow backend's answer: results.jsonl is the same, timing aside."""
    from tests.conftest import ROOT, run_here
    made: list[References] = []

    def run(name: str, budget: int | None) -> list[dict]:
        class Tracked(References):
            def __init__(self, default_budget: int):
                super().__init__(default_budget if budget is None else budget)
                made.append(self)
        monkeypatch.setattr(runner_mod, "References", Tracked)
        out = tmp_path / name
        proc = run_here("run", "--backends", "numpy", "--backend-file",
                        str(ROOT / "tests" / "helpers" / "toy_backends" / "slow.py"), "--dtypes", "float32",
                        "--cases", "8", "--out", str(out), "--no-progress", env={"XENTCHECK_TEST_DELAY": "0.2"})
        assert proc.returncode in (0, 1), proc.stderr
        recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        for r in recs:
            r.pop("timing", None)
        return recs

    kept, dropped = run("kept", None), run("dropped", 0)
    assert kept == dropped and len(kept) == 16
    assert made[0].computed == 8 and made[1].computed > 8  # the second run recomputed some
