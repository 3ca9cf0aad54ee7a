"""A backend whose numbers depend on the settings a framework's do (its thread count, oneDNN, MKL's
code path), exaggerated so that a test can tell them apart: the loss is the exact one times
1 + 1e-3 OMP_NUM_THREADS + 1e-2 [TF_ENABLE_ONEDNN_OPTS=1] + 1e-1 [MKL_CBWR set], as read when it
computes; the gradient is right."""

import os

import numpy as np

from xentcheck.backends.base import Backend, Output, one_hot


class NumericsSettings(Backend):
    name = "numerics-settings"
    dtypes = ("float32", "float64")

    def compute(self, case, inputs, device):
        x = inputs.logits.astype(np.float64)
        q = one_hot(inputs.labels, case.k) if case.labels == "index" else inputs.labels.astype(np.float64)
        m = x.max(axis=1, keepdims=True)
        lse = m + np.log(np.exp(x - m).sum(axis=1, keepdims=True))
        rows = np.where(q != 0, q * (lse - x), 0).sum(axis=1)
        grad = np.exp(x - lse) * q.sum(axis=1, keepdims=True) - q
        d = case.n if case.reduction == "mean" else 1
        loss = rows if case.reduction == "none" else rows.sum() / d
        off = (1e-3 * int(os.environ.get("OMP_NUM_THREADS", "0")) + 1e-2 * (os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1")
               + 1e-1 * ("MKL_CBWR" in os.environ))
        dt = inputs.logits.dtype
        return Output(loss=(np.asarray(loss) * (1 + off)).astype(dt), grad=(grad / d).astype(dt))
