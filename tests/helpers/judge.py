"""Judging a loss and gradient in a test as the harness does (xentcheck.core.evaluate), without a backend."""

from __future__ import annotations

import numpy as np

from xentcheck.core.evaluate import Subject, VariantOutput, evaluate


def judged(case, ref, loss, grad, loss_dtype: str | None, grad_dtype: str | None, tolerances) -> dict:
    """The record evaluate() makes of an output that came back with this loss and gradient."""
    out = VariantOutput("ok", loss=np.asarray(loss), grads={"grad": np.asarray(grad)}, loss_dtype=loss_dtype,
                        grad_dtype=grad_dtype)
    return evaluate(case, Subject(backend="test"), out, tolerances, reference=ref).to_dict()
