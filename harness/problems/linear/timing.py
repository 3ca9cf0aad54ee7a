"""How `xentcheck bench --linear-shapes NxDxV,...` times linear-CE (the record's `timing`).

A bench shape (4096 x 2048 x 128,256: W far beyond the suite's V x D limit) is a case-like
workload: the `scale1e+0` family's linear case (index labels, mean, no bias), parsed by the worker
from its id without the suite's size limits (`check` holds it to that form), with inputs drawn
here rather than from the per-id stream (which makes float64 arrays of W's size): h uniform in
[-1, 1], W uniform in [-3/sqrt(D), 3/sqrt(D)] (logits of standard deviation about 1), labels
uniform over V, drawn in float32 a block at a time, then rounded to the dtype.
"""

from __future__ import annotations

import numpy as np

from xentcheck.core import dtypes
from xentcheck.core.cases import Case
from xentcheck.problems.linear.cases import LinearInputs
from xentcheck.timing.measure import dtype_bytes

FAMILY = "scale1e+0"
# what torch's composition F.cross_entropy(F.linear(h, W), y) holds at its peak: the logits, their
# softmax and gradient (about 4 logits-sized buffers: 8.8 GB at 4096 x 2048 x 128,256 float32), and
# h and W three times (the inputs, the framework's tensors, their gradients)
LOGITS_FACTOR, WEIGHT_FACTOR = 4, 3


def parse(text: str) -> tuple[int, ...]:
    """"4096x2048x128256" -> (4096, 2048, 128256) (N x D x V); ValueError when malformed."""
    try:
        n, d, v = (int(x) for x in text.strip().lower().split("x"))
    except ValueError:
        raise ValueError(f"malformed linear shape {text.strip()!r} (expected NxDxV, e.g. 4096x2048x128256)") from None
    if min(n, d) < 1 or v < 2:
        raise ValueError(f"linear shape {text.strip()!r}: N and D must be positive and V at least 2")
    return n, d, v


def workload(dtype: str, shape: tuple[int, ...], labels: str) -> Case:
    n, d, v = shape
    return Case(FAMILY, dtype, n, v, labels, "mean", "", (), d)


def check(case: Case) -> None:
    """A bench workload's form; no size limit (the parent skips what the memory cannot hold)."""
    if (case.family, case.labels, case.reduction, case.options, case.extra) != (FAMILY, "index", "mean", "", ()):
        raise ValueError(f"a linear-CE timing workload is {FAMILY}, index labels, mean, no options ({case.id})")
    if case.n < 1 or case.k < 2:
        raise ValueError(f"a linear-CE timing workload needs N >= 1 and V >= 2 ({case.id})")
    dtypes.info(case.dtype)


def inputs(case: Case, seed: int = 0) -> LinearInputs:
    """h (N, D), W (V, D) and the labels (module docstring)."""
    rng = np.random.default_rng(seed)
    np_type = dtypes.info(case.dtype).np_type
    a = np.float32(3.0 / np.sqrt(case.d))
    h: np.ndarray = (rng.random((case.n, case.d), dtype=np.float32) * 2 - 1).astype(np_type)
    w: np.ndarray = np.empty((case.k, case.d), dtype=np_type)
    step = max(1, (1 << 22) // max(1, case.d))
    for lo in range(0, case.k, step):
        block = rng.random((min(case.k, lo + step) - lo, case.d), dtype=np.float32)
        block *= 2
        block -= 1
        block *= a
        w[lo:lo + len(block)] = block.astype(np_type) if np_type is not np.float32 else block
    labels = rng.integers(0, case.k, case.n, dtype=np.int64)
    return LinearInputs(h, w, None, labels, labels.copy())


def floor(case: Case) -> int:
    """Bytes forward+backward must move at least: read h and W, write dh and dW, read the labels
    (int64), write the loss."""
    b = dtype_bytes(case.dtype)
    return 2 * (case.n + case.k) * case.d * b + case.n * 8 + b


def need(case: Case) -> int:
    b = dtype_bytes(case.dtype)
    return LOGITS_FACTOR * case.n * case.k * b + WEIGHT_FACTOR * (case.n + case.k) * case.d * b
