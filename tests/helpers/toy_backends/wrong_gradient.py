"""A plausible bug: the mean reduction divides the loss by N but forgets to divide the gradient."""

import numpy as np

from xentcheck.backends.base import Backend, Output, one_hot


class ForgetsMeanInGradient(Backend):
    name = "forgets-mean"
    dtypes = ("float32", "float64")

    def compute(self, case, inputs, device):
        x = inputs.logits.astype(np.float64)
        q = one_hot(inputs.labels, case.k) if case.labels == "index" else inputs.labels.astype(np.float64)
        lse = x.max(axis=1) + np.log(np.exp(x - x.max(axis=1, keepdims=True)).sum(axis=1))
        rows = np.where(q != 0, q * (lse[:, None] - x), 0).sum(axis=1)
        grad = np.exp(x - lse[:, None]) * q.sum(axis=1, keepdims=True) - q
        dt = inputs.logits.dtype
        loss = {"mean": rows.mean(), "sum": rows.sum(), "none": rows}[case.reduction]
        return Output(loss=np.asarray(loss).astype(dt), grad=grad.astype(dt))
