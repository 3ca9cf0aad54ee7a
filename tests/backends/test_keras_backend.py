"""Keras 3 on its three backends, each in its own process (Keras reads KERAS_BACKEND once a process)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, require, run_here

LOSS = 0.40760596444438
GRAD = [0.09003057317038, 0.24472847105479, -0.33475904422517]
FRAMEWORK = {"keras-tensorflow": "tensorflow", "keras-jax": "jax", "keras-torch": "torch"}

# In a fresh process: every variant (torch.compile aside) on the hand-checked case at each dtype,
# then a second Keras backend in the same process, which must refuse to load.
SCRIPT = r"""
import json, sys
import numpy as np
from xentcheck.backends.registry import create
from xentcheck.core.cases import Case, Inputs
from xentcheck.core.dtypes import info
b = create(sys.argv[1]); b.load()
out = {"settings": b.settings(), "version": b.version(), "runs": []}
for v in b.variants():
    if v.opt_in or v.kind != "ce":  # the hand-checked case is plain CE (distillation: test_keras_distill)
        continue
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        for labels in v.label_forms:
            t = info(dtype).np_type
            case = Case("scale1e+0", dtype, 1, 3, labels, "mean")
            lab = np.array([2]) if labels == "index" else np.array([[0, 0, 1]], dtype=t)
            o = b.run_variant(v, case, Inputs(np.array([[1, 2, 3]], dtype=t), lab, np.array([2])), "cpu")
            out["runs"].append({"impl": v.impl, "mode": v.mode, "dtype": dtype, "labels": labels,
                                "loss_dtype": o.loss_dtype, "grad_dtype": o.grad_dtype,
                                "loss": float(np.asarray(o.loss, np.float64)),
                                "grad": np.asarray(o.grad, np.float64).ravel().tolist()})
other = "keras-jax" if sys.argv[1] != "keras-jax" else "keras-torch"
try:
    create(other).load()
    out["second"] = "loaded"
except RuntimeError as exc:
    out["second"] = str(exc)
print(json.dumps(out))
"""
TOL = {"float16": 2e-3, "bfloat16": 1.6e-2, "float32": 1e-6, "float64": 1e-12}


@pytest.fixture(scope="module", params=list(FRAMEWORK))
def keras_runs(request):
    require("keras")
    require(FRAMEWORK[request.param])
    r = subprocess.run([sys.executable, "-c", SCRIPT, request.param], capture_output=True, text=True, timeout=600,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return request.param, json.loads(r.stdout.strip().splitlines()[-1])


def test_every_variant_gives_the_hand_checked_numbers_in_its_dtype(keras_runs):
    name, out = keras_runs
    assert out["settings"]["keras_backend"] == FRAMEWORK[name] and out["version"].startswith("3.")
    modes = {r["mode"] for r in out["runs"]}
    assert modes == {"keras-tensorflow": {"eager", "function", "xla"}, "keras-jax": {"eager", "jit"},
                     "keras-torch": {"eager"}}[name]
    assert len({r["impl"] for r in out["runs"]}) == 8  # 6 fed logits, 2 fed softmax(x) (unclipped here)
    for r in out["runs"]:
        loss_dtype, precision = expected(name, r["impl"], r["dtype"])
        assert r["loss_dtype"] == loss_dtype, r
        assert r["grad_dtype"] == r["dtype"], r  # the gradient comes back in the logits' dtype
        tol = max(TOL[precision], TOL[r["dtype"]])  # the coarser: a float32 loss of float16 logits
        if precision == "float32" and r["dtype"] == "float64":  # off by more than float64's roundoff
            assert r["loss"] != pytest.approx(LOSS, rel=1e-9), r
        assert r["loss"] == pytest.approx(LOSS, rel=tol), r
        assert r["grad"] == pytest.approx(GRAD, rel=tol, abs=tol / 10), r


def expected(name: str, impl: str, dtype: str) -> tuple[str, str]:
    """(the loss's dtype, the precision it is computed at) for a mean on the hand-checked case,
    as measured with keras 3.15.1."""
    if impl in ("keras_sparse_cce", "keras_cce"):  # no dtype=: Keras's floatx
        return "float32", "float32"
    if dtype == "float64" and name == "keras-torch" and not impl.startswith("keras_ops_"):
        return "float32", "float32"  # "sum_over_batch_size" on torch returns float32 for dtype="float64"
    if dtype == "float64" and name != "keras-tensorflow" and impl.startswith("keras_ops_"):
        return "float64", "float32"  # keras.ops.mean on JAX and torch computes float64 in float32
    if name == "keras-jax" and impl == "keras_ops_sparse_cce":
        return "float64", dtype  # jax.nn.one_hot is float64 under x64: -sum(one_hot * log p) promotes
    return dtype, dtype


def test_a_second_keras_backend_in_one_process_is_refused(keras_runs):
    name, out = keras_runs
    assert out["second"].startswith(f"keras is already imported with backend '{FRAMEWORK[name]}'"), out["second"]


def test_the_suite_finds_what_keras_does_on_jax_and_torch(tmp_path):
    """Measured with keras 3.15.1: the JAX backend's sparse loss is -sum(one_hot * log_softmax): NaN beside
    a -inf logit (eager) and 0 for an out-of-range label, in silence; torch raises on that label."""
    for module in ("keras", "jax", "torch"):
        require(module)
    masked, oor = "masked_float32_16x10_index_mean", "scale1e+0_float32_16x10_index_sum_opt-oor"
    r = run_here("run", "--backends", "keras-jax,keras-torch", "--impls", "keras_sparse_cce_dtype", "--modes", "eager",
                "--case", masked, "--case", oor, "--out", str(tmp_path), "--no-progress")
    assert r.returncode == 1, r.stderr
    recs = {(x["backend"], x["case_id"]): x for x in map(json.loads, (tmp_path / "results.jsonl").read_text().splitlines())}
    jax_masked = recs[("keras-jax", masked)]
    assert jax_masked["verdict"] == "nonfinite" and jax_masked["loss"]["worst_actual"] == "nan"
    assert recs[("keras-torch", masked)]["verdict"] == "pass"
    jax_oor = recs[("keras-jax", oor)]
    assert jax_oor["verdict"] == "fail" and "silently returned loss" in jax_oor["reasons"][0]
    torch_oor = recs[("keras-torch", oor)]
    assert torch_oor["verdict"] == "pass" and "raised" in torch_oor["reasons"][0]


def test_keras_backends_run_in_the_full_suite_or_when_named():
    from xentcheck.run.plan import backend_specs

    keras = {"keras-tensorflow", "keras-jax", "keras-torch"}
    assert not keras & set(backend_specs(None, (), suite="default"))
    assert keras <= set(backend_specs(None, (), suite="full"))
    assert backend_specs("keras-jax", (), suite="default") == ["keras-jax"]
