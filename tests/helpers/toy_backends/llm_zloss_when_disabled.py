"""z-loss added when it was disabled (OLMo-core PR 702): a default coefficient 1e-4 applies
whenever the case asks for none."""

from dataclasses import replace

from xentcheck.backends.base import Output
from xentcheck.backends.numpy_backend import NumpyBackend
from xentcheck.core.cases import OPTIONS, Case, Inputs, parse_option


class ZlossWhenDisabled(NumpyBackend):
    name = "llm-zloss-when-disabled"

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        if case.zloss is None:
            tokens = [t for t in case.options.split("+") if t] + ["z1e-4"]
            tokens.sort(key=lambda t: OPTIONS.index(parse_option(t)[0]))
            case = replace(case, options="+".join(tokens))
        return super().compute(case, inputs, device)


BACKEND = ZlossWhenDisabled
