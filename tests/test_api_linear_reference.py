"""xentcheck.reference of a linear-CE case's arrays (h, W, b, labels), through its problem record,
against a case small enough to work by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xentcheck

LN2 = math.log(2.0)
# h (2, 2), W (3, 2), b = 0: row 0's logits are [0, 0, 0], row 1's [ln 2, 0, 0]
H = np.array([[0.0, 0.0], [1.0, 0.0]])
W = np.array([[LN2, 0.0], [0.0, 1.0], [0.0, -1.0]])
B = np.zeros(3)
# p0 = [1/3, 1/3, 1/3], label 0: loss ln 3, G0 = p0 - e0 = [-2/3, 1/3, 1/3]
# p1 = [1/2, 1/4, 1/4], label 2: loss ln 4, G1 = p1 - e2 = [1/2, 1/4, -3/4]
G = np.array([[-2 / 3, 1 / 3, 1 / 3], [1 / 2, 1 / 4, -3 / 4]])
DH = np.array([[-2 / 3 * LN2, 0.0], [LN2 / 2, 1 / 4 + 3 / 4]])  # G W
DW = np.array([[1 / 2, 0.0], [1 / 4, 0.0], [-3 / 4, 0.0]])  # G^T h: only h1 = [1, 0] is nonzero
DB = np.array([-2 / 3 + 1 / 2, 1 / 3 + 1 / 4, 1 / 3 - 3 / 4])  # sum over rows of G


def arrays(**extra):
    return {"hidden": H, "linear_weight": W, "linear_bias": B, "labels": np.array([0, 2]), **extra}


def close(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), b, rtol=1e-14, atol=1e-15)


def test_a_linear_ce_reference_by_hand():
    ref = xentcheck.reference(arrays(reduction="sum"))
    assert list(ref.outputs) == ["loss", "dh", "dw", "db"] and ref.grad is None
    close(ref.loss, math.log(3) + math.log(4))
    close(ref.outputs["dh"], DH)
    close(ref.outputs["dw"], DW)
    close(ref.outputs["db"], DB)
    assert ref.outputs["dh"].shape == (2, 2) and ref.outputs["dw"].shape == (3, 2) and ref.outputs["db"].shape == (3,)
    assert ref.precision in ("longdouble", "mpmath")  # float64 inputs: worked wider than float64


def test_mean_none_and_an_ignored_row():
    mean = xentcheck.reference(arrays())  # torch's default: the mean over the rows
    close(mean.loss, (math.log(3) + math.log(4)) / 2)
    close(mean.outputs["dh"], DH / 2)
    none = xentcheck.reference(arrays(reduction="none"))
    close(none.loss, [math.log(3), math.log(4)])
    close(none.outputs["dw"], DW)
    # row 1 ignored: the mean is row 0's loss, and row 1 has no gradient
    ign = xentcheck.reference(arrays(labels=np.array([0, -100]), ignore_index=-100))
    close(ign.loss, math.log(3))
    close(ign.outputs["dh"], [DH[0], [0.0, 0.0]])
    close(ign.outputs["db"], G[0])


def test_without_a_bias_there_is_no_db_and_float32_is_worked_wider():
    ref = xentcheck.reference({"hidden": H.astype(np.float32), "linear_weight": W.astype(np.float32),
                               "labels": np.array([0, 2]), "reduction": "sum"})
    assert list(ref.outputs) == ["loss", "dh", "dw"] and ref.precision == "float64"
    w32 = np.float64(np.float32(LN2))  # W held in float32: row 1's first logit is that value
    p1 = np.exp([w32, 0.0, 0.0]) / np.exp([w32, 0.0, 0.0]).sum()
    close(ref.loss, math.log(3) - math.log(p1[2]))
    close(ref.outputs["dw"][:, 0], p1 - [0, 0, 1])


@pytest.mark.parametrize("extra, message", [
    ({"linear_weight": W[:, :1]}, r"linear_weight \(V, D\), got \[2, 2\] and \[3, 1\]"),
    ({"labels": np.array([0, 3])}, "label 3 out of range for V = 3"),
    ({"linear_bias": np.zeros(3, dtype=np.float32)}, "linear_bias must be float64"),
    ({"weights": np.ones(3)}, "unknown key 'weights'"),
])
def test_bad_linear_arrays_say_what_is_wrong(extra, message):
    with pytest.raises(ValueError, match=message):
        xentcheck.reference(arrays(**extra))


def test_arrays_of_no_kind():
    with pytest.raises(ValueError, match="of no known kind .*linear-CE: hidden, linear_weight"):
        xentcheck.reference({"hidden": H, "labels": np.array([0, 2])})
