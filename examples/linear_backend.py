"""A linear-CE plugin: a chunked fused linear + cross-entropy in NumPy that never holds the N x V
logits of more than CHUNK rows, accumulating dW and db in float32 (float64 for float64 cases).

    xentcheck run --backend-file examples/linear_backend.py --case scale1e+0_float32_32x1000_lin64_index_mean_opt-b

A linear-CE variant has kind="linear"; run_variant receives LinearInputs (hidden, weight, bias,
labels, ...) and returns a LinearOutput (loss, dh, dw, db): see backends/base.py."""

import numpy as np

from xentcheck.backends.base import Backend, LinearOutput, Variant
from xentcheck.core.cases import IGNORE_INDEX

CHUNK = 8


class ChunkedLinearCE(Backend):
    name = "chunked-linear-ce"
    label_forms = ("index",)
    dtypes = ("float32", "float64")

    def variants(self):
        return [Variant("chunked_linear_ce", "eager", ("index",), api="examples/linear_backend.py",
                        options=("b", "ign"), kind="linear")]

    def run_variant(self, variant, case, inputs, device):
        dt = inputs.hidden.dtype
        h, w, b, y = inputs.hidden, inputs.weight, inputs.bias, inputs.labels
        kept = y != IGNORE_INDEX
        denom = max(int(kept.sum()), 0) if case.reduction == "mean" else 1
        rows = np.zeros(len(h), dtype=dt)
        dh = np.zeros_like(h)
        dw = np.zeros(w.shape, dtype=dt)
        db = np.zeros(w.shape[0], dtype=dt)
        for lo in range(0, len(h), CHUNK):
            hc, yc, kc = h[lo:lo + CHUNK], y[lo:lo + CHUNK], kept[lo:lo + CHUNK]
            o = hc @ w.T + (0 if b is None else b)
            m = o.max(axis=1, keepdims=True)
            e = np.exp(o - m)
            s = e.sum(axis=1, keepdims=True)
            r = np.arange(len(o))
            safe_y = np.where(kc, yc, 0)
            rows[lo:lo + CHUNK] = np.where(kc, np.log(s[:, 0]) + m[:, 0] - o[r, safe_y], 0)
            g = e / s
            g[r, safe_y] -= 1
            g[~kc] = 0
            if case.reduction == "mean":
                g /= denom if denom else np.inf
            dh[lo:lo + CHUNK] = g @ w
            dw += g.T @ hc
            db += g.sum(axis=0)
        loss = rows if case.reduction == "none" else rows.sum() / (denom if case.reduction == "mean" else 1)
        return LinearOutput(loss=np.asarray(loss, dtype=dt), dh=dh, dw=dw, db=None if b is None else db)


BACKEND = ChunkedLinearCE
