"""A careful implementation of the LLM-training options computed in the tested dtype (NumPy, each
operation rounded to float16 / bfloat16 / float32 / float64), as a framework's users compose
them: scale, softcap, max-shifted log_softmax, z-loss, reduction, then the VJP with the
cotangent; and the broken variants of issue 17, each breaking one option."""

from __future__ import annotations

import numpy as np

from xentcheck.core.cases import Case, Inputs
from xentcheck.core.dtypes import info
from xentcheck.problems.ce.reference import effective_labels

BROKEN = ("softcap_x_tanh", "softcap_missing", "zloss_grad_halved", "zloss_when_disabled", "cotangent_first_row",
          "cotangent_sign", "scale_missing_in_grad")
OTHER = ("zloss_negated",)  # breaks a property rather than the reference (tests/core/test_properties_llm.py)


def careful(case: Case, inputs: Inputs, semantics: str = "torch", broken: str | None = None):
    """(loss, gradient) in the case's dtype, rows as the harness holds them."""
    dt = info(case.dtype).np_type
    x = inputs.logits
    s, c, zz = case.logit_scale, case.softcap, case.zloss
    if broken == "zloss_when_disabled" and zz is None:
        zz = 1e-4
    with np.errstate(all="ignore"):
        y = x * dt(s) if s is not None else x
        t = None
        if c is not None and broken != "softcap_missing":
            t = np.tanh(y / dt(c))
            o = y * t if broken == "softcap_x_tanh" else dt(c) * t
        else:
            o = y
        m = o.max(axis=1, keepdims=True)
        zsh = o - m
        e = np.exp(zsh)
        big_s = e.sum(axis=1, keepdims=True)
        log_s = np.log(big_s)
        logp = zsh - log_s
        lse = (m + log_s)[:, 0]
        r64, denom = effective_labels(case, inputs, semantics, np.float64)
        r = r64.astype(dt)
        counted = (inputs.labels >= 0) & (inputs.labels < case.k) if case.labels == "index" else \
            np.ones(case.rows, dtype=bool)
        denom_z = counted.sum() if case.labels == "index" and semantics in ("torch", "keras") else case.rows
        ce = np.where(r != 0, -r * logp, dt(0)).sum(axis=1)
        p = e / big_s
        g = p * r.sum(axis=1, keepdims=True) - r
        zr = np.zeros(case.rows, dtype=dt)
        zg = np.zeros_like(g)
        if zz is not None:
            two_z = dt(zz) if broken == "zloss_grad_halved" else dt(2 * zz)
            zr = np.where(counted, dt(zz) * lse * lse, dt(0))
            if broken == "zloss_negated":
                zr = -zr
            zg = np.where(counted[:, None], (two_z * lse)[:, None] * p, dt(0))
        if case.reduction == "mean":
            d, d_z = dt(denom), dt(denom_z)
            loss = ce.sum() / d + (zr.sum() / d_z if zz is not None else dt(0))
            grad = g / d + (zg / d_z if zz is not None else dt(0))
        else:
            rows = ce + zr
            loss = rows.sum() if case.reduction == "sum" else rows
            grad = g + zg
        if t is not None:
            grad = grad * (dt(1) - t * t)  # tanh's autodiff: 1 - t^2 of its output
        if s is not None and broken != "scale_missing_in_grad":
            grad = grad * dt(s)
        v = inputs.cotangent
        if v is not None:
            if broken == "cotangent_first_row":
                v = np.full_like(v, v.ravel()[0])
            if broken == "cotangent_sign":
                v = np.abs(v)
            grad = grad * (v[:, None] if v.ndim == 1 else v)
    return np.asarray(loss, dtype=dt), np.asarray(grad, dtype=dt)
