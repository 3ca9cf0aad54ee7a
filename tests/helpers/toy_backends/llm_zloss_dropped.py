"""z-loss dropped: lse_square_scale is accepted and never added (loss nor gradient)."""

from dataclasses import replace

from xentcheck.backends.base import Output
from xentcheck.backends.numpy_backend import NumpyBackend
from xentcheck.core.cases import Case, Inputs


class ZlossDropped(NumpyBackend):
    name = "llm-zloss-dropped"

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        kept = "+".join(t for t in case.options.split("+") if not t.startswith("z"))
        return super().compute(replace(case, options=kept), inputs, device)


BACKEND = ZlossDropped
