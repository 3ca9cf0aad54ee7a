"""NumPy RL log-probabilities and entropy: log-softmax with the row maximum taken out, H = -sum p
log p, and the analytic gradients (problems/rl/reference.py), in the dtype widened to at least
float32, rounded once."""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case
from xentcheck.problems.rl.cases import parse


def variants() -> list[Variant]:
    return [Variant("rl_analytic", "eager", ("index",), api="analytic log p_y, entropy and gradients", options=("t",),
                    kind="rl")]


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    dt = inputs.logits.dtype
    acc = np.float32 if dt.itemsize < 4 else dt.type
    t = acc(parse(case.spec).temperature)
    a = inputs.logits.astype(acc) / t
    rows = np.arange(len(a))
    z = a - a.max(axis=1, keepdims=True)
    lp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    p = np.exp(lp)
    h = -(p * lp).sum(axis=1)
    g = -p
    g[rows, inputs.labels] += 1
    adv, coef = inputs.advantages.astype(acc)[:, None], inputs.coefficients.astype(acc)[:, None]
    return Output(lp[rows, inputs.labels].astype(dt), grads={
        "entropy": h.astype(dt), "grad": (g * adv / t).astype(dt), "egrad": (-p * (lp + h[:, None]) * coef / t).astype(dt)})
