"""Liger-Kernel's distillation losses (PyPI `liger-kernel`, pinned 0.8.5) as a distillation backend,
run only when named (`--backends liger-distill`; pip install 'xentcheck[liger]'):

    LigerJSD(beta, ignore_index=-100)(log_softmax(z_s / T), log_softmax(z_t / T), labels)
    LigerKLDIVLoss(reduction, log_target)(log_softmax(z_s / T), log_softmax(z_t / T) or softmax(z_t / T))

Liger's beta convention (ops/jsd.py, read from the source): M = beta P + (1 - beta) Q with P the
teacher and Q the student, JSD = beta KL(P || M) + (1 - beta) KL(Q || M): xentcheck's jsd<beta>;
its end points are special-cased, beta = 0 is forward KL(P || Q) and beta = 1 reverse KL(Q || P)
(fkl and rkl cases run LigerJSD with those). LigerJSD divides by the counted rows (batchmean) and
detaches the teacher; LigerKLDIVLoss is F.kl_div's semantics (its "none" is (N, K): summed over K
here, as a user does), its gradient -target per element: the teacher detached, no ignore_index.
T^2 multiplies the loss. Without a CUDA GPU the kernels run on the CPU through Triton's
interpreter (xentcheck.backends.torch.triton_interpret); bfloat16 is skipped there, float64 everywhere.
"""

from __future__ import annotations

import os
from typing import Any

from xentcheck.backends.base import Backend, Output, Variant
from xentcheck.backends.torch import io as torch_io
from xentcheck.backends.torch import triton_interpret
from xentcheck.core.cases import IGNORE_INDEX, Case
from xentcheck.problems.distill.cases import parse

INSTALL = triton_interpret.LIGER_INSTALL
FLOAT64 = "liger computes in float32 inside its kernels (loads cast to tl.float32): float64 not taken"
JSD = ("LigerJSD", "LigerJSD(beta)(log_softmax(s / T), log_softmax(t / T), labels)",
       ("fkl", "rkl", "jsd", "t", "sq", "ign", "batchmean"))
KL = ("fkl", "t", "sq", "batchmean", "sum", "mean", "none")


class LigerDistill(Backend):
    name = "liger-distill"
    torch: Any  # set by load (triton_interpret.load_liger)
    triton: Any
    cuda = False
    framework = "liger-kernel"
    label_forms = ("soft", "index")
    dtypes = ("float16", "bfloat16", "float32")

    def variants(self) -> list[Variant]:
        return [Variant(JSD[0], "triton", ("soft", "index"), api=JSD[1], options=JSD[2], kind="distill"),
                Variant("LigerKLDIVLoss_log_target", "triton", ("soft",), options=KL, kind="distill",
                        api="LigerKLDIVLoss(reduction, log_target=True)(log_softmax(s / T), log_softmax(t / T))"),
                Variant("LigerKLDIVLoss", "triton", ("soft",), options=KL, kind="distill",
                        api="LigerKLDIVLoss(reduction)(log_softmax(s / T), softmax(t / T))")]

    def load(self) -> None:
        triton_interpret.load_liger(self, "liger_kernel.ops.jsd")
        from liger_kernel.ops import kl_div
        from liger_kernel.transformers import LigerJSD, LigerKLDIVLoss
        self.kl_div = kl_div
        self.LigerJSD, self.LigerKLDIVLoss = LigerJSD, LigerKLDIVLoss

    def devices(self) -> list[str]:
        return ["cuda"] if self.cuda else ["cpu"]

    def settings(self) -> dict:
        out = {"triton": self.triton.__version__, "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET")}
        return out if self.cuda else {**out, "interpreter_shims": triton_interpret.SHIMS}

    def unsupported(self, case: Case, device: str) -> str | None:
        if not case.spec.startswith("kd-"):
            return f"{self.name} computes distillation losses only (cases with a kd- segment)"
        if case.dtype == "float64":
            return FLOAT64
        if case.dtype == "bfloat16" and not self.cuda:
            return triton_interpret.BFLOAT16
        return super().unsupported(case, device)

    def run_variant(self, variant: Variant, case: Case, inputs, device: str) -> Output:
        torch = self.torch
        F = torch.nn.functional
        s = parse(case.spec)
        T = s.temperature
        zs = torch_io.tensor(torch, inputs.student, device).requires_grad_(True)
        zt = torch_io.tensor(torch, inputs.teacher, device)
        ls, lt = F.log_softmax(zs / T, dim=-1), F.log_softmax(zt / T, dim=-1)
        if variant.impl == "LigerJSD":
            beta = {"fkl": 0.0, "rkl": 1.0}.get(s.divergence, s.beta)
            labels = None if inputs.labels is None else torch.from_numpy(inputs.labels.copy()).to(device)
            loss = self.LigerJSD(beta=beta, ignore_index=IGNORE_INDEX)(ls, lt, labels)
        else:
            log_target = variant.impl.endswith("_log_target")
            target = lt if log_target else F.softmax(zt / T, dim=-1)
            loss = self.LigerKLDIVLoss(reduction=case.reduction, log_target=log_target)(ls, target)
            if case.reduction == "none":
                loss = loss.sum(dim=-1)
        if s.squared:
            loss = loss * T ** 2
        loss.backward(torch.ones_like(loss))
        return Output(torch_io.array(torch, loss), grads={"grad": torch_io.array(torch, zs.grad), "tgrad": None},
                      loss_dtype=str(loss.dtype).removeprefix("torch."),
                      grad_dtype=str(zs.grad.dtype).removeprefix("torch."))
