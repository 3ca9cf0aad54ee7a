"""Test plugin returning a transposed gradient."""

from xentcheck.backends.numpy_backend import NumpyBackend


class WrongShape(NumpyBackend):
    name = "broken-shape"

    def compute(self, case, inputs, device):
        out = super().compute(case, inputs, device)
        out.grad = out.grad.T.copy()
        return out


BACKEND = WrongShape
