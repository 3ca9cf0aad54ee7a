"""NumPy: a plain forward and the hand-written analytic backward, in the requested dtype.

NumPy has no autodiff, so this is a low-precision implementation under test (not the
reference): elementwise work happens in the case's dtype, and row sums accumulate in at least
float32, as the frameworks' kernels do for 16-bit types.
"""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Backend, Output, Variant
from xentcheck.core.cases import Case, Inputs


class NumpyBackend(Backend):
    name = "numpy"
    framework = "numpy"
    impl = "analytic"
    extra_dims = True

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        loss, kept = self._forward(case, inputs)
        return Output(loss=loss, grad=self._backward(case, *kept))

    def timing_fns(self, variant: Variant, case: Case, inputs: Inputs, device: str) -> dict:
        kept = self._forward(case, inputs)[1]
        return {"forward": lambda: self._forward(case, inputs), "backward": lambda: self._backward(case, *kept),
                "forward_backward": lambda: self.compute(case, inputs, device)}

    def _forward(self, case: Case, inputs: Inputs) -> tuple[np.ndarray, tuple]:
        """The reduced loss, and what the backward needs: exp(x - max), the row sums, the label weights.
        Classes on the last axis, any leading dimensions (N, d1, ...)."""
        x = inputs.logits
        dt = x.dtype
        acc = np.float32 if dt.itemsize < 4 else dt
        z = x - x.max(axis=-1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=-1, keepdims=True, dtype=acc)
        logp = z - np.log(s).astype(dt)
        if case.labels == "index":
            loss_rows = -np.take_along_axis(logp, inputs.labels[..., None], axis=-1)[..., 0].astype(acc)
            q = (inputs.labels[..., None] == np.arange(x.shape[-1])).astype(dt)
        else:
            q = inputs.labels
            # 0 * log(0) is 0: unlabelled -inf classes contribute nothing
            loss_rows = -np.where(q != 0, q * logp, 0).sum(axis=-1, dtype=acc)
        if case.reduction == "mean":
            with np.errstate(invalid="ignore"):  # an empty batch: 0 / 0 is NaN, as in the frameworks
                loss = (loss_rows.sum(dtype=acc) / loss_rows.size).astype(dt)
        elif case.reduction == "sum":
            loss = loss_rows.sum(dtype=acc).astype(dt)
        else:
            loss = loss_rows.astype(dt)
        return loss, (e, s, q)

    def _backward(self, case: Case, e: np.ndarray, s: np.ndarray, q: np.ndarray) -> np.ndarray:
        dt = e.dtype
        acc = np.float32 if dt.itemsize < 4 else dt
        p = (e / s.astype(dt)).astype(dt)
        grad = p * q.sum(axis=-1, keepdims=True, dtype=acc).astype(dt) - q
        return (grad / dt.type(e.size // e.shape[-1])).astype(dt) if case.reduction == "mean" else grad
