"""NumPy: a plain forward and the hand-written analytic backward, in the requested dtype.

NumPy has no autodiff, so this is a low-precision implementation under test (not the
reference): elementwise work happens in the case's dtype, and row sums accumulate in at least
float32, as the frameworks' kernels do for 16-bit types.

The LLM-training options (docs/llm-options.md) are written out with their closed forms, as a
careful fused kernel would: o = c tanh(s x / c), l = CE(o) + z lse(o)^2, and

    dl/dx = s sech^2(s x / c) [(p Q - q) + 2 z lse p] v

with sech^2(u) = 4a / (1 + a)^2, a = exp(-2|u|) (1 - tanh^2 cancels for |u| >> 1), lse and
z lse^2 in the accumulation type (lse^2 overflows float16 at |lse| > 256), and v the cotangent.
"""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Backend, Output, Variant, kind_adapter
from xentcheck.core.cases import Case, Inputs


class NumpyBackend(Backend):
    name = "numpy"
    framework = "numpy"
    impl = "analytic"
    extra_dims = True
    options = ("s", "cap", "z", "ct")  # computed natively, with their closed forms

    def variants(self) -> list[Variant]:
        from xentcheck.backends.numpy import distill as numpy_distill
        from xentcheck.backends.numpy import grpo as numpy_grpo
        from xentcheck.backends.numpy import lindistill as numpy_lindistill
        from xentcheck.backends.numpy import linear as numpy_linear
        from xentcheck.backends.numpy import rl as numpy_rl
        from xentcheck.backends.numpy import sharded as numpy_sharded
        return super().variants() + numpy_linear.variants() + numpy_distill.variants() + numpy_rl.variants() \
            + numpy_grpo.variants() + numpy_lindistill.variants() + numpy_sharded.variants()

    def run_variant(self, variant: Variant, case: Case, inputs: Inputs, device: str) -> Output:
        adapter = kind_adapter("numpy", variant.kind)
        if adapter is not None:
            return adapter.run(self, variant, case, inputs, device)
        return self.compute(case, inputs, device)

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        loss, kept = self._forward(case, inputs)
        return Output(loss=loss, grad=self._backward(case, inputs, *kept))

    def timing_fns(self, variant: Variant, case: Case, inputs: Inputs, device: str) -> dict | None:
        if variant.kind != "ce":  # another kind's variant (linear-CE): forward+backward through run_variant
            return None
        kept = self._forward(case, inputs)[1]
        return {"forward": lambda: self._forward(case, inputs), "backward": lambda: self._backward(case, inputs, *kept),
                "forward_backward": lambda: self.compute(case, inputs, device)}

    def _forward(self, case: Case, inputs: Inputs) -> tuple[np.ndarray, tuple]:
        """The reduced loss, and what the backward needs: exp(x - max), the row sums, the label weights,
        lse and the capped argument (LLM options). Classes on the last axis, any leading dimensions."""
        x = inputs.logits
        dt = x.dtype
        acc = np.float32 if dt.itemsize < 4 else dt.type
        u = None
        if case.logit_scale is not None or case.softcap is not None:  # in acc, rounded once to the dtype
            y = x.astype(acc) * acc(case.logit_scale or 1)
            if case.softcap is not None:
                u = y / acc(case.softcap)
                y = acc(case.softcap) * np.tanh(u)
            x = y.astype(dt)
        m = x.max(axis=-1, keepdims=True)
        z = x - m
        e = np.exp(z)
        s = e.sum(axis=-1, keepdims=True, dtype=acc)
        logp = z - np.log(s).astype(dt)
        if case.labels == "index":
            loss_rows = -np.take_along_axis(logp, inputs.labels[..., None], axis=-1)[..., 0].astype(acc)
            q = (inputs.labels[..., None] == np.arange(x.shape[-1])).astype(dt)
        else:
            q = inputs.labels
            # 0 * log(0) is 0: unlabelled -inf classes contribute nothing
            loss_rows = -np.where(q != 0, q * logp, 0).sum(axis=-1, dtype=acc)
        lse = None
        if case.zloss is not None:
            lse = (m.astype(acc) + np.log(s))[..., 0]
            loss_rows = loss_rows + acc(case.zloss) * lse * lse
        if case.reduction == "mean":
            with np.errstate(invalid="ignore"):  # an empty batch: 0 / 0 is NaN, as in the frameworks
                loss = (loss_rows.sum(dtype=acc) / loss_rows.size).astype(dt)
        elif case.reduction == "sum":
            loss = loss_rows.sum(dtype=acc).astype(dt)
        else:
            loss = loss_rows.astype(dt)
        return loss, (e, s, q, lse, u)

    def _backward(self, case: Case, inputs: Inputs, e: np.ndarray, s: np.ndarray, q: np.ndarray,
                  lse: np.ndarray | None = None, u: np.ndarray | None = None) -> np.ndarray:
        dt = e.dtype
        acc = np.float32 if dt.itemsize < 4 else dt.type
        p = (e / s.astype(dt)).astype(dt)
        grad = p * q.sum(axis=-1, keepdims=True, dtype=acc).astype(dt) - q
        if lse is not None:
            assert case.zloss is not None  # the forward keeps lse only for a z-loss
            grad = grad + (acc(2 * case.zloss) * lse[..., None] * p).astype(dt)
        if case.reduction == "mean":
            grad = (grad / dt.type(e.size // e.shape[-1])).astype(dt)
        if u is not None:
            a = np.exp(-2 * np.abs(u))
            grad = (grad * (4 * a / (1 + a) ** 2)).astype(dt)
        if case.logit_scale is not None:
            grad = (grad * acc(case.logit_scale)).astype(dt)
        if inputs.cotangent is not None:
            v = inputs.cotangent
            grad = grad * (v[..., None] if v.ndim else v)
        return grad
