"""Breaks one thing, as a vectorised kernel whose loop over classes runs in pairs: with an odd
number of classes K the last class's gradient is never written (left 0). The loss is NumPy's,
right; so is the gradient for every even K. For the fuzz campaign's test: it should find this
kind, on odd K only, and shrink it to a small odd K."""

from xentcheck.backends.base import Output
from xentcheck.backends.numpy_backend import NumpyBackend


class TailDrop(NumpyBackend):
    name = "tail-drop"
    dtypes = ("float32", "float64")

    def compute(self, case, inputs, device):
        out = super().compute(case, inputs, device)
        if case.k % 2:
            grad = out.grad.copy()
            grad[..., -1] = 0
            return Output(loss=out.loss, grad=grad)
        return out


BACKEND = TailDrop
