"""A careful linear-CE kernel: logits, softmax and the products in float64, rounded once to the
case's dtype at the end. The linear toys (linear_broken_*.py) each break one gradient of it."""

import numpy as np

from xentcheck.backends.base import Backend, LinearOutput, Variant


def linear_ce(inputs, reduction: str, round_g=None, dw_chunks=None, db_acc=None):
    """(loss, dh, dW, db) of CE(h W^T + b, y) in float64; the keywords break one gradient."""
    h, w = inputs.hidden.astype(np.float64), inputs.weight.astype(np.float64)
    o = h @ w.T + (0 if inputs.bias is None else inputs.bias.astype(np.float64))
    m = o.max(axis=1, keepdims=True)
    e = np.exp(o - m)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(len(o))
    y = inputs.labels
    loss_rows = (np.log(s[:, 0]) + m[:, 0]) - o[rows, y]
    g = e / s
    g[rows, y] -= 1
    denom = len(o) if reduction == "mean" else 1
    g /= denom
    loss = loss_rows if reduction == "none" else loss_rows.sum() / denom
    gh = g if round_g is None else g.astype(round_g).astype(np.float64)
    dh = gh @ w
    if dw_chunks is None:
        dw = g.T @ h
    else:  # partial dW of each chunk of rows added into a low-precision buffer
        dw = np.zeros(w.shape, dtype=dw_chunks[1])
        for lo in range(0, len(o), dw_chunks[0]):
            dw = (dw.astype(np.float64) + g[lo:lo + dw_chunks[0]].T @ h[lo:lo + dw_chunks[0]]).astype(dw_chunks[1])
    if db_acc is None:
        db = g.sum(axis=0)
    else:  # row by row into a low-precision accumulator
        db = np.zeros(w.shape[0], dtype=db_acc)
        for row in g:
            db = (db.astype(np.float64) + row).astype(db_acc)
    return loss, dh, dw, db


class CarefulLinear(Backend):
    name = "linear-careful"
    dtypes = ("float32", "float64")
    label_forms = ("index",)
    breaks: dict = {}

    def variants(self):
        return [Variant("toy_linear_ce", "eager", ("index",), options=("b",), kind="linear")]

    def run_variant(self, variant, case, inputs, device):
        loss, dh, dw, db = linear_ce(inputs, case.reduction, **self.breaks)
        dt = inputs.hidden.dtype
        return LinearOutput(loss=np.asarray(loss).astype(dt), dh=dh.astype(dt), dw=dw.astype(dt),
                            db=None if inputs.bias is None else db.astype(dt))


BACKEND = CarefulLinear
