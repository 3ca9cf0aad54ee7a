"""The TensorFlow GRPO composition (backends/tensorflow/grpo.py) with its clip written wrong one way:
pick one with --backend-file tf_grpo_toys.py::NAME."""

from xentcheck.backends.base import Variant
from xentcheck.backends.tensorflow import grpo
from xentcheck.backends.tensorflow.ce import TensorflowBackend


class _TfGrpoToy(TensorflowBackend):
    dtypes = ("float32", "float64")

    def clip(self, r, lo, hi):
        raise NotImplementedError

    def variants(self):
        return [Variant("tf_grpo_toy", "eager", ("index",), kind="grpo", options=("hi", "kl", "t", "grpo", "bnpo", "drgrpo"))]

    def run_variant(self, variant, case, inputs, device):
        tf = self.tf
        self._fns[("grpo", case.spec, case.reduction, "eager")] = grpo._fn(tf, case, clip=self.clip)
        return grpo.run(self, variant, case, inputs, device)


class TfGrpoClipSidesSwapped(_TfGrpoToy):
    """clip_by_value(r, 1 - e_hi, 1 + e_lo): with clip-higher, clipped ratios land on the wrong bounds."""
    name = "tf-grpo-clip-sides-swapped"

    def clip(self, r, lo, hi):
        return self.tf.clip_by_value(r, 2 - hi, 2 - lo)


class TfGrpoClipStraightThrough(_TfGrpoToy):
    """r + stop_gradient(clip(r) - r): the clipped value, but the gradient passes the clip as if r."""
    name = "tf-grpo-clip-straight-through"

    def clip(self, r, lo, hi):
        return r + self.tf.stop_gradient(self.tf.clip_by_value(r, lo, hi) - r)
