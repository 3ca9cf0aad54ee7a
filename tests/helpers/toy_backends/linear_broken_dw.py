"""dW accumulated in bfloat16 across row chunks of 4 (axolotl PR 1601, Megatron-LM PR 2206)."""

import importlib.util
from pathlib import Path

import ml_dtypes

_spec = importlib.util.spec_from_file_location("_linear_careful", Path(__file__).with_name("linear_careful.py"))
_careful = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_careful)


class BrokenDw(_careful.CarefulLinear):
    name = "linear-broken-dw"
    breaks = {"dw_chunks": (4, ml_dtypes.bfloat16)}


BACKEND = BrokenDw
