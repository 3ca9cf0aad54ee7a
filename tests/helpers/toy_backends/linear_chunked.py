"""Toy fused linear-CE kernels at two batch chunk sizes each, for the metamorphic checks
(xentcheck.problems.linear.properties): variant "toy_composed" is the materialised composition (the
careful kernel); "<kernel>_c4" and "<kernel>_c8" are the same kernel at 4 and 8 rows a chunk.

    careful     dW accumulated across chunks in float64: agrees with itself and the composition
    bf16acc     dW accumulated across chunks in a bfloat16 buffer (axolotl PR 1601): its two chunk
                settings disagree, and both disagree with the composition
    g_bf16      G rounded to bfloat16 before dh = G W, whatever the chunk: its chunk settings
                agree, but it disagrees with the composition
"""

import importlib.util
from pathlib import Path

import ml_dtypes
import numpy as np

from xentcheck.backends.base import LinearOutput, Variant

_spec = importlib.util.spec_from_file_location("_linear_careful", Path(__file__).with_name("linear_careful.py"))
_careful = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_careful)

KERNELS = {"careful": lambda c: {"dw_chunks": (c, np.float64)},
           "bf16acc": lambda c: {"dw_chunks": (c, ml_dtypes.bfloat16)},
           "g_bf16": lambda c: {"dw_chunks": (c, np.float64), "round_g": ml_dtypes.bfloat16}}
CHUNKS = (4, 8)


class ChunkedLinear(_careful.CarefulLinear):
    name = "linear-chunked"

    def variants(self):
        return [Variant("toy_composed", "eager", ("index",), options=("b",), kind="linear")] + [
            Variant(f"{k}_c{c}", "eager", ("index",), options=("b",), kind="linear") for k in KERNELS for c in CHUNKS]

    def run_variant(self, variant, case, inputs, device):
        if variant.impl == "toy_composed":
            breaks = {}
        else:
            kernel, chunk = variant.impl.rsplit("_c", 1)
            breaks = KERNELS[kernel](int(chunk))
        loss, dh, dw, db = _careful.linear_ce(inputs, case.reduction, **breaks)
        dt = inputs.hidden.dtype
        return LinearOutput(loss=np.asarray(loss).astype(dt), dh=dh.astype(dt), dw=dw.astype(dt),
                            db=None if inputs.bias is None else db.astype(dt))


BACKEND = ChunkedLinear
