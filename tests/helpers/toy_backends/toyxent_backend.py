"""Test plugin for `xentcheck bisect`: the cross-entropy of the toy package `toyxent`, whose
releases the bisect tests build (tests/bisect/wheels.py). Imported in each bisect environment.
With $XENTCHECK_TEST_HANG_VERSION set to toyxent's version, it hangs (for the Ctrl-C test)."""

import os
import time
from importlib.metadata import version

import numpy as np

from xentcheck.backends.base import Backend, Output


class ToyXent(Backend):
    name = "toyxent"
    framework = "toyxent"
    impl = "toyxent.cross_entropy"
    dtypes = ("float32", "float64")
    label_forms = ("index",)

    def load(self):
        import toyxent
        self.toyxent = toyxent

    def compute(self, case, inputs, device):
        if os.environ.get("XENTCHECK_TEST_HANG_VERSION") == version("toyxent"):
            time.sleep(3600)
        loss, grad = self.toyxent.cross_entropy(inputs.logits, inputs.labels)
        dtype = inputs.logits.dtype
        if case.reduction == "mean":
            return Output(loss=np.asarray(loss.mean(), dtype), grad=(grad / case.n).astype(dtype))
        if case.reduction == "sum":
            return Output(loss=np.asarray(loss.sum(), dtype), grad=grad.astype(dtype))
        return Output(loss=loss.astype(dtype), grad=grad.astype(dtype))


BACKEND = ToyXent
