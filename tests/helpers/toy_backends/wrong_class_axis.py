"""Test plugin that takes extra dimensions but normalises over axis 1 instead of the class axis:
right on (N, K) logits, wrong on (N, d1, K). The harness must catch it on an extra-dimension case."""

import numpy as np

from xentcheck.backends.base import Backend, Output


class WrongClassAxis(Backend):
    name = "wrong-class-axis"
    dtypes = ("float32", "float64")
    label_forms = ("onehot", "soft")
    extra_dims = True

    def compute(self, case, inputs, device):
        x, q = inputs.logits, inputs.labels
        z = x - x.max(axis=1, keepdims=True)  # the bug: axis 1, not -1
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        rows = -(q * logp).sum(axis=-1)
        grad = np.exp(logp) * q.sum(axis=-1, keepdims=True) - q
        if case.reduction == "mean":
            return Output(loss=rows.mean(), grad=grad / x.dtype.type(rows.size))
        return Output(loss=rows.sum() if case.reduction == "sum" else rows, grad=grad)


BACKEND = WrongClassAxis
