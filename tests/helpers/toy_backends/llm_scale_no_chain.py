"""The logit scale's chain factor s missing from the gradient: the loss is CE(s x), the gradient
that of CE with respect to s x, not x."""

from xentcheck.backends.base import Output
from xentcheck.backends.numpy_backend import NumpyBackend
from xentcheck.core.cases import Case, Inputs


class ScaleNoChain(NumpyBackend):
    name = "llm-scale-no-chain"

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        out = super().compute(case, inputs, device)
        if case.logit_scale is not None:
            out.grad = (out.grad / out.grad.dtype.type(case.logit_scale)).astype(out.grad.dtype)
        return out


BACKEND = ScaleNoChain
