"""Test plugin: three implementations of NumPy's cross-entropy, each after a short pause, so a run
can be killed part way through a multi-variant backend."""

import os
import time

from xentcheck.backends.base import Variant
from xentcheck.backends.numpy_backend import NumpyBackend


class SlowVariants(NumpyBackend):
    name = "slow-variants"

    def variants(self):
        return [Variant("first", "eager"), Variant("second", "eager"), Variant("third", "jit")]

    def run_variant(self, variant, case, inputs, device):
        time.sleep(float(os.environ.get("XENTCHECK_TEST_DELAY", "0.1")))
        return self.compute(case, inputs, device)


BACKEND = SlowVariants
