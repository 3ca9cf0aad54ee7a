"""Liger-Kernel's fused linear cross entropy (PyPI `liger-kernel`, pinned 0.8.5) as a linear-CE
backend, run only when named (`--backends liger-linear`; pip install 'xentcheck[liger]'):

    LigerFusedLinearCrossEntropyFunction.apply(h, W, y, b, ce_weight, ignore_index=-100,
        lse_square_scale=z, label_smoothing=ls, reduction, softcap=c, return_z_loss=False, accum_dtype)

It chunks the rows (about BT / ceil(V / D) per chunk), forms each chunk's logits h W^T + b in the
input dtype, runs Liger's cross-entropy kernel on them (float32 inside; the gradient G written
back into the logits, in the input dtype), then dh = G W and dW += G^T h, db += sum G per chunk;
for mean/sum the gradients are made in the forward and scaled by the cotangent afterwards, for
`none` they are recomputed in the backward with the per-row cotangent folded in. dW and db are
accumulated across chunks in the parameter's dtype unless `accum_dtype` is given: variants
`..._accum_param` (accum_dtype=None, Liger's default) and `..._accum_float32`.

Without a CUDA GPU the kernel runs on the CPU through Triton's interpreter (TRITON_INTERPRET=1,
slow: one Python kernel instance per row; keep cases small), with the interpreter shims of
xentcheck.backends.torch.triton_interpret; there bfloat16 is skipped (the interpreter has no bfloat16
arithmetic). float64 is skipped everywhere (the kernel loads everything as float32).
"""

from __future__ import annotations

from xentcheck.backends.base import Output, Variant
from xentcheck.backends.torch import io as torch_io
from xentcheck.backends.torch import triton_interpret
from xentcheck.core.cases import IGNORE_INDEX, Case

INSTALL = triton_interpret.LIGER_INSTALL
OPTIONS = ("w", "ign", "allign", "ls", "cap", "z", "ct", "b")
IMPL = "LigerFusedLinearCrossEntropyFunction"
CALL = (f"{IMPL}.apply(h, W, y, b, ce_weight, -100, lse_square_scale=z, label_smoothing=ls, reduction, "
        "softcap=c, return_z_loss=False, accum_dtype={acc})")
FLOAT64 = "liger computes in float32 inside its kernel (loads cast to tl.float32): float64 not taken"


class LigerFusedLinearCE(triton_interpret.LigerBackend):
    name = "liger-linear"
    label_forms = ("index",)
    dtypes = ("float16", "bfloat16", "float32")

    def variants(self) -> list[Variant]:
        return [Variant(f"{IMPL}_accum_{acc}", "triton", ("index",), api=CALL.format(acc=arg), options=OPTIONS,
                        semantics="torch", kind="linear")
                for acc, arg in (("param", "None"), ("float32", "torch.float32"))]

    def load(self) -> None:
        triton_interpret.load_liger(self, "liger_kernel.ops.cross_entropy")
        from liger_kernel.ops import fused_linear_cross_entropy
        self.fn = fused_linear_cross_entropy.LigerFusedLinearCrossEntropyFunction

    def unsupported(self, case: Case, device: str) -> str | None:
        if not case.linear:
            return f"{self.name} computes linear-CE only (cases with a hidden size, ..._lin<D>_...)"
        if case.dtype == "float64":
            return FLOAT64
        if case.dtype == "bfloat16" and not self.cuda:
            return triton_interpret.BFLOAT16
        return super().unsupported(case, device)

    def run_variant(self, variant: Variant, case: Case, inputs, device: str) -> Output:
        torch = self.torch
        acc = torch.float32 if variant.impl.endswith("_float32") else None
        weight = None if inputs.weights is None else torch_io.tensor(torch, inputs.weights, device)

        def loss_fn(h, w, b, y):
            loss, _, _, _ = self.fn.apply(h, w, y, b, weight, IGNORE_INDEX, case.zloss or 0.0, inputs.smoothing,
                                          case.reduction, case.softcap, False, acc)
            return loss

        return torch_io.forward_backward(torch, inputs, device, loss_fn)
