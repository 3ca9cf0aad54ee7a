"""The careful linear-CE kernel with dW off by a relative error read from XENTCHECK_TOY_DW_ERROR
(0 when unset): two runs at 1e-9 and 1.6e-8 both pass torch's float64 tolerance (rtol 1e-7), and
`xentcheck compare` finds dW's error grown 16x."""

import importlib.util
import os
from pathlib import Path

from xentcheck.backends.base import LinearOutput

_spec = importlib.util.spec_from_file_location("_linear_careful", Path(__file__).with_name("linear_careful.py"))
_careful = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_careful)


class DwDrift(_careful.CarefulLinear):
    name = "linear-dw-drift"

    def run_variant(self, variant, case, inputs, device):
        out = super().run_variant(variant, case, inputs, device)
        error = float(os.environ.get("XENTCHECK_TOY_DW_ERROR", "0"))
        return LinearOutput(loss=out.loss, dh=out.dh, dw=out.dw * (1 + error), db=out.db)


BACKEND = DwDrift
