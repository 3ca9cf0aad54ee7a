"""The gloo ranks' zygote (run/zygote.py): ranks forked from it give the results fresh interpreters
give; a zygote that ended is reported as the variant's crash and replaced; one whose imports
started a thread is not used; none of it outlives its worker."""

import importlib.util
import json
import os
import signal
import textwrap

import pytest

from tests.conftest import run_here
from tests.helpers.procs import descendants, wait_gone
from xentcheck.run import zygote
from xentcheck.run.ranks import ZYGOTE_ENV, _env

VOCAB_PAD = "scale1e+1_float64_16x999_tp2_index_mean_opt-ign"
DTENSOR, DP_ALL_REDUCE = "dtensor.loss_parallel_cross_entropy", "dp_all_reduce_global_count"  # torch's gloo variants
SPLIT = "scale1e+0_float32_16x100_dp2mb2_index_mean_opt-ign"


def _gloo_records(out):
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return {(r["case_id"], r["impl"]): r for r in recs if r["mode"] == "gloo"}


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_forked_ranks_give_what_fresh_interpreters_give(tmp_path):
    got = {}
    for flag in ("1", "0"):
        out = tmp_path / flag
        res = run_here("run", "--backends", "torch", "--impls", f"{DTENSOR},{DP_ALL_REDUCE}", "--case", VOCAB_PAD,
                       "--case", SPLIT, "--out", str(out), "--no-progress", "--no-repro", env={ZYGOTE_ENV: flag})
        assert res.returncode in (0, 1), res.stderr
        got[flag] = _gloo_records(out)
    assert got["1"].keys() == got["0"].keys() and len(got["1"]) == 2
    for key, forked in got["1"].items():
        fresh = got["0"][key]
        assert forked["verdict"] == fresh["verdict"] == "pass", key
        for part in ("loss", "grad"):  # the same ranks' arithmetic: the same numbers
            assert forked[part]["abs_err"] == fresh[part]["abs_err"], (key, part)


def _task(tmp_path):
    """A task of torch's data-parallel gloo variant on SPLIT, as problems/sharded/worker.py writes it."""
    from xentcheck.core.cases import Case
    from xentcheck.problems import problem_of
    from xentcheck.problems.sharded.worker import save_inputs
    case = Case.from_id(SPLIT)
    save_inputs(tmp_path / "inputs.npz", problem_of(case).make_inputs(case, 0))
    return {"backend": {"module": "xentcheck.backends.torch.ce", "cls": "TorchBackend"},
            "variant": [DP_ALL_REDUCE, "gloo"], "case_id": SPLIT, "inputs_file": str(tmp_path / "inputs.npz"),
            "load_inputs": "xentcheck.problems.sharded.worker:load_inputs", "device": "cpu", "preload": ["torch"]}


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
def test_a_zygote_that_ended_is_the_variants_crash_and_is_replaced(tmp_path):
    task = _task(tmp_path)
    z = zygote.zygote(("torch",), _env(2, False))
    assert z is not None
    assert z.run(task, 2, tmp_path, 60.0).status == "ok"
    os.kill(z.proc.pid, signal.SIGKILL)
    z.proc.wait()
    out = z.run(task, 2, tmp_path, 60.0)
    assert out.status == "crashed" and "run/zygote.py" in out.reason, out
    again = zygote.zygote(("torch",), _env(2, False))
    assert again is not None and again is not z and again.run(task, 2, tmp_path, 60.0).status == "ok"
    zygote.stop_all()
    assert again.proc.poll() is not None


def test_a_zygote_whose_imports_started_a_thread_is_not_used(tmp_path, monkeypatch):
    (tmp_path / "starts_a_thread.py").write_text(textwrap.dedent("""
        import threading, time
        threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
    """))
    env = {**_env(2, False), "PYTHONPATH": str(tmp_path)}
    before = descendants(os.getpid())
    assert zygote.zygote(("starts_a_thread",), env) is None
    assert not wait_gone(descendants(os.getpid()) - before, timeout=10)  # and it was stopped
    zygote.stop_all()
