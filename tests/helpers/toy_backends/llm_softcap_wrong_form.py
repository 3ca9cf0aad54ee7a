"""Softcap written x tanh(x / c) instead of c tanh(x / c) (unsloth-zoo PR 593): a different
function, consistently differentiated. Everything else is the careful NumPy kernel."""

from dataclasses import replace

import numpy as np

from xentcheck.backends.base import Output
from xentcheck.backends.numpy_backend import NumpyBackend
from xentcheck.core.cases import Case, Inputs


class SoftcapWrongForm(NumpyBackend):
    name = "llm-softcap-x-tanh"

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        if case.softcap is None:
            return super().compute(case, inputs, device)
        c, s = case.softcap, case.logit_scale or 1.0
        y = inputs.logits.astype(np.float64) * s
        t = np.tanh(y / c)
        capped = Inputs(**{**vars(inputs), "logits": (y * t).astype(inputs.logits.dtype)})
        plain = "+".join(t for t in case.options.split("+") if not t.startswith(("cap", "s")))
        out = super().compute(replace(case, options=plain), capped, device)
        chain = s * (t + (y / c) * (1 - t * t))  # d/dx of (s x) tanh(s x / c)
        out.grad = (out.grad.astype(np.float64) * chain).astype(inputs.logits.dtype)
        return out


BACKEND = SoftcapWrongForm
