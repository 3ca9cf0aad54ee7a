"""An example plugin: a "fused" cross-entropy kernel written in NumPy, streaming over class chunks
with an online softmax (running max and rescaled running sum), the way fused GPU kernels do.

Run it against the reference:

    xentcheck run --backend-file examples/my_backend.py --dtypes float32,float64

A plugin file defines one Backend subclass (or BACKEND = ...). `compute` receives the case
(dtype, n, k, labels form, reduction) and NumPy inputs, and returns the loss and the gradient of
sum(loss) with respect to the logits.
"""

from __future__ import annotations

import numpy as np

from xentcheck import Backend, Output

CHUNK = 4096


class OnlineSoftmaxKernel(Backend):
    name = "online-softmax"
    impl = "chunked online softmax (NumPy)"
    dtypes = ("float32", "float64")  # other dtypes are reported as skipped, with this reason

    def compute(self, case, inputs, device):
        x = inputs.logits
        n, k = x.shape
        rows = np.arange(n)
        if case.labels == "index":
            q = np.zeros_like(x)
            q[rows, inputs.labels] = 1
        else:
            q = inputs.labels
        # pass 1: running max m and running sum s of exp(x - m), chunk by chunk
        m = np.full(n, -np.inf, dtype=x.dtype)
        s = np.zeros(n, dtype=x.dtype)
        for lo in range(0, k, CHUNK):
            blk = x[:, lo:lo + CHUNK]
            m_new = np.maximum(m, blk.max(axis=1))
            s = s * np.exp(m - m_new) + np.exp(blk - m_new[:, None]).sum(axis=1)
            m = m_new
        log_s = np.log(s)
        # pass 2: loss terms and the gradient p * sum(q) - q, chunk by chunk. Working with
        # x - m (exact) rather than forming lse = m + log(s) and subtracting x keeps the loss
        # accurate when logits are large: lse - x would lose u * |x| to cancellation.
        big_q = q.sum(axis=1)
        loss = np.zeros(n, dtype=x.dtype)
        grad = np.empty_like(x)
        for lo in range(0, k, CHUNK):
            z = x[:, lo:lo + CHUNK] - m[:, None]
            qb = q[:, lo:lo + CHUNK]
            loss += np.where(qb != 0, qb * (log_s[:, None] - z), 0).sum(axis=1)
            grad[:, lo:lo + CHUNK] = np.exp(z) / s[:, None] * big_q[:, None] - qb
        if case.reduction == "mean":
            return Output(loss=loss.sum() / x.dtype.type(n), grad=grad / x.dtype.type(n))
        if case.reduction == "sum":
            return Output(loss=loss.sum(), grad=grad)
        return Output(loss=loss, grad=grad)
