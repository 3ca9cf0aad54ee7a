"""PyTorch: cross-entropy through autograd, eagerly or under torch.compile (opt-in).

Implementations: F.cross_entropy with class-index targets, F.cross_entropy with probability
targets, F.log_softmax + F.nll_loss, and torch.log(F.softmax) + F.nll_loss (a probability
composition users write: docs/probability-inputs.md). The gradient is the VJP with the case's cotangent
(loss.backward(v)), ones without option "ct". The LLM-training options are composed as a user
writes them, inside the compiled function under torch.compile (docs/llm-options.md)::

    x = s * x; x = c * torch.tanh(x / c)
    lse = torch.logsumexp(x, dim=1)
    loss = F.cross_entropy(x, target, ...) + z * lse[kept].pow(2).mean()    # mean; kept: not ignored
    loss = F.cross_entropy(x, target, ...) + (z * lse.pow(2)).sum()         # sum (none: per row)

torch puts the class axis at dim 1: logits (N, K, d1, ...), probability targets alike, index
targets (N, d1, ...); the harness's class-last arrays are moved there, and the gradient back.
"""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Backend, Output, Variant, kind_adapter
from xentcheck.core.cases import IGNORE_INDEX, Case, Inputs

_LLM = ("s", "cap", "z", "ct")  # logit scale, softcap, z-loss, upstream cotangent: composed around the call
_IMPLS = (
    ("cross_entropy_index", ("index",), "F.cross_entropy(x, target)", True, ("w", "ign", "allign", "ls", *_LLM)),
    ("cross_entropy_probs", ("onehot", "soft", "unnorm"), "F.cross_entropy(x, probs)", True, ("w", "ls", *_LLM)),
    ("log_softmax_nll", ("index",), "F.nll_loss(F.log_softmax(x, 1), target)", False, ("w", "ign", "allign", *_LLM)),
    ("softmax_log_nll", ("index",), "F.nll_loss(torch.log(F.softmax(x, 1)), target)", False,
     ("w", "ign", "allign", *_LLM)),
)
# what the compositions feed nll_loss from (backends/base.py: Variant.takes); the others take logits
_TAKES = {"log_softmax_nll": "logprobs", "softmax_log_nll": "probs"}


def _class_dim1(a: np.ndarray) -> np.ndarray:
    """(N, d1, ..., K) -> (N, K, d1, ...): torch's class axis (the identity for 2-D)."""
    return np.moveaxis(a, -1, 1)


def _class_last(a: np.ndarray) -> np.ndarray:
    return np.moveaxis(a, 1, -1)


class TorchBackend(Backend):
    name = "torch"
    framework = "torch"
    impl = "cross_entropy_index"
    extra_dims = True
    # what the gloo variants' ranks import (backends/torch/sharded.py): 2 to 8 CPU s a fresh rank
    rank_preload = ("torch", "torch.distributed", "torch.distributed.tensor", "megatron.core.tensor_parallel")

    def variants(self) -> list[Variant]:
        out = [Variant(i, "eager", lf, api, default=d, options=o, semantics="torch", takes=_TAKES.get(i, "logits"))
               for i, lf, api, d, o in _IMPLS]
        # torch.compile builds a C++ kernel per shape on the CPU: minutes for a suite, so opt-in
        out += [Variant(i, "compile", lf, f"torch.compile({api})", default=False, opt_in=True, options=o,
                        semantics="torch", takes=_TAKES.get(i, "logits")) for i, lf, api, _, o in _IMPLS]
        from xentcheck.backends.torch import distill as torch_distill
        from xentcheck.backends.torch import grpo as torch_grpo
        from xentcheck.backends.torch import lindistill as torch_lindistill
        from xentcheck.backends.torch import linear as torch_linear
        from xentcheck.backends.torch import rl as torch_rl
        from xentcheck.backends.torch import sharded as torch_sharded
        return out + torch_linear.variants() + torch_distill.variants() + torch_rl.variants() + torch_grpo.variants() \
            + torch_lindistill.variants() + torch_sharded.variants()

    def load(self) -> None:
        import torch
        self.torch = torch
        # correctness runs pin numerics: no TF32 on CUDA matmuls/convolutions
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        self._compiled: dict = {}

    def devices(self) -> list[str]:
        return ["cpu"] + (["cuda"] if self.torch.cuda.is_available() else [])

    def release(self) -> None:
        self._compiled.clear()
        import torch._dynamo
        torch._dynamo.reset()  # torch.compile's graphs and guards

    def settings(self) -> dict:
        t = self.torch
        cudnn = t.backends.cudnn.version() if t.backends.cudnn.is_available() else None
        return {"num_threads": t.get_num_threads(), "cuda_available": t.cuda.is_available(),
                "cuda": t.version.cuda, "cudnn": cudnn, "allow_tf32": t.backends.cuda.matmul.allow_tf32,
                "cudnn_allow_tf32": t.backends.cudnn.allow_tf32, "mkldnn": t.backends.mkldnn.is_available(),
                "cpu_capability": t.backends.cpu.get_cpu_capability(), "git_version": t.version.git_version,
                "float32_matmul_precision": t.get_float32_matmul_precision()}

    def _tensor(self, a: np.ndarray, device: str):
        t = self.torch
        if a.dtype.name == "bfloat16":  # torch cannot read ml_dtypes arrays: go through the bits
            return t.from_numpy(a.view(np.int16).copy()).view(t.bfloat16).to(device)
        return t.from_numpy(a.copy()).to(device)

    def _numpy(self, x) -> np.ndarray:
        x = x.detach().cpu()
        return x.float().numpy() if x.dtype == self.torch.bfloat16 else x.numpy()

    def _fn(self, impl: str, reduction: str, mode: str, smoothing: float = 0.0, scale: float | None = None,
            softcap: float | None = None, zloss: float | None = None):
        F, torch = self.torch.nn.functional, self.torch
        if impl == "log_softmax_nll":
            def ce(x, labels, weight):
                return F.nll_loss(F.log_softmax(x, dim=1), labels, weight=weight, ignore_index=IGNORE_INDEX,
                                  reduction=reduction)
        elif impl == "softmax_log_nll":  # the probabilities' log: log(0) = -inf where softmax underflows
            def ce(x, labels, weight):
                return F.nll_loss(torch.log(F.softmax(x, dim=1)), labels, weight=weight, ignore_index=IGNORE_INDEX,
                                  reduction=reduction)
        else:
            def ce(x, labels, weight):
                return F.cross_entropy(x, labels, weight=weight, ignore_index=IGNORE_INDEX, reduction=reduction,
                                       label_smoothing=smoothing)
        if scale is None and softcap is None and zloss is None:
            fn = ce
        else:
            def fn(x, labels, weight=None):
                if scale is not None:
                    x = scale * x
                if softcap is not None:
                    x = softcap * torch.tanh(x / softcap)
                loss = ce(x, labels, weight)
                if zloss is None:
                    return loss
                # z lse^2 per row; ignored targets add none. The mean over the kept rows as a user writes
                # it: lse[kept].pow(2).mean() (NaN with a zero gradient when none is kept); mean()
                # accumulates in float32, where a float16 sum of lse^2 would overflow.
                lse = torch.logsumexp(x, dim=1)
                kept = None if labels.dtype.is_floating_point else labels != IGNORE_INDEX
                if reduction == "mean":
                    return loss + zloss * (lse if kept is None else lse[kept]).pow(2).mean()
                zl = zloss * (lse if kept is None else torch.where(kept, lse, 0)).pow(2)
                return loss + (zl.sum() if reduction == "sum" else zl)
        if mode == "compile":
            key = (impl, reduction, smoothing, scale, softcap, zloss)
            if key not in self._compiled:
                self._compiled[key] = self.torch.compile(fn, dynamic=False)
            return self._compiled[key]
        return fn

    def _prepare(self, variant: Variant, case: Case, inputs: Inputs, device: str):
        x = self._tensor(_class_dim1(inputs.logits), device).requires_grad_(True)
        labels = inputs.labels if case.labels == "index" else _class_dim1(inputs.labels)
        weight = None if inputs.weights is None else self._tensor(inputs.weights, device)
        fn = self._fn(variant.impl, case.reduction, variant.mode, inputs.smoothing, case.logit_scale, case.softcap,
                      case.zloss)
        return x, self._tensor(labels, device), lambda z, t: fn(z, t, weight)

    def _cotangent(self, loss, inputs: Inputs, device: str):
        """The upstream gradient: the case's cotangent in the loss's shape, else ones."""
        if inputs.cotangent is None:
            return self.torch.ones_like(loss)
        return self._tensor(np.asarray(inputs.cotangent), device)

    def run_variant(self, variant: Variant, case: Case, inputs: Inputs, device: str) -> Output:
        adapter = kind_adapter("torch", variant.kind)
        if adapter is not None:
            return adapter.run(self, variant, case, inputs, device)
        t = self.torch
        x, labels, fn = self._prepare(variant, case, inputs, device)
        loss = fn(x, labels)
        loss.backward(self._cotangent(loss, inputs, device))
        if device == "cuda":
            t.cuda.synchronize()
        return Output(loss=self._numpy(loss), grad=_class_last(self._numpy(x.grad)),
                      loss_dtype=str(loss.dtype).removeprefix("torch."),
                      grad_dtype=str(x.grad.dtype).removeprefix("torch."))

    def timing_fns(self, variant: Variant, case: Case, inputs: Inputs, device: str) -> dict | None:
        if variant.kind == "linear":
            from xentcheck.backends.torch import linear as torch_linear
            return torch_linear.timing_fns(self, variant, case, inputs, device)
        if variant.kind != "ce":  # another kind's variant: forward+backward through run_variant
            return None
        t = self.torch
        x, labels, fn = self._prepare(variant, case, inputs, device)
        sync = t.cuda.synchronize if device == "cuda" else (lambda: None)
        kept = fn(x, labels)  # the graph that backward replays (retain_graph keeps it)
        ones = self._cotangent(kept, inputs, device)

        def forward():
            fn(x, labels)
            sync()

        def backward():
            x.grad = None  # no accumulation into the previous gradient
            kept.backward(ones, retain_graph=True)
            sync()

        def forward_backward():
            x.grad = None
            fn(x, labels).backward(ones)
            sync()

        return {"forward": forward, "backward": backward, "forward_backward": forward_backward}

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        v = next(v for v in self.variants() if case.labels in v.label_forms)
        return self.run_variant(v, case, inputs, device)

    def jvp(self, variant, case, inputs, device, tangent):
        x, labels, fn = self._prepare(variant, case, inputs, device)
        v = self._tensor(_class_dim1(tangent.astype(inputs.logits.dtype)), device)
        _, out = self.torch.func.jvp(lambda z: fn(z, labels), (x.detach(),), (v,))
        return self._numpy(out)

    def hvp(self, variant, case, inputs, device, vector):
        t = self.torch
        x, labels, fn = self._prepare(variant, case, inputs, device)
        v = self._tensor(_class_dim1(vector.astype(inputs.logits.dtype)), device)
        (g,) = t.autograd.grad(fn(x, labels).sum(), x, create_graph=True)
        (hv,) = t.autograd.grad((g * v).sum(), x)
        return _class_last(self._numpy(hv))
