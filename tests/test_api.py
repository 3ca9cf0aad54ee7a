"""The Python API: xentcheck.verify, xentcheck.reference, xentcheck.testing.assert_backend.

Workers import this file to find CarefulKernel (a class of the caller's own module): keep its
module-level imports to what any worker has (no `tests.` imports up here).
"""

import json
import subprocess
import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest

import xentcheck
from xentcheck import Backend, Output
from xentcheck.testing import assert_backend

ROOT = Path(__file__).resolve().parent.parent
CASES = ["scale1e+0_float32_16x10_index_sum", "scale1e+1_float32_128x1000_index_none",
         "offset1e+8_float32_128x1000_index_mean", "scale1e-1_float32_1x2_index_mean"]


class CarefulKernel(Backend):
    """Right to a few units of roundoff in float32: computed in float64, rounded once."""

    name = "careful"
    dtypes = ("float32",)
    label_forms = ("index",)

    def compute(self, case, inputs, device):
        x, rows, t = inputs.logits.astype(np.float64), np.arange(case.n), inputs.labels
        z = x - x.max(axis=1, keepdims=True)
        log_s = np.log(np.exp(z).sum(axis=1))
        loss = log_s - z[rows, t]
        grad = np.exp(z - log_s[:, None])
        grad[rows, t] -= 1
        if case.reduction == "mean":
            loss, grad = loss.mean(), grad / case.n
        elif case.reduction == "sum":
            loss = loss.sum()
        return Output(loss=np.asarray(loss).astype(np.float32), grad=grad.astype(np.float32))


CAREFUL = CarefulKernel()


def test_verify_finds_the_broken_gradient_and_groups_it():
    from tests.helpers.toy_backends.wrong_gradient import ForgetsMeanInGradient

    result = xentcheck.verify(backends=["numpy", ForgetsMeanInGradient], dtypes=["float32"], cases=8)
    assert [b["name"] for b in result.backends] == ["numpy", "forgets-mean"]
    assert len(result.records) == 16 and sum(result.counts.values()) == 16
    assert {r.verdict for r in result.records if r.backend == "numpy"} == {"pass"}
    broken = {r.case_id: r for r in result.records if r.backend == "forgets-mean"}
    # the gradient of a mean is off by the factor N: wrong exactly where N > 1 and the reduction is a mean
    wrong = {c for c in broken if c.endswith("_mean") and not c.split("_")[2].startswith("1x")}
    assert wrong == {"scale1e+2_float32_8x32000_index_mean", "offset1e+8_float32_128x1000_index_mean"}
    assert {c for c, r in broken.items() if r.verdict == "fail"} == wrong
    assert all(r.metrics["grad"].n_exceed > 0 and r.metrics["loss"].n_exceed == 0
               for c, r in broken.items() if c in wrong)
    assert result.counts["fail"] == 2 and result.counts["pass"] == 14 and not result.ok
    assert [f.backend for f in result.findings] == ["forgets-mean"]
    finding = result.findings[0]
    assert (finding.kind, finding.results, finding.verdicts, finding.dtypes) == \
        ("gradient: out of tolerance", 2, ("fail",), ("float32",))
    assert set(finding.cases) == wrong
    assert result.bad == [r for r in result.records if r.verdict == "fail"]
    assert result.out is None


def test_verify_out_writes_the_reports_the_cli_writes(tmp_path):
    """A class of the caller's module, run as `--backend-file FILE::NAME`: the same results.jsonl."""
    from tests.conftest import run_here
    from xentcheck.core.tolerances import Tolerances

    tol = Tolerances("torch")
    tol.override("rtol", "float32=2e-06")
    result = xentcheck.verify(backends=[CarefulKernel, "numpy"], cases=CASES, tolerances=tol, seed=3,
                              out=tmp_path / "api")
    assert result.ok and result.counts["pass"] == 8 and result.out == tmp_path / "api"
    for name in ("run.json", "results.jsonl", "summary.json", "report.md", "report.html", "junit.xml",
                 "tolerance.md", "results.csv"):
        assert (result.out / name).is_file(), name
    plan = json.loads((result.out / "run.json").read_text())
    assert plan["backends"] == ["numpy", f"file:{Path(__file__).resolve()}::CarefulKernel"]  # names first, as the CLI
    assert (plan["preset"], plan["rtol"], plan["atol"], plan["seed"]) == ("torch", ["float32=2e-06"], [], 3)
    cli = run_here("run", "--backend-file", f"{__file__}::CarefulKernel", "--backends", "numpy", "--seed", "3",
                   "--tolerances", "torch", "--rtol", "float32=2e-06", *(a for c in CASES for a in ("--case", c)),
                   "--out", str(tmp_path / "cli"), "--no-progress")
    assert cli.returncode == 0, cli.stderr

    def lines(folder):
        rows = [json.loads(s) for s in (folder / "results.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k != "timing"} for r in rows]

    assert lines(result.out) == lines(tmp_path / "cli")
    assert [{k: v for k, v in r.to_dict().items() if k != "timing"} for r in result.records] == lines(result.out)


def test_assert_backend_passes_a_careful_kernel_and_names_a_broken_ones_findings():
    from tests.helpers.toy_backends.wrong_gradient import ForgetsMeanInGradient

    ok = assert_backend(CAREFUL, cases=CASES)  # a module-level instance
    assert ok.counts["pass"] == 4
    with pytest.raises(AssertionError) as info:
        assert_backend(ForgetsMeanInGradient, dtypes="float32", cases=CASES)
    text = str(info.value)
    assert "1 results out of tolerance or broken, of 1 kinds" in text
    assert ("offset1e+8_float32_128x1000_index_mean on forgets-mean (default, eager, float32): fail: "
            "gradient: 128000 / 128000 out of tolerance") in text
    assert "repro: xentcheck run --backend-file " in text and "wrong_gradient.py::ForgetsMeanInGradient --case " \
        "offset1e+8_float32_128x1000_index_mean --seed 0" in text
    assert "scale1e-1_float32_1x2_index_mean on" not in text  # N = 1: dividing by N changes nothing
    with pytest.raises(AssertionError, match="nothing was verified.*does not support dtype float16"):
        assert_backend(ForgetsMeanInGradient, dtypes=["float16"], cases=2)


@pytest.mark.parametrize("kwargs, message, cli_args", [
    ({"backends": "nope"}, "unknown backend 'nope' (known: numpy, torch, tensorflow, jax", ["--backends", "nope"]),
    ({"backends": "numpy", "dtypes": ["float8"]}, "unknown dtype 'float8' (known: float16, bfloat16, float32, float64)",
     ["--backends", "numpy", "--dtypes", "float8"]),
    ({"backends": "numpy", "cases": ["scale1e+0_float32_16x10_index"]}, "malformed case id 'scale1e+0_float32_16x10_index'",
     ["--backends", "numpy", "--case", "scale1e+0_float32_16x10_index"]),
    ({"backends": "numpy", "worker_memory": "2X"}, "--worker-memory takes a size such as 2G",
     ["--backends", "numpy", "--worker-memory", "2X"]),
])
def test_bad_arguments_are_value_errors_worded_as_the_cli(kwargs, message, cli_args):
    from tests.conftest import run_here

    with pytest.raises(ValueError) as info:
        xentcheck.verify(**kwargs)
    assert str(info.value).startswith(message)
    res = run_here("run", *cli_args, "--out", "/nonexistent/never-written")
    assert res.returncode == 2 and res.stderr.strip() == f"xentcheck: error: {info.value}"


def test_other_bad_arguments():
    class Local(CarefulKernel):
        pass

    with pytest.raises(ValueError, match="is defined inside a function or class"):
        xentcheck.verify(backends=Local)
    with pytest.raises(ValueError, match="unknown tolerance preset 'loose'"):
        xentcheck.verify(backends="numpy", tolerances="loose")
    with pytest.raises(ValueError, match="backend file not found: /no/such.py"):
        xentcheck.verify(backends="/no/such.py")
    with pytest.raises(ValueError, match="cases must be a number >= 1"):
        xentcheck.verify(backends="numpy", cases=0)
    with pytest.raises(ValueError, match="a backend must be a name"):
        xentcheck.verify(backends=[3.5])
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        xentcheck.verify(backends="numpy", device="tpu")
    with pytest.raises(ValueError, match="worker_memory must be an integer, got 2.5"):
        xentcheck.verify(backends="numpy", worker_memory=2.5)


@pytest.mark.parametrize("given, ceiling", [("512M", 512 << 20), (3 << 30, 3 << 30), (None, None), ("none", None)])
def test_worker_memory_reaches_the_plan_as_the_cli_option_does(given, ceiling):
    from xentcheck.api import _plan

    plan = _plan("numpy", "float32", "default", 0, 1, "xentcheck", "cpu", None, None, None, 300.0, (), given)
    assert plan.worker_memory == ceiling


# --- reference ---------------------------------------------------------------------------

def _mp(value) -> mpmath.mpf:
    """A float64 or long double exactly (its shortest round-trip decimal)."""
    return mpmath.mpf(np.format_float_scientific(np.longdouble(value), unique=True))


def _mp_rows(x, r):
    """Per-row loss sum_c r_c (lse - x_c) and gradient p * sum(r) - r, in mpmath at 50 digits."""
    losses, grads = [], []
    for xs, rs in zip(x, r):
        xs = [mpmath.mpf(float(v)) for v in xs]
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in xs))
        total = mpmath.fsum(rs)
        losses.append(mpmath.fsum(rc * (lse - xc) for rc, xc in zip(rs, xs)))
        grads.append([mpmath.exp(xc - lse) * total - rc for rc, xc in zip(rs, xs)])
    return losses, grads


def test_reference_by_hand():
    ref = xentcheck.reference(np.zeros((2, 2), np.float32), np.array([0, 1]))
    assert ref.loss == np.log(2) and ref.precision == "float64"  # log 2, correctly rounded
    assert ref.grad.tolist() == [[-0.25, 0.25], [0.25, -0.25]]
    assert ref.loss.dtype == np.float64 and ref.grad.shape == (2, 2)


def test_reference_matches_mpmath():
    with mpmath.workdps(50):
        x = np.array([[1.5, -2.0, 3.25, 0.0], [10.0, 10.0, -30.0, 9.5], [0.125, 7.0, 7.0, -1.0]])
        t = np.array([2, 0, 3])
        onehot = [[mpmath.mpf(int(c == y)) for c in range(4)] for y in t]
        losses, grads = _mp_rows(x, onehot)
        for dtype, rtol in ((np.float32, 1e-15), (np.float64, 2e-18)):
            ref = xentcheck.reference(x.astype(dtype), t, "mean")
            assert ref.precision == ("float64" if dtype == np.float32 else "longdouble")
            assert abs(_mp(ref.loss) - mpmath.fsum(losses) / 3) <= rtol * mpmath.fsum(losses) / 3
            for got, want in zip(ref.grad.ravel(), sum(grads, [])):
                assert abs(_mp(got) - want / 3) <= rtol * abs(want / 3)
        # float64's own error would be ~1e-16: the long-double reference is closer than that
        ref = xentcheck.reference(x, t, "none")
        assert ref.loss.shape == (3,)
        for got, want in zip(ref.loss, losses):
            assert abs(_mp(got) - want) <= 2e-18 * want


def test_reference_options_as_torch_reads_them():
    """weight, ignore_index and label smoothing: r = (1-e) w_y onehot(y) + (e/K) w, the mean over
    the kept targets' weights (F.cross_entropy's documented formula)."""
    x = np.array([[0.5, -1.0, 2.0], [3.0, 0.0, 0.0], [1.0, 1.0, 1.0], [-2.0, 4.0, 0.5]])
    t = np.array([2, -100, 1, 0])
    w, e, k = [0.5, 2.0, 1.0], 0.2, 3
    with mpmath.workdps(50):
        r = [[mpmath.mpf(0)] * k if y == -100 else
             [(1 - mpmath.mpf(e)) * w[y] * (c == y) + mpmath.mpf(e) / k * w[c] for c in range(k)] for y in t]
        losses, grads = _mp_rows(x, r)
        denom = sum(w[y] for y in t if y != -100)
        ref = xentcheck.reference(x.astype(np.float32), t, "mean", weight=np.array(w), ignore_index=-100,
                                  label_smoothing=e)
        assert abs(_mp(ref.loss) - mpmath.fsum(losses) / denom) <= 1e-15
        assert np.allclose(ref.grad, np.array([[float(g / denom) for g in row] for row in grads]), rtol=1e-14, atol=0)
        assert ref.grad[1].tolist() == [0.0, 0.0, 0.0]  # the ignored target


def test_reference_extra_dims_and_label_weights():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5)).astype(np.float32)  # N = 2, d1 = 3, K = 5, class axis last
    q = rng.random((2, 3, 5)).astype(np.float32)
    ref = xentcheck.reference(x, q, "none")
    assert ref.loss.shape == (2, 3) and ref.grad.shape == (2, 3, 5)
    with mpmath.workdps(30):
        losses, grads = _mp_rows(x.reshape(6, 5), [[mpmath.mpf(float(v)) for v in row] for row in q.reshape(6, 5)])
    assert np.allclose(ref.loss.ravel(), [float(v) for v in losses], rtol=1e-14, atol=0)
    assert np.allclose(ref.grad.reshape(6, 5), [[float(g) for g in row] for row in grads], rtol=1e-13, atol=1e-16)
    idx = xentcheck.reference(x, np.array([[0, 4, 2], [1, 1, 3]]), "sum")
    assert idx.loss.shape == () and idx.grad.shape == (2, 3, 5)


@pytest.mark.parametrize("args, kwargs, message", [
    ((np.zeros((2, 3), np.int64), np.array([0, 1])), {}, "logits dtype int64 is not supported"),
    ((np.zeros(3, np.float32), np.array([0])), {}, "logits must have shape (N, K)"),
    ((np.zeros((2, 3), np.float32), np.array([0, 3])), {}, "label 3 out of range for K = 3 classes"),
    ((np.zeros((2, 3), np.float32), np.array([0, -1])), {"ignore_index": -100}, "label -1 out of range"),
    ((np.zeros((2, 3), np.float32), np.array([0, 1, 2])), {}, "index labels must have shape [2]"),
    ((np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32)), {}, "label weights must have the logits' shape"),
    ((np.zeros((2, 3), np.float32), np.full((2, 3), -0.5, np.float32)), {}, "label weights must be finite and >= 0"),
    ((np.zeros((2, 3), np.float32), np.array([0, 1])), {"reduction": "avg"}, "unknown reduction 'avg'"),
    ((np.zeros((2, 3), np.float32), np.array([0, 1])), {"weight": np.ones(3), "semantics": "plain"},
     "semantics 'plain' takes none"),
    ((np.zeros((2, 3), np.float32), np.array([0, 1])), {"weight": np.ones(2)}, "weight must be 3 numbers"),
    ((np.zeros((2, 3), np.float32), np.array([0, 1])), {"label_smoothing": 1.5}, "label_smoothing must be in [0, 1]"),
    ((np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32)), {"ignore_index": -100}, "ignore_index needs class-index"),
])
def test_reference_rejects_bad_input(args, kwargs, message):
    with pytest.raises(ValueError) as info:
        xentcheck.reference(*args, **kwargs)
    assert message in str(info.value)


# --- the package's surface -----------------------------------------------------------------

def test_exports_are_lazy_and_the_plugin_classes_are_the_base_ones():
    import inspect

    import xentcheck.backends.base as base
    from xentcheck.api import VerifyOptions, verify

    assert (xentcheck.Backend, xentcheck.Output, xentcheck.Variant) == (base.Backend, base.Output, base.Variant)
    assert all(getattr(xentcheck, n) is not None for n in xentcheck.__all__)
    assert set(VerifyOptions.__annotations__) == set(inspect.signature(verify).parameters) - {"backends"}
    code = ("import sys, xentcheck; light = [m for m in ('numpy', 'xentcheck.api', 'xentcheck.backends.base') "
            "if m in sys.modules]; xentcheck.verify; xentcheck.testing; "
            "print(light, sorted(m for m in ('torch', 'jax', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[] []"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        getattr(xentcheck, "nope")  # noqa: B009 (the attribute access under test)


def test_the_example_runs_and_is_the_readme_example(tmp_path):
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Python API", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert block in (ROOT / "examples/python_api.py").read_text()
    res = subprocess.run([sys.executable, str(ROOT / "examples/python_api.py")], capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "ok: True {'pass': 16}" and (tmp_path / "xentcheck-out/report.md").is_file()
    assert lines[1].startswith("reference loss 0.41703001642") and lines[1].endswith("in float64")


def test_verify_and_assert_backend_judge_linear_ce_kernels(tmp_path):
    """Linear-CE cases through the API as through `xentcheck run`: loss, dh, dW, db metrics, the
    finding named by the gradient that is wrong, a repro/ of the linear result."""
    toys = ROOT / "tests/helpers/toy_backends"
    case = "scale1e+0_float32_32x1000_lin64_index_mean_opt-b"
    result = xentcheck.verify([toys / "linear_careful.py", toys / "linear_broken_dw.py"], cases=[case],
                              out=tmp_path / "o")
    by = {r.backend: r for r in result.records}
    assert by["linear-careful"].verdict == "pass" and by["linear-broken-dw"].verdict == "fail"
    broken = by["linear-broken-dw"]
    m = broken.metrics
    assert "grad" not in m and m["dw"].n_exceed > 0 and m["dh"].n_exceed == 0 and m["db"].n_exceed == 0
    assert [(f.backend, f.kind) for f in result.findings] == [("linear-broken-dw", "dW (gradient of W): out of tolerance")]
    assert f"{case} on linear-broken-dw (toy_linear_ce, eager, float32): fail: dW (gradient of W)" in result.explain()
    assert (tmp_path / "o/repro" / f"linear-broken-dw.toy_linear_ce.eager__{case}.py").is_file()
    ok = assert_backend(toys / "linear_careful.py", cases=[case, "dominant_float64_16x2000_lin64_index_none"])
    assert ok.counts["pass"] == 2
