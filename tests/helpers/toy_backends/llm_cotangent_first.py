"""A reduction='none' backward that scales every row by the FIRST element of the upstream
gradient (Liger-Kernel PR 1298): right when the cotangent is all ones, wrong otherwise."""

import numpy as np

from xentcheck.backends.base import Output
from xentcheck.backends.numpy_backend import NumpyBackend
from xentcheck.core.cases import Case, Inputs


class CotangentFirst(NumpyBackend):
    name = "llm-cotangent-first"

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        v = inputs.cotangent
        if v is not None and v.ndim and v.size:
            inputs = Inputs(**{**vars(inputs), "cotangent": np.full_like(v, v.flat[0])})
        return super().compute(case, inputs, device)


BACKEND = CotangentFirst
