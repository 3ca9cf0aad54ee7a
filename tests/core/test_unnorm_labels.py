"""Label weights that do not sum to one (label form "unnorm"): the reference's p * sum(q) - q, by
hand and against mpmath; the inputs' row masses; and the default suite catching a kernel that uses
p - q while the careful one passes."""

import mpmath
import numpy as np
import pytest

from tests.conftest import ROOT
from xentcheck.backends.numpy_backend import NumpyBackend
from xentcheck.backends.registry import FILE_PREFIX, create
from xentcheck.core.cases import UNNORM_ROW_SUMS, Case, Inputs, default_suite, make_inputs
from xentcheck.core.evaluate import Subject, evaluate
from xentcheck.core.tolerances import Tolerances
from xentcheck.problems.ce.cases import make_ce_inputs
from xentcheck.problems.ce.reference import reference
from xentcheck.run.worker import output_of

TOY = ROOT / "tests/helpers/toy_backends/unnorm_p_minus_q.py"


def _hand_inputs(dtype):
    x = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], dtype=dtype)
    q = np.array([[0.25, 0.125, 0.125], [0.0, 0.0, 0.0], [1.5, 0.5, 0.5]], dtype=dtype)  # exact in both
    return Inputs(x, q, np.zeros(3, dtype=np.int64))


@pytest.mark.parametrize("dtype", ["float32", "float64"])  # the chunked float64 path and the longdouble one
def test_reference_by_hand(dtype):
    # row 0: lse = 3 + log(1 + e^-1 + e^-2) = 3.4076059644; loss = sum q (lse - x)
    #        = 0.25 * 2.4076059644 + 0.125 * 1.4076059644 + 0.125 * 0.4076059644 = 0.8288029822;
    #        p = (0.0900305732, 0.2447284711, 0.6652409558), gradient 0.5 p - q
    # row 1: no label weight: loss 0, gradient 0 (not p)
    # row 2: sum(q) = 2.5, gradient 2.5 p - q
    case = Case("scale1e+0", dtype, 3, 3, "unnorm", "none")
    ref = reference(case, _hand_inputs(dtype))
    assert ref.loss[0] == pytest.approx(0.8288029822, rel=1e-9)
    p = np.array([0.0900305732, 0.2447284711, 0.6652409558])
    np.testing.assert_allclose(ref.grad[0], 0.5 * p - [0.25, 0.125, 0.125], rtol=1e-8)
    np.testing.assert_allclose(ref.grad[0], [-0.2049847134, -0.0026357644726, 0.2076204779], rtol=1e-9)
    assert ref.loss[1] == 0 and not ref.grad[1].any()
    assert ref.label_sum.tolist() == [0.5, 0.0, 2.5]
    assert abs(ref.grad[2].sum()) < 1e-15  # p Q - q sums to Q - Q = 0 (p - q would sum to 1 - Q = -1.5)
    # the mean divides by N whatever the label mass: torch and optax's reading of a weighted row
    mean = reference(Case("scale1e+0", dtype, 3, 3, "unnorm", "mean"), _hand_inputs(dtype))
    assert float(mean.loss) == pytest.approx(ref.loss.sum() / 3, rel=1e-12)
    np.testing.assert_allclose(mean.grad, ref.grad / 3, rtol=1e-12)


@pytest.mark.parametrize("case_id", ["masked_float32_64x100_unnorm_mean", "dominant_float64_8x1000_unnorm_none",
                                     "scale1e+0_bfloat16_16x10_unnorm_sum"])
def test_reference_against_mpmath(case_id):
    case = Case.from_id(case_id)
    inputs = make_inputs(case, 0)
    ref = reference(case, inputs)
    x, q = inputs.logits.astype(np.float64), inputs.labels.astype(np.float64)
    rows = range(0, case.rows, max(1, case.rows // 8))  # a spread of rows, every mass among them
    denom = case.rows if case.reduction == "mean" else 1
    with mpmath.workdps(50):
        for i in rows:
            xs = [mpmath.mpf(v) for v in x[i] if v != -np.inf]
            lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in xs))
            big_q = mpmath.fsum(mpmath.mpf(v) for v in q[i])
            loss = mpmath.fsum(mpmath.mpf(qj) * (lse - mpmath.mpf(xj)) for xj, qj in zip(x[i], q[i]) if qj)
            grad = [(mpmath.exp(mpmath.mpf(xj) - lse) if xj != -np.inf else 0) * big_q - mpmath.mpf(qj)
                    for xj, qj in zip(x[i], q[i])]
            assert ref.row_loss[i] == pytest.approx(float(loss), rel=1e-14, abs=1e-300)
            np.testing.assert_allclose(ref.grad[i] * denom, [float(g) for g in grad], rtol=1e-13, atol=1e-16)
            assert ref.label_sum[i] == pytest.approx(float(big_q), rel=1e-15)


def test_row_masses():
    """Rows sum to 0.375, 2.5, 0, 1 in turn (to the dtype's rounding); no weight on a -inf class;
    the bytes do not depend on the generation's chunking."""
    for case_id in ("masked_float16_64x100_unnorm_mean", "scale1e+0_float64_16x10_unnorm_none"):
        case = Case.from_id(case_id)
        inputs = make_inputs(case, 0)
        sums = inputs.labels.astype(np.float64).sum(axis=1)
        want = np.array(UNNORM_ROW_SUMS)[np.arange(case.rows) % 4]
        np.testing.assert_allclose(sums, want, rtol=4 * np.finfo(inputs.labels.dtype).eps)
        assert (sums[want == 0] == 0).all()
        assert (inputs.labels[np.isneginf(inputs.logits)] == 0).all()
        again = make_ce_inputs(case, 0, chunk_elements=3 * case.k)
        assert again.labels.tobytes() == inputs.labels.tobytes()


def test_the_default_suite_catches_p_minus_q_and_passes_the_careful_kernel():
    """Every unnormalised case of the default suite fails the p - q kernel in its gradient; every
    other case gets the careful kernel's verdict; the careful kernel passes the unnormalised ones."""
    toy = create(FILE_PREFIX + str(TOY))
    careful = NumpyBackend()
    unnorm = [c for c in default_suite() if c.labels == "unnorm"]
    assert len(unnorm) == 12 and {c.reduction for c in unnorm} == {"mean", "sum", "none"}
    for case in default_suite():
        if case.llm or case.labels == "index" or case.kind != "ce":
            continue  # the toy takes no LLM option; index labels give both kernels the same one-hot q
        inputs = make_inputs(case, 0)
        ref = reference(case, inputs)
        verdicts = {}
        for b in (careful, toy):
            v = b.variants()[0]
            r = evaluate(case, Subject(backend=b.name), output_of(b, v, case, inputs, "cpu"), Tolerances(), reference=ref)
            verdicts[b.name] = r
        good, bad = verdicts["numpy"], verdicts["unnorm-p-minus-q"]
        if case.labels == "unnorm":
            assert good.verdict == "pass", (case.id, good.reasons)
            assert bad.verdict == "fail" and all(s.startswith("gradient:") for s in bad.reasons), (case.id, bad.reasons)
        else:
            assert bad.verdict == good.verdict, (case.id, bad.reasons, good.reasons)


@pytest.mark.parametrize("case_id", ["scale1e+0_float64_16x10_unnorm_sum", "masked_float32_64x100_unnorm_mean"])
def test_the_properties_hold_for_unnormalised_rows_and_row_sums_catch_p_minus_q(case_id):
    """No property assumes sum(q) = 1: the careful kernel passes them all; the p - q gradient's rows
    sum to 1 - sum(q), which grad_row_sums reports."""
    from xentcheck.core.tolerances import Tol
    from xentcheck.problems.ce import layout
    from xentcheck.problems.ce.properties import check_all
    case = Case.from_id(case_id)
    inputs = make_inputs(case, 0)
    tol = Tol(*Tolerances().get(case.dtype, "grad"), True)
    for b in (NumpyBackend(), create(FILE_PREFIX + str(TOY))):
        v = b.variants()[0]
        props = check_all(b, v, case, inputs, layout.run(b, v, case, inputs, "cpu"), [], "cpu", tol, b.variants())
        if b.name == "numpy":
            assert {p["verdict"] for p in props.values()} <= {"pass", "skipped"}, props
        else:
            assert props["grad_row_sums"]["verdict"] == "fail", props["grad_row_sums"]
