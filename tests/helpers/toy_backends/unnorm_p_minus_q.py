"""The gradient as p - q where it is p * sum(q) - q: right for one-hot and normalised soft labels,
wrong on every row whose label weights do not sum to one (what tf.nn.softmax_cross_entropy_with_logits
documents and computes). The loss is right: the NumPy backend's careful forward."""

from xentcheck.backends.numpy_backend import NumpyBackend


class PMinusQ(NumpyBackend):
    name = "unnorm-p-minus-q"
    options = ()  # the plain cases: no LLM-training option

    def _backward(self, case, inputs, e, s, q, lse=None, u=None):
        dt = e.dtype
        grad = (e / s.astype(dt)).astype(dt) - q  # the bug: sum(q) taken as 1
        if case.reduction == "mean":
            grad = (grad / dt.type(e.size // e.shape[-1])).astype(dt)
        return grad


BACKEND = PMinusQ
