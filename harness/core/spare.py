"""One spare gradient buffer, reused from one reference to the next of the same size.

A fresh N x K float64 array costs the OS a page fault and zeroing for every page on first touch:
for a 4096 x 32,000 case (1 GiB) 0.07 to 0.1 s of the reference's 0.25 s on the Zen 3 host of
docs/performance.md. The reference computes its gradient into `SPARE.empty(...)`, which hands
out the buffer of the last large gradient again once nothing holds it any longer: every NumPy view
of a buffer (a slice, a reshape, torch.from_numpy's tensor) holds the buffer itself, so the
buffer's reference count says when it is free.

Only one buffer is kept, of at least MIN_BYTES (NumPy's own cache takes small arrays) and at most
MAX_FRACTION of the machine's memory: the memory held idle between cases is one gradient the
process has already needed. `release()` lets it go.
"""

from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

MIN_BYTES = 1 << 26  # 64 MiB: below it a fresh array costs little
MAX_FRACTION = 1 / 8  # of the machine's memory: larger gradients are allocated and freed as before


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not on every platform
        return None


class SpareBuffer:
    def __init__(self, max_bytes: int | None = None) -> None:
        total = _physical_memory()
        self.max_bytes = max_bytes if max_bytes is not None else (int(total * MAX_FRACTION) if total else 0)
        self._buf: np.ndarray | None = np.empty(1)
        # what sys.getrefcount says of the buffer when this attribute alone holds it, measured as
        # empty() asks (2 up to CPython 3.13: the attribute and the call's argument; an interpreter
        # that lends the argument says 1); a buffer anything else holds counts more
        self._alone = sys.getrefcount(self._buf)
        self._buf = None
        self._lock = threading.Lock()
        self.reused = 0  # how many arrays came from a kept buffer (for tests and benchmarks)

    def empty(self, shape: tuple[int, ...], dtype: type | np.dtype) -> np.ndarray:
        """An uninitialised array, as np.empty, on the kept buffer's pages where it is free and the
        same size."""
        dtype = np.dtype(dtype)
        nbytes = math.prod(shape) * dtype.itemsize
        if not MIN_BYTES <= nbytes <= self.max_bytes:
            return np.empty(shape, dtype)
        with self._lock:
            if self._buf is not None and self._buf.nbytes == nbytes and sys.getrefcount(self._buf) == self._alone:
                self.reused += 1
                return self._buf.view(dtype).reshape(shape)
            # a different size, or still in use: its holders keep it as long as they need it
            self._buf = np.empty(nbytes, np.uint8)
            return self._buf.view(dtype).reshape(shape)

    def release(self) -> None:
        """Stop keeping the buffer (its memory goes back once nothing else holds it)."""
        with self._lock:
            self._buf = None


SPARE = SpareBuffer()
