"""NumPy: a plain forward and the hand-written analytic backward, in the requested dtype.

NumPy has no autodiff, so this is a low-precision implementation under test (not the
reference): elementwise work happens in the case's dtype, and row sums accumulate in at least
float32, as the frameworks' kernels do for 16-bit types.
"""

from __future__ import annotations

import numpy as np

from backends.base import Backend, Output
from harness.cases import Case, Inputs


class NumpyBackend(Backend):
    name = "numpy"
    framework = "numpy"
    impl = "analytic"

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        x = inputs.logits
        dt = x.dtype
        acc = np.float32 if dt.itemsize < 4 else dt
        n, k = x.shape
        rows = np.arange(n)
        z = x - x.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True, dtype=acc)
        logp = z - np.log(s).astype(dt)
        if case.labels == "index":
            loss_rows = -logp[rows, inputs.labels].astype(acc)
            q = np.zeros_like(x)
            q[rows, inputs.labels] = 1
        else:
            q = inputs.labels
            # 0 * log(0) is 0: unlabelled -inf classes contribute nothing
            loss_rows = -np.where(q != 0, q * logp, 0).sum(axis=1, dtype=acc)
        p = (e / s.astype(dt)).astype(dt)
        grad = p * q.sum(axis=1, keepdims=True, dtype=acc).astype(dt) - q
        if case.reduction == "mean":
            return Output(loss=(loss_rows.sum(dtype=acc) / n).astype(dt), grad=(grad / dt.type(n)).astype(dt))
        if case.reduction == "sum":
            return Output(loss=loss_rows.sum(dtype=acc).astype(dt), grad=grad)
        return Output(loss=loss_rows.astype(dt), grad=grad)
