"""NumPy linear-CE: logits h W^T + b in the dtype, the NumPy backend's analytic CE gradient G,
then dh = G W, dW = G^T h, db = sum_n G_n (products accumulated in at least float32)."""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case, Inputs


def variants() -> list[Variant]:
    return [Variant("linear_analytic", "eager", ("index",), api="analytic CE of h @ W.T + b", options=("b", "ct"),
                    kind="linear")]


def _acc(a: np.ndarray) -> np.ndarray:
    return a if a.dtype.itemsize >= 4 else a.astype(np.float32)


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    dt = inputs.hidden.dtype
    h, w = inputs.hidden, inputs.weight
    logits = (_acc(h) @ _acc(w).T).astype(dt)
    if inputs.bias is not None:
        logits = (logits + inputs.bias).astype(dt)
    plain = Case(case.family, case.dtype, case.n, case.k, "index", case.reduction,
                 "+".join(t for t in case.options.split("+") if t.startswith("ct")))
    out = backend.compute(plain, Inputs(logits, inputs.labels, inputs.target, cotangent=inputs.cotangent), device)
    g = _acc(np.asarray(out.grad))
    return Output(out.loss, grads={"dh": (g @ _acc(w)).astype(dt), "dw": (g.T @ _acc(h)).astype(dt),
                                   "db": g.sum(axis=0).astype(dt) if inputs.bias is not None else None})
