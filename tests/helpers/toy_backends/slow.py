"""Test plugin: NumPy's results after a pause ($XENTCHECK_TEST_DELAY seconds, default 0.3), so a
run can be interrupted part way; single-row cases raise, so runs also hold error records."""

import os
import time

from xentcheck.backends.numpy_backend import NumpyBackend


class Slow(NumpyBackend):
    name = "slow"

    def compute(self, case, inputs, device):
        time.sleep(float(os.environ.get("XENTCHECK_TEST_DELAY", "0.3")))
        if case.n == 1:
            raise ValueError(f"slow plugin refuses single-row case {case.id}")
        return super().compute(case, inputs, device)


BACKEND = Slow
