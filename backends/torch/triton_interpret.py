"""Running Triton kernels (Liger-Kernel's) on the CPU through Triton's interpreter
(TRITON_INTERPRET=1): what it cannot do, and two gaps of Triton 3.9's interpreter closed the way
compiled Triton behaves. Shared by examples/liger_backend.py and backends/torch/liger_linear.py, liger_distill.py."""

from __future__ import annotations

import importlib
import os
from typing import Any

import numpy as np

from xentcheck.backends.base import Backend

# the interpreter stores bfloat16 as uint16 and runs arithmetic on the bit patterns (its
# documentation: no bfloat16 operations); Liger's weight path negates a bfloat16 weight and its
# backward multiplies bfloat16 by bfloat16: garbage that compiled Triton would not give
BFLOAT16 = ("Triton's interpreter does arithmetic on bfloat16's uint16 storage (no bfloat16 operations): "
            "results would be the interpreter's, not liger's")
SHIMS = "float kernel arguments as fp32 scalars; libdevice tanh as numpy.tanh"
LIGER_INSTALL = "pip install 'xentcheck[liger]' (liger-kernel and triton, next to an installed torch)"


def load_liger(backend, kernel_module: str) -> None:
    """Import torch and triton for a Liger backend: `backend.torch`, `backend.triton`, `backend.cuda`.
    Without a GPU Triton's interpreter runs the kernels: TRITON_INTERPRET must be set before triton
    or liger is first imported (@triton.jit reads it then), and the interpreter's gaps are closed in
    `kernel_module` (a liger_kernel.ops module). ImportError names the extra to install."""
    try:
        import torch
        backend.cuda = torch.cuda.is_available()
        if not backend.cuda:
            os.environ["TRITON_INTERPRET"] = "1"
        import triton
        kernels = importlib.import_module(kernel_module)
    except ImportError as exc:
        raise ImportError(f"{exc}; {LIGER_INSTALL}") from exc
    if not backend.cuda:
        interpreter_shims(kernels)
    backend.torch, backend.triton = torch, triton


class LigerBackend(Backend):
    """What the Liger backends share: torch and triton from load_liger, the device (CUDA, else the
    interpreter on the CPU) and the settings that say which ran."""
    torch: Any  # set by load (load_liger)
    triton: Any
    cuda = False
    framework = "liger-kernel"

    def devices(self) -> list[str]:
        return ["cuda"] if self.cuda else ["cpu"]

    def settings(self) -> dict:
        out = {"triton": self.triton.__version__, "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET")}
        return out if self.cuda else {**out, "interpreter_shims": SHIMS}


def interpreter_shims(module) -> None:
    """Two gaps of Triton 3.9's interpreter that Liger's kernel falls into, closed the way compiled
    Triton behaves (they change no arithmetic of the kernel):

    - A Python float kernel argument stays a bare float; compiled Triton passes an fp32 scalar
      (`mangle_type(30.0) == "fp32"`). The kernel calls `softcap.to(tl.float32)` and
      `weight_sum.to(tl.float32)`: "'float' object has no attribute 'to'" without the shim.
    - `triton.language.extra.libdevice.tanh` is a stub that returns None under the interpreter
      (triton issue 8825): the softcap path fails with "'NoneType' object has no attribute
      'dtype'". It becomes NumPy's tanh in the tensor's dtype (float32 here), where compiled
      Triton calls libdevice's __nv_tanhf. `module` is the kernel's module (its global `tanh`).
    """
    import triton.language as tl
    from triton.runtime import interpreter

    original = interpreter._implicit_cvt
    if not getattr(original, "xentcheck_floats", False):
        def cvt(arg):
            if isinstance(arg, float):
                return tl.tensor(interpreter.TensorHandle(np.array([arg], dtype=np.float32), tl.float32), tl.float32)
            return original(arg)

        cvt.xentcheck_floats = True  # type: ignore[attr-defined]
        interpreter._implicit_cvt = cvt

    def tanh(x):
        return tl.tensor(interpreter.interpreter_builder.unary_op(x.handle, np.tanh), x.type)

    module.tanh = tanh  # the kernel looks its `tanh` up in the module's globals at each call
