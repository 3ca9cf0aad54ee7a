"""Softcap silently not applied (ml-cross-entropy issue 48): the option is taken, then ignored."""

from dataclasses import replace

from xentcheck.backends.base import Output
from xentcheck.backends.numpy_backend import NumpyBackend
from xentcheck.core.cases import Case, Inputs


class SoftcapDropped(NumpyBackend):
    name = "llm-softcap-dropped"

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        kept = "+".join(t for t in case.options.split("+") if not t.startswith("cap"))
        return super().compute(replace(case, options=kept), inputs, device)


BACKEND = SoftcapDropped
