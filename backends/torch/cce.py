"""cut-cross-entropy (Apple, PyPI `cut-cross-entropy`, pinned 25.1.1) as linear-CE backends, each
run only when named (`--backends cce` / `cce-triton`; pip install 'xentcheck[cce]'):

    cut_cross_entropy.linear_cross_entropy(e, c, targets, ignore_index=-100, softcap=None,
                                           reduction="mean", shift=False, filter_eps="high", impl=...)

e = h (N, D), c = W (V, D); no bias, class weights, smoothing or z-loss (25.1.1 takes none).
- `cce` runs impl "torch_compile": e @ c.T, the softcap, then F.cross_entropy(logits.float(), ...)
  under torch.compile (runs on the CPU; inductor needs a C++ compiler). The loss is float32 whatever
  the input dtype (float64 inputs included); filter_eps does not apply to it.
- `cce-triton` runs impl "cce", the Triton kernels (a CUDA GPU only: on the CPU every case is
  skipped with that reason), with filter_eps=None (every gradient term) and, as a documented
  deviation, its default filter_eps="high" (skips the gradient terms of logits whose softmax is
  below eps(dtype) / 32 on purpose).
Gradients by autograd: loss.backward(v). Without cut-cross-entropy, `load` raises ImportError and
every case is skipped with the reason.
"""

from __future__ import annotations

from xentcheck.backends.base import Backend, Output, Variant
from xentcheck.backends.torch import io as torch_io
from xentcheck.core.cases import IGNORE_INDEX, Case

INSTALL = "pip install 'xentcheck[cce]' (cut-cross-entropy, next to an installed torch)"
OPTIONS = ("ign", "allign", "cap", "ct")
RECOMPILE_LIMIT = 256
CALL = "cut_cross_entropy.linear_cross_entropy(h, W, y, ignore_index=-100, softcap=c, reduction, impl={impl!r}{extra})"
FILTER_DOC = ("filter_eps='high' (the default) skips on purpose the gradient terms whose softmax is below "
              "eps(dtype) / 32: approximate by design")


class CutCrossEntropy(Backend):
    name = "cce"
    framework = "cut-cross-entropy"
    label_forms = ("index",)

    def variants(self) -> list[Variant]:
        return [Variant("cce_torch_compile", "compile", ("index",), api=CALL.format(impl="torch_compile", extra=""),
                        options=OPTIONS, semantics="torch", kind="linear")]

    def load(self) -> None:
        try:
            import cut_cross_entropy
            import torch
        except ImportError as exc:
            raise ImportError(f"{exc}; {INSTALL}") from exc
        # A worker runs many cases through the same compiled functions: each dtype, reduction,
        # softcap and mask pattern is a recompile, past dynamo's default limit of 8 (then
        # FailOnRecompileLimitHit under fullgraph=True).
        torch._dynamo.config.recompile_limit = RECOMPILE_LIMIT
        torch._dynamo.config.accumulated_recompile_limit = max(RECOMPILE_LIMIT,
                                                               torch._dynamo.config.accumulated_recompile_limit)
        self.torch, self.cce = torch, cut_cross_entropy

    def devices(self) -> list[str]:
        return ["cpu"] + (["cuda"] if self.torch.cuda.is_available() else [])

    def settings(self) -> dict:
        return {"torch": self.torch.__version__, "num_threads": self.torch.get_num_threads()}

    def unsupported(self, case: Case, device: str) -> str | None:
        if not case.linear:
            return f"{self.name} computes linear-CE only (cases with a hidden size, ..._lin<D>_...)"
        return super().unsupported(case, device)

    def run_variant(self, variant: Variant, case: Case, inputs, device: str) -> Output:
        impl, filter_eps = ("torch_compile", None) if variant.mode == "compile" else (
            "cce", "high" if variant.impl.endswith("_filter_high") else None)

        def loss_fn(h, w, b, y):
            kw = {} if impl == "torch_compile" else {"filter_eps": filter_eps}
            return self.cce.linear_cross_entropy(h, w, y, ignore_index=IGNORE_INDEX, softcap=case.softcap,
                                                 reduction=case.reduction, impl=impl, **kw)

        return torch_io.forward_backward(self.torch, inputs, device, loss_fn)


class CutCrossEntropyTriton(CutCrossEntropy):
    name = "cce-triton"

    def variants(self) -> list[Variant]:
        return [Variant("cce", "triton", ("index",), api=CALL.format(impl="cce", extra=", filter_eps=None"),
                        options=OPTIONS, semantics="torch", kind="linear"),
                Variant("cce_filter_high", "triton", ("index",), api=CALL.format(impl="cce", extra=""),
                        documented=FILTER_DOC, options=OPTIONS, semantics="torch", kind="linear")]

    def devices(self) -> list[str]:
        return ["cuda"] if self.torch.cuda.is_available() else []

    def unsupported(self, case: Case, device: str) -> str | None:
        if device not in self.devices():
            return f"{self.name}: cut-cross-entropy's Triton kernels (impl 'cce') need a CUDA GPU (device {device!r})"
        return super().unsupported(case, device)
