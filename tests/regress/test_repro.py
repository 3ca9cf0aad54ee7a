"""Reproducers: repro/<id>.npz + a standalone script per failing result, `xentcheck repro`, --shrink."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, require, run_cli, run_here
from xentcheck.core.cases import Case, make_inputs
from xentcheck.core.records import Result
from xentcheck.problems.ce.reference import reference
from xentcheck.regress import repro

MASKED = "masked_float32_64x100_onehot_sum"  # torch probability targets: NaN loss (README)


def _run_script(path):
    res = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300, cwd="/")
    assert res.returncode == 0, res.stderr
    lines = {}
    for line in res.stdout.splitlines():
        head = line.split("[", 1)[0]
        if head in ("loss", "grad") and " framework " in line:
            parts = line.split()
            lines[head] = (float(parts[parts.index("framework") + 1]), float(parts[parts.index("reference") + 1]))
    return res.stdout, lines


def test_failing_results_get_a_standalone_repro_that_shows_the_discrepancy(tmp_path):
    out = tmp_path / "o"
    res = run_here("run", "--backends", "numpy,torch", "--case", MASKED, "--case", "scale1e+0_float32_16x10_index_mean",
                  "--out", str(out), "--no-progress")
    assert res.returncode == 1, res.stderr
    files = sorted(p.name for p in (out / "repro").iterdir())
    # only the failing result
    assert files == [f"torch.cross_entropy_probs.eager__{MASKED}.npz", f"torch.cross_entropy_probs.eager__{MASKED}.py"]
    script = out / "repro" / f"torch.cross_entropy_probs.eager__{MASKED}.py"
    text = script.read_text()
    assert "import torch" in text and "F.cross_entropy" in text and "harness" not in text.split('"""', 2)[2]
    stdout, vals = _run_script(script)
    assert np.isnan(vals["loss"][0]) and vals["loss"][1] > 0  # NaN loss, finite reference
    assert abs(vals["grad"][0] - vals["grad"][1]) < 1e-6  # the gradient is right
    data = np.load(out / "repro" / f"torch.cross_entropy_probs.eager__{MASKED}.npz")
    inputs = make_inputs(Case.from_id(MASKED), 0)
    assert np.array_equal(data["logits"], inputs.logits) and np.array_equal(data["labels"], inputs.labels)


def test_scripts_compute_under_the_numerics_settings_the_worker_ran_under(tmp_path, monkeypatch):
    """The worker's numerics variables (thread counts, oneDNN...) are recorded in its hello, and its
    script sets them, and unsets the others of their kind, before anything is imported: run from a
    shell with other settings, it prints the loss the run recorded, not the shell's."""
    monkeypatch.delenv("MKL_CBWR", raising=False)
    out = tmp_path / "o"
    case = "scale1e+0_float32_16x10_index_mean"
    res = run_cli("run", "--backend-file", str(ROOT / "tests/helpers/toy_backends/numerics_settings.py"),
                  "--case", case, "--out", str(out), "--no-progress",
                  env={"OMP_NUM_THREADS": "2", "TF_ENABLE_ONEDNN_OPTS": "1"})
    assert res.returncode == 1, res.stderr  # off by 1e-3 x 2 + 1e-2
    recorded = json.loads((out / "environment.json").read_text())["backends"]["numerics-settings"]["numerics_env"]
    assert recorded["OMP_NUM_THREADS"] == "2" and recorded["TF_ENABLE_ONEDNN_OPTS"] == "1"
    assert recorded["XLA_FLAGS"].startswith("--xla_cpu_multi_thread_eigen=false") and "MKL_CBWR" not in recorded
    (rec,) = [Result.from_dict(json.loads(line)) for line in (out / "results.jsonl").read_text().splitlines()]
    script = out / "repro" / f"{repro.result_id(rec)}.py"
    shell = {**os.environ, "OMP_NUM_THREADS": "5", "TF_ENABLE_ONEDNN_OPTS": "0", "MKL_CBWR": "COMPATIBLE"}
    ran = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd="/", env=shell)
    assert ran.returncode == 0, ran.stderr
    worst = next(line for line in ran.stdout.splitlines() if line.startswith("loss") and " framework " in line)
    assert float(worst.split()[2]) == rec.metrics["loss"].worst_actual, (worst, rec.metrics["loss"])
    assert "OMP_NUM_THREADS='2'" in ran.stdout and "TF_ENABLE_ONEDNN_OPTS='1'" in ran.stdout
    # a script of a run that recorded no settings (none in its summary) leaves the shell's
    c = Case.from_id(case)
    x = make_inputs(c, 0)
    _, bare = repro.write(tmp_path / "bare", rec, x, c, reference(c, x),
                          spec=repro.spec_for(rec, json.loads((out / "summary.json").read_text())))
    ran = subprocess.run([sys.executable, str(bare)], capture_output=True, text=True, timeout=300, cwd="/", env=shell)
    worst = next(line for line in ran.stdout.splitlines() if line.startswith("loss") and " framework " in line)
    assert float(worst.split()[2]) != rec.metrics["loss"].worst_actual and "not recorded" in ran.stdout


def test_numerics_of_a_result_is_its_workers_else_the_runs():
    rec = Result(backend="tensorflow")
    hello = {"name": "tensorflow", "numerics_env": {"TF_ENABLE_ONEDNN_OPTS": "0", "OMP_NUM_THREADS": "1"}}
    run_env = {"numerics_env": {"OMP_NUM_THREADS": "4"}}
    assert repro.numerics_of({"backends": [hello], "environment": run_env}, rec) == hello["numerics_env"]
    assert repro.numerics_of({"backends": [{"name": "tensorflow"}], "environment": run_env}, rec) == {"OMP_NUM_THREADS": "4"}
    assert repro.numerics_of({"backends": [hello]}, Result(backend="jax")) is None


def test_repro_command_reruns_and_shrinks(tmp_path):
    out = tmp_path / "o"
    run_here("run", "--backends", "torch", "--case", MASKED, "--out", str(out), "--no-progress", "--no-repro")
    assert not (out / "repro").exists()
    res = run_cli("repro", MASKED, "--from", str(out), "--shrink")
    assert res.returncode == 1, res.stdout + res.stderr
    assert f"torch.cross_entropy_probs.eager__{MASKED}: nonfinite (recorded: nonfinite)" in res.stdout
    shrunk = out / "repro" / f"torch.cross_entropy_probs.eager__{MASKED}-shrunk.npz"
    data = np.load(shrunk)
    n, k = data["logits"].shape
    assert n == 1 and k <= 4  # one row, a few classes, and still NaN
    assert np.isinf(data["logits"]).any()  # the masked class is what matters
    _, vals = _run_script(out / "repro" / f"torch.cross_entropy_probs.eager__{MASKED}-shrunk.py")
    assert np.isnan(vals["loss"][0]) and np.isfinite(vals["loss"][1])
    bad = run_cli("repro", "nosuch", "--from", str(out))
    assert bad.returncode == 2 and "no result 'nosuch'" in bad.stderr


def test_numpy_script_computes_what_the_adapter_computes(tmp_path):
    """The script of each framework calls the same API as its adapter: checked for NumPy here,
    for torch above."""
    from xentcheck.backends.numpy_backend import NumpyBackend

    case = Case.from_id("offset1e+4_float32_16x10_soft_none")
    inputs = make_inputs(case, 3)
    record = Result(backend="numpy", case_id=case.id, impl="numpy.analytic", seed=3, verdict="fail",
                    reasons=["(hand-made record)"])
    _, path = repro.write(tmp_path, record, inputs, case, reference(case, inputs))
    stdout, vals = _run_script(path)
    out = NumpyBackend().compute(case, inputs.copy(), "cpu")
    loss = np.asarray(out.loss, dtype=np.float64)
    assert vals["loss"][0] in loss.tolist()
    assert "offset1e+4_float32_16x10_soft_none on numpy (numpy.analytic)" in stdout


def test_plugin_backends_get_a_script_through_the_registry(tmp_path):
    out = tmp_path / "o"
    res = run_here("run", "--backend-file", str(ROOT / "tests/helpers/toy_backends/wrong_gradient.py"),
                  "--case", "scale1e+0_float32_16x10_index_mean", "--out", str(out), "--no-progress")
    assert res.returncode == 1
    (script,) = (out / "repro").glob("*.py")
    _, vals = _run_script(script)
    assert abs(vals["grad"][0] - 16 * vals["grad"][1]) < 1e-5 * abs(vals["grad"][0])  # N times too large
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exit_status"] == 1


@pytest.mark.slow  # end to end, tens of seconds; its parts have faster tests
def test_tensorflow_and_jax_scripts_reproduce_their_findings(tmp_path):
    """optax's integer-label loss at large logits and the NaN of probability targets on masked
    classes (README), each reproduced by its standalone script with the recorded numbers."""
    out = tmp_path / "o"
    res = run_here("run", "--backends", "tensorflow,jax", "--case", "offset1e+8_bfloat16_3x5_index_none",
                  "--case", "masked_bfloat16_3x5_soft_sum", "--out", str(out), "--no-progress")
    assert res.returncode == 1, res.stderr
    recs = [Result.from_dict(json.loads(line)) for line in (out / "results.jsonl").read_text().splitlines()]
    bad = {repro.result_id(r): r for r in recs if r.verdict in repro.BAD}
    assert set(bad) >= {"jax.optax_sce_int.eager__offset1e+8_bfloat16_3x5_index_none",
                        "jax.optax_sce.eager__masked_bfloat16_3x5_soft_sum",
                        "tensorflow.softmax_ce.eager__masked_bfloat16_3x5_soft_sum"}
    for rid, rec in bad.items():
        script = out / "repro" / f"{rid}.py"
        body = script.read_text()
        assert ("import optax" in body) == rid.startswith("jax") and ("import tensorflow" in body) == rid.startswith("tensorflow")
        _, vals = _run_script(script)
        if rec.verdict == "nonfinite":
            assert np.isnan(vals["loss"][0]) and np.isfinite(vals["loss"][1])
        else:  # the same worst element, with the same value, as the harness recorded
            assert vals["loss"][0] == rec.metrics["loss"].worst_actual
            assert vals["loss"][1] == rec.metrics["loss"].worst_expected


def test_shrinking_a_tolerance_failure_keeps_labels_valid(monkeypatch):
    """In-process: the sloppy fixture loses u * |x| at large logits; shrinking keeps that
    discrepancy down to a single row of two equal logits near 1e8, with remapped index labels."""
    monkeypatch.setenv("XENTCHECK_TEST_SLOPPY", "1")
    spec = "file:" + str(ROOT / "tests/helpers/toy_backends/env_sloppy.py")
    summary = {"tolerances": {"preset": "xentcheck"}}
    case = Case.from_id("offset1e+8_float32_128x1000_index_mean")
    start = repro.evaluate(case, make_inputs(case, 0), spec, "cpu", repro.tolerances_of(summary))
    assert start["verdict"] == "fail"
    steps = []
    small = repro.shrink(start, spec, summary, log=steps.append)
    assert small["verdict"] == "fail" and (small["case"].n, small["case"].k) == (1, 2)
    x = small["inputs"].logits
    assert abs(float(x.min()) - 1e8) <= 4 and small["inputs"].labels.tolist()[0] in (0, 1)
    assert len(steps) >= 5 and all("still fail" in s for s in steps)
    monkeypatch.setenv("XENTCHECK_TEST_SLOPPY", "0")  # the fixed implementation passes the shrunk case
    again = repro.evaluate(small["case"], small["inputs"], spec, "cpu", repro.tolerances_of(summary))
    assert again["verdict"] == "pass"


# one script per framework by default; the other APIs and modes (each a framework's subprocess:
# seconds of import and compilation) with -m slow
SLOW = pytest.mark.slow


@pytest.mark.parametrize("backend, impl, mode, semantics, case_id", [
    ("torch", "cross_entropy_index", "eager", "torch", "scale1e+0_float32_16x10_index_mean_opt-w+ign+ls"),
    pytest.param("torch", "log_softmax_nll", "eager", "torch", "scale1e+0_float32_16x10_index_sum_opt-w+ign", marks=SLOW),
    pytest.param("keras-tensorflow", "keras_sparse_cce", "function", "keras", "scale1e+0_float32_16x10_index_mean_opt-ign",
                 marks=SLOW),
    pytest.param("keras-tensorflow", "keras_cce", "xla", "keras", "scale1e+0_float32_16x10_soft_mean_opt-ls", marks=SLOW),
    ("keras-jax", "keras_sparse_cce_dtype", "jit", "keras", "scale1e+0_float32_16x10_index_mean_opt-ign"),
    pytest.param("keras-torch", "keras_ops_cce", "eager", "plain", "scale1e+0_float32_16x10_soft_sum", marks=SLOW),
    ("jax", "optax_sce", "jit", "plain", "scale1e+0_float32_16x10_onehot_none_opt-ls"),
    pytest.param("jax", "log_softmax", "eager", "plain", "scale1e+0_float32_4x10x3_index_mean", marks=SLOW),
])
def test_scripts_call_the_recorded_api_with_the_case_options(tmp_path, backend, impl, mode, semantics, case_id):
    """Class weights, ignored targets and smoothing reach the API in the script, through the recorded
    implementation and mode: each of these correct results reproduces the reference."""
    require({"jax": "optax", "keras-tensorflow": "tensorflow", "keras-jax": "jax", "keras-torch": "torch"}.get(backend, backend))
    case = Case.from_id(case_id)
    inputs = make_inputs(case, 0)
    record = Result.from_dict({**case.as_dict(), "backend": backend, "impl": impl, "mode": mode, "seed": 0,
                               "verdict": "fail", "reasons": ["test"]})
    _, script = repro.write(tmp_path, record, inputs, case, reference(case, inputs, semantics))
    out, vals = _run_script(script)
    for what in ("loss", "grad"):
        framework, ref = vals[what]
        assert abs(framework - ref) <= 1e-5 * max(1.0, abs(ref)), (what, out)
