"""Test plugin: NumPy's results, except on the cases named in $XENTCHECK_TEST_FAULTS, a JSON
object {case_id: fault}, where the worker really dies or hangs."""

import ctypes
import json
import os
import signal
import time

from xentcheck.backends.numpy_backend import NumpyBackend


class Faulty(NumpyBackend):
    name = "faulty"

    def compute(self, case, inputs, device):
        fault = json.loads(os.environ.get("XENTCHECK_TEST_FAULTS", "{}")).get(case.id)
        if fault == "segfault":
            ctypes.string_at(0)  # reads address 0: SIGSEGV
        elif fault == "abort":
            os.abort()
        elif fault == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer sends
        elif fault == "exit":
            os._exit(3)
        elif fault == "hang":
            time.sleep(3600)
        return super().compute(case, inputs, device)


BACKEND = Faulty
