"""Test plugin computing in float64 whatever dtype is asked for."""

from backends.numpy_backend import NumpyBackend
from harness.cases import Inputs


class WrongDtype(NumpyBackend):
    name = "broken-dtype"

    def compute(self, case, inputs, device):
        labels = inputs.labels.astype("float64") if inputs.labels.dtype.kind == "f" else inputs.labels
        return super().compute(case, Inputs(inputs.logits.astype("float64"), labels, inputs.target), device)


BACKEND = WrongDtype
