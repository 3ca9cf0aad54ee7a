"""How a callable is timed, and the memory-bandwidth floor a time is compared with.

`measure` times the first call apart (compilation, tracing, allocator warm-up), warms up, then
runs blocks of repeated calls, each block at least `min_block` seconds so the clock's resolution
and per-call jitter average out, and reports per-call statistics over the blocks: median, IQR,
min, and a noise flag when IQR / median > NOISY. The callables synchronise the device themselves.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable

import numpy as np

NOISY = 0.10  # IQR / median above this: the figure is flagged as noisy
# Set (not "" or "0"): timings of no meaning, fast, for the test suite (docs/testing.md): every block
# and warm-up 1 ms, three blocks, and the bandwidth from a 1 MiB copy. The workers inherit it.
QUICK_ENV = "XENTCHECK_TIMING_QUICK"
QUICK_SECONDS = 0.001


def quick() -> bool:
    return os.environ.get(QUICK_ENV, "") not in ("", "0")


def measure(fn: Callable[[], object], min_block: float = 0.2, blocks: int = 7, warmup: float = 0.2) -> dict:
    """Seconds per call of `fn`: {"first", "median", "iqr", "min", "noisy", "calls_per_block", "blocks"}.

    Python's garbage collector is off while it times, as timeit and torch's Timer have it: a
    collection of the framework's hundreds of thousands of objects, triggered by whatever call
    happens to allocate next, is not the kernel's time."""
    if quick():
        min_block, blocks, warmup = min(min_block, QUICK_SECONDS), min(blocks, 3), min(warmup, QUICK_SECONDS)
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _measure(fn, min_block, blocks, warmup)
    finally:
        if enabled:
            gc.enable()


def _measure(fn: Callable[[], object], min_block: float, blocks: int, warmup: float) -> dict:
    clock = time.perf_counter
    start = clock()
    fn()
    first = clock() - start
    # warm up for `warmup` seconds (at least one more call), which also sizes the blocks
    calls, start = 0, clock()
    while True:
        fn()
        calls += 1
        spent = clock() - start
        if spent >= warmup:
            break
    per_call = spent / calls
    n = max(1, int(np.ceil(min_block / max(per_call, 1e-9))))
    times = []
    for _ in range(blocks):
        start = clock()
        for _ in range(n):
            fn()
        times.append((clock() - start) / n)
    return summarize(times, first, n)


def summarize(per_call: list[float], first: float, calls_per_block: int) -> dict:
    t = np.asarray(per_call, dtype=np.float64)
    q25, med, q75 = np.percentile(t, [25, 50, 75])
    iqr = float(q75 - q25)
    return {"first": first, "median": float(med), "iqr": iqr, "min": float(t.min()),
            "noisy": bool(med > 0 and iqr / med > NOISY), "calls_per_block": calls_per_block, "blocks": len(t)}


def dtype_bytes(dtype: str) -> int:
    return {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}[dtype]


def floor_bytes(n: int, k: int, dtype: str, labels: str = "index", grad_bytes: int | None = None) -> int:
    """Bytes forward+backward must move at least: read the logits, write the gradient, read the
    labels (int64 indices, or an N x K weight matrix), write the per-row losses."""
    b = dtype_bytes(dtype)
    label = 8 if labels == "index" else k * b
    return n * k * (b + (b if grad_bytes is None else grad_bytes)) + n * (label + b)


def copy_bandwidth(nbytes: int = 1 << 28, min_block: float = 0.2) -> dict:
    """Bytes per second of a large array copy (read + write) on this machine, one thread."""
    if quick():
        nbytes, min_block = min(nbytes, 1 << 20), min(min_block, QUICK_SECONDS)
    src = np.ones(nbytes // 8, dtype=np.float64)
    dst = np.empty_like(src)
    stats = measure(lambda: np.copyto(dst, src), min_block=min_block, blocks=5, warmup=0.1)
    return {"bytes_per_second": 2 * src.nbytes / stats["min"], "array_bytes": src.nbytes,
            "median_bytes_per_second": 2 * src.nbytes / stats["median"], "method": "numpy.copyto of a float64 array"}
