"""A backend whose numerics depend on a setting, as a framework flag or version would change them:
with XENTCHECK_TEST_SLOPPY=1 it forms the loss as lse - x[label] in the tested dtype (no shift by
the row maximum before subtracting), which loses u * |x| once logits are large; otherwise it
computes in float64 and rounds once."""

import os

import numpy as np

from xentcheck.backends.base import Backend, Output, one_hot


class EnvSloppy(Backend):
    name = "env-sloppy"
    impl = "logsumexp (NumPy)"
    dtypes = ("float32", "float64")

    def settings(self):
        return {"XENTCHECK_TEST_SLOPPY": os.environ.get("XENTCHECK_TEST_SLOPPY", "0")}

    def compute(self, case, inputs, device):
        dt = inputs.logits.dtype
        x = inputs.logits.astype(np.float64)
        q = one_hot(inputs.labels, case.k) if case.labels == "index" else inputs.labels.astype(np.float64)
        m = x.max(axis=1, keepdims=True)
        lse = m + np.log(np.exp(x - m).sum(axis=1, keepdims=True))
        if os.environ.get("XENTCHECK_TEST_SLOPPY") == "1":
            lse_d, x_d = lse.astype(dt), inputs.logits
            rows = np.where(q != 0, q * (lse_d - x_d).astype(np.float64), 0).sum(axis=1)
        else:
            rows = np.where(q != 0, q * (lse - x), 0).sum(axis=1)
        grad = np.exp(x - lse) * q.sum(axis=1, keepdims=True) - q
        d = case.n if case.reduction == "mean" else 1
        loss = rows if case.reduction == "none" else rows.sum() / d
        return Output(loss=np.asarray(loss).astype(dt), grad=(grad / d).astype(dt))
