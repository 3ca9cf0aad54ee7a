"""An example plugin around a real fused kernel: Liger-Kernel's cross entropy
(`liger_kernel.ops.cross_entropy.LigerCrossEntropyFunction`), run on the CPU through Triton's
interpreter (TRITON_INTERPRET=1). See examples/README-liger.md for what it finds.

    pip install 'xentcheck[liger]'        # liger-kernel and triton, next to an installed torch
    xentcheck run --backend-file examples/liger_backend.py --backends numpy --suite full

Liger takes index targets (BT, V) and, natively, class weights, ignore_index, label smoothing,
z-loss (`lse_square_scale`) and a softcap; its backward multiplies by the upstream gradient
(`grad_output`: per row for reduction 'none', a scalar otherwise). Its forward writes the
gradient into the logits tensor: the harness reports that as a modified input ("logits").
Without liger-kernel or triton, `load` raises ImportError and the run reports this backend as
not installed, with the reason, for every case.
"""

from __future__ import annotations

import os

import numpy as np

from xentcheck.backends.base import Backend, Output, Variant
from xentcheck.backends.torch import triton_interpret
from xentcheck.core.cases import IGNORE_INDEX, Case, Inputs

INSTALL = "pip install 'xentcheck[liger]' (liger-kernel and triton)"
SKIPPED_DTYPES = {
    # every load is cast to tl.float32: a float64 input would silently get float32 accuracy
    "float64": "liger computes in float32 inside its kernel (loads cast to tl.float32): float64 not taken",
    "bfloat16": triton_interpret.BFLOAT16,
}
CALL = ("LigerCrossEntropyFunction.apply(x, target, weight, ignore_index=-100, lse_square_scale=z, "
        "label_smoothing=ls, reduction, softcap=c, return_z_loss=False)")


class LigerCrossEntropy(Backend):
    name = "liger"
    framework = "liger-kernel"
    impl = "LigerCrossEntropyFunction"
    mode = "triton-interpret"
    # float32 and float16 only; unsupported() gives the reasons for the others.
    dtypes = ("float32", "float16")
    label_forms = ("index",)
    # torch's composition: smoothing and class weights as F.cross_entropy, the z-loss unweighted
    # and divided by the kept targets' count; "allign" (every target ignored) included.
    options = ("w", "ign", "allign", "ls", "cap", "z", "ct")
    semantics = "torch"
    extra_dims = True  # (N, d1, ..., K) flattened to (BT, V), as a training loop does

    def variants(self) -> list[Variant]:
        return [Variant(self.impl, self.mode, self.label_forms, CALL, options=self.options,
                        semantics=self.semantics)]

    def load(self) -> None:
        # Before triton is first used: @triton.jit reads it when liger's module is imported.
        os.environ["TRITON_INTERPRET"] = "1"
        try:  # liger first: when it is missing, the reason names it
            import torch
            import triton
            from liger_kernel.ops import cross_entropy
        except ImportError as exc:
            raise ImportError(f"{exc}; {INSTALL}") from exc
        triton_interpret.interpreter_shims(cross_entropy)
        self.torch, self.triton, self.fn = torch, triton, cross_entropy.LigerCrossEntropyFunction

    def settings(self) -> dict:
        return {"triton": self.triton.__version__, "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET"),
                "interpreter_shims": triton_interpret.SHIMS}

    def unsupported(self, case: Case, device: str) -> str | None:
        return SKIPPED_DTYPES.get(case.dtype) or super().unsupported(case, device)

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        torch = self.torch
        k = case.k
        # Views, not copies: the kernel's in-place gradient lands in the harness's array, which
        # is how the worker sees (and reports) the modified input.
        x = _tensor(torch, inputs.logits.reshape(-1, k)).requires_grad_()
        target = torch.from_numpy(inputs.labels.reshape(-1))
        weight = None if inputs.weights is None else _tensor(torch, inputs.weights)
        loss, _, _, _ = self.fn.apply(x, target, weight, IGNORE_INDEX, case.zloss or 0.0, inputs.smoothing,
                                      case.reduction, case.softcap, False)
        if "ct" in case.option_set:
            if inputs.cotangent is None:
                raise ValueError(f"{case.id}: the harness gave no cotangent")
            upstream = _tensor(torch, np.ascontiguousarray(inputs.cotangent).reshape(loss.shape))
        else:
            upstream = torch.ones_like(loss)
        loss.backward(upstream)
        loss_np = _array(torch, loss)
        if case.reduction == "none":
            loss_np = loss_np.reshape(case.loss_shape)
        return Output(loss=loss_np, grad=_array(torch, x.grad).reshape(case.shape))


def _tensor(torch, a: np.ndarray):
    """A torch tensor sharing `a`'s memory (bfloat16 through its 16-bit pattern)."""
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(a)


def _array(torch, t) -> np.ndarray:
    """A copy of `t` as a NumPy array in its own dtype (bfloat16 as ml_dtypes' bfloat16)."""
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        import ml_dtypes
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return t.numpy().copy()


BACKEND = LigerCrossEntropy
