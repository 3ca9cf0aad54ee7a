"""The reference's C kernels (harness/core/_xent.c), loaded with ctypes.

The install compiles them where a C compiler is found; without them (or with
XENTCHECK_REFERENCE_KERNEL=numpy, to cross-check one implementation against the other) the
reference computes in NumPy: the same formula, slower. ctypes releases the GIL during each call,
so the reference's threads run chunks of rows side by side.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from functools import cache

import numpy as np

ENV = "XENTCHECK_REFERENCE_KERNEL"  # "numpy": skip the compiled kernels


@cache
def _library() -> ctypes.CDLL | None:
    spec = importlib.util.find_spec("xentcheck.core._xent")
    if spec is None or not spec.origin:
        return None
    try:
        lib = ctypes.CDLL(spec.origin)
    except OSError:  # built for another platform or Python, say: NumPy does the work
        return None
    ptr, i64, f64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
    lib.xc_exp_nonpos.argtypes = [ptr, ptr, i64]
    lib.xc_exp_nonpos.restype = None
    lib.xc_index_rows_f32.argtypes = [ptr, ptr, i64, i64, f64, ptr, ptr, ptr]
    lib.xc_index_rows_f32.restype = None
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None where they are not built or are switched off."""
    if os.environ.get(ENV, "").lower() == "numpy":
        return None
    return _library()


def name() -> str:
    """Which implementation the reference uses here, for the run's environment record."""
    return "C (harness/core/_xent.c)" if library() is not None else "NumPy"


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def exp_nonpos(z: np.ndarray) -> np.ndarray | None:
    """exp(z) for float64 z <= 0 (NaN and -inf allowed), within an ulp; None without the kernels
    or for other arrays (the caller then uses np.exp)."""
    lib = library()
    if lib is None or z.dtype != np.float64 or z.size == 0:
        return None
    z = np.ascontiguousarray(z)
    out = np.empty_like(z)
    lib.xc_exp_nonpos(_ptr(z), _ptr(out), z.size)
    return out


def index_rows(x: np.ndarray, labels: np.ndarray, divisor: int | None, grad: np.ndarray,
               scratch: np.ndarray | None = None) -> np.ndarray | None:
    """Softmax cross-entropy rows against class indices (see harness/core/_xent.c) for float32 logits
    x (n, k), or 16-bit logits converted exactly to float32, into `grad` (n, k float64, contiguous);
    returns the rows' losses. `scratch`: a contiguous float64 buffer of at least k elements to
    reuse (a thread's own), else one is allocated. None where the kernels cannot take the call: no
    kernels, another dtype, or a label outside [0, k) (NumPy's indexing then reports it)."""
    lib = library()
    n, k = x.shape
    if lib is None or x.dtype.itemsize > 4 or grad.dtype != np.float64 or not grad.flags.c_contiguous or k == 0:
        return None
    if n and (labels.min() < 0 or labels.max() >= k):
        return None
    x = np.ascontiguousarray(x, dtype=np.float32)  # float16 / bfloat16 convert exactly
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    if scratch is None or scratch.dtype != np.float64 or scratch.size < k or not scratch.flags.c_contiguous:
        scratch = np.empty(k, dtype=np.float64)
    loss = np.empty(n, dtype=np.float64)
    lib.xc_index_rows_f32(_ptr(x), _ptr(labels), n, k, float(divisor or 1), _ptr(grad), _ptr(loss), _ptr(scratch))
    return loss
