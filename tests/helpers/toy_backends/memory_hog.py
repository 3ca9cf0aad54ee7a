"""Test plugin: NumPy's results, except on the cases named in $XENTCHECK_TEST_HOG, a JSON object
{case_id: "self" or "child"}, where it first touches $XENTCHECK_TEST_HOG_BYTES (default 1 GiB) of
memory, in its own process or in a child process it waits for (which holds it 5 s). Under a smaller
--worker-memory the worker is killed before it answers; without one it answers as NumPy does."""

import json
import os
import subprocess
import sys

import numpy as np

from xentcheck.backends.numpy_backend import NumpyBackend

CHILD = "import sys, time, numpy as np; a = np.ones(int(sys.argv[1]) // 8); time.sleep(5)"


class MemoryHog(NumpyBackend):
    name = "memory-hog"

    def compute(self, case, inputs, device):
        where = json.loads(os.environ.get("XENTCHECK_TEST_HOG", "{}")).get(case.id)
        size = int(os.environ.get("XENTCHECK_TEST_HOG_BYTES", str(1 << 30)))
        if where == "self":
            hog = np.ones(size // 8)  # written, so every page is resident
            del hog
        elif where == "child":
            subprocess.run([sys.executable, "-c", CHILD, str(size)], check=True)
        return super().compute(case, inputs, device)


BACKEND = MemoryHog
