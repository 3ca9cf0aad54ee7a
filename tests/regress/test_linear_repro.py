"""Reproducers of linear-CE results: the standalone script of each framework computes what its
adapter computed, and `xentcheck repro --shrink` reruns and shrinks a linear-CE failure."""

import json
import runpy
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, require, run_cli, run_here
from xentcheck.backends.registry import create
from xentcheck.core.cases import Case, make_inputs
from xentcheck.core.records import Result
from xentcheck.problems.linear.reference import linear_reference
from xentcheck.regress import repro
from xentcheck.run.worker import output_of

TOY = ROOT / "tests/helpers/toy_backends/linear_broken_dw.py"


# one script per framework by default, the other modes and options with -m slow
SLOW = pytest.mark.slow


@pytest.mark.parametrize("backend, impl, mode, case_id", [
    ("torch", "linear_cross_entropy_accurate_c8", "eager", "scale1e+1_float32_24x777_lin16_index_mean_opt-w+ign+ls"),
    pytest.param("torch", "linear_then_cross_entropy", "eager", "scale1e+1_bfloat16_16x100_lin64_index_none_opt-ign+ct+b",
                 marks=SLOW),
    ("jax", "linear_optax_int", "jit", "scale1e+0_float32_16x100_lin32_index_mean_opt-ct0.3333333333333333"),
    pytest.param("jax", "linear_optax_int", "eager", "scale1e+0_float64_12x100_lin16_index_sum_opt-b", marks=SLOW),
    pytest.param("tensorflow", "linear_sparse_sce", "xla", "scale1e+1_float32_16x100_lin64_index_none_opt-ct+b",
                 marks=SLOW),
    ("tensorflow", "linear_sparse_sce", "function", "scale1e+0_float16_16x100_lin16_index_mean_opt-b"),
    ("numpy", "linear_analytic", "eager", "scale1e+0_float16_32x1000_lin64_index_mean_opt-b"),
    pytest.param("numpy", "linear_analytic", "eager", "scale1e+1_float32_16x100_lin16_index_none_opt-ct+b",
                 marks=SLOW),
])
def test_linear_scripts_compute_what_the_adapter_computes(tmp_path, backend, impl, mode, case_id):
    require({"jax": "optax"}.get(backend, backend))
    case = Case.from_id(case_id)
    inputs = make_inputs(case, 0)
    b = create(backend)
    b.load()
    (v,) = [x for x in b.variants() if x.impl == impl and x.mode == mode]
    out = output_of(b, v, case, inputs, "cpu")
    assert out.status == "ok", out.error
    record = Result.from_dict({**case.as_dict(), "backend": backend, "impl": impl, "mode": mode, "seed": 0,
                               "verdict": "fail", "reasons": ["test"]})
    npz, script = repro.write(tmp_path, record, inputs, case, linear_reference(case, inputs, v.semantics))
    with np.load(npz) as data:
        assert {"hidden", "weight", "labels", "ref_loss", "ref_dh", "ref_dw"} <= set(data.files)
        assert ("bias" in data.files) == ("ref_db" in data.files) == ("b" in case.option_set)
    got = runpy.run_path(str(script), run_name="linear_repro")["compute"]()
    want = {"loss": out.loss, **out.grads}
    for what, actual in zip(("loss", "dh", "dw", "db"), got):
        if what not in want:
            assert actual is None
            continue
        expected = np.asarray(want[what], dtype=np.float64)
        assert actual.shape == expected.shape, what
        # the same API on the same inputs: equal up to a few units of the dtype's roundoff (thread order)
        np.testing.assert_allclose(actual, expected, rtol=1e-5 if case.dtype in ("float32", "float64") else 1e-2,
                                   atol=1e-7 * float(np.abs(expected).max(initial=1.0)), err_msg=what)


def test_repro_command_reruns_and_shrinks_a_linear_failure(tmp_path):
    out = tmp_path / "o"
    case = "scale1e+0_float32_32x1000_lin64_index_mean_opt-b"
    res = run_here("run", "--backend-file", str(TOY), "--case", case, "--out", str(out), "--no-progress")
    assert res.returncode == 1, res.stderr
    rid = f"linear-broken-dw.toy_linear_ce.eager__{case}"
    assert (out / "repro" / f"{rid}.npz").is_file()
    ran = subprocess.run([sys.executable, str(out / "repro" / f"{rid}.py")], capture_output=True, text=True, cwd="/",
                         timeout=300)
    assert ran.returncode == 0, ran.stderr
    worst = {line.split("[")[0]: line for line in ran.stdout.splitlines() if " framework " in line}
    assert set(worst) == {"loss", "dh", "dw", "db"}
    diff = {k: float(line.split()[-1]) for k, line in worst.items()}
    assert diff["dw"] > 1e-4 > 1e-7 > max(diff["dh"], diff["db"]), ran.stdout  # dW summed in bfloat16
    # the script ran under its worker's numerics settings, and the shrunk one (below) carries them too
    recorded = json.loads((out / "environment.json").read_text())["backends"]["linear-broken-dw"]["numerics_env"]
    assert "numerics settings: " + " ".join(f"{k}={v!r}" for k, v in sorted(recorded.items())) in ran.stdout
    res = run_cli("repro", f"linear-broken-dw__{case}", "--from", str(out), "--shrink", "--max-steps", "40")
    assert res.returncode == 1, res.stderr
    assert "fail (recorded: fail)" in res.stdout
    small = next(line for line in res.stdout.splitlines() if line.startswith("smallest:"))
    n, rest = small.split()[1].split("x", 1)
    assert int(n) == 1 and "_lin" in rest, small
    meta = json.loads(str(np.load(out / "repro" / f"{rid}-shrunk.npz")["meta"]))
    assert meta["n"] == 1 and meta["v"] < 1000 and meta["d"] <= 64
    shrunk = (out / "repro" / f"{rid}-shrunk.py").read_text()
    assert all(f"    {json.dumps(k)}: {json.dumps(v)},\n" in shrunk for k, v in recorded.items()) and recorded
