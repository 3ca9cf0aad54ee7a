"""Test plugin computing in float64 whatever dtype is asked for."""

from xentcheck.backends.numpy_backend import NumpyBackend
from xentcheck.core.cases import Inputs


class WrongDtype(NumpyBackend):
    name = "broken-dtype"

    def compute(self, case, inputs, device):
        labels = inputs.labels.astype("float64") if inputs.labels.dtype.kind == "f" else inputs.labels
        return super().compute(case, Inputs(inputs.logits.astype("float64"), labels, inputs.target), device)


BACKEND = WrongDtype
