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

    LigerFusedLinearJSDLoss(weight_hard_loss=0, weight_soft_loss=1, beta, ignore_index, T,
                            compiled=False)(h_s=z_s, W_s=I, h_t=z_t, W_t=I, labels)

is the chunked, fused-linear form (chunked_loss/jsd_loss.py, plain torch): fed the logits as hidden
states and the identity as both weights, whose products are exact, it computes its JSD (the same
beta convention and end points as LigerJSD; log M by logsumexp; the soft loss in the logits' dtype,
divided by the counted rows: batchmean) on the case's own logits. This checks its divergence and
reduction, not its matmuls' precision (that needs a linear-distillation kind: docs/distillation.md).
It runs bfloat16 and float64 (no Triton); a teacher with -inf logits (mask, disj) is skipped:
0 x -inf in h W^T is NaN before Liger's loss sees it; so is K > 4096 (W = I is K x K).
"""

from __future__ import annotations

from xentcheck.backends.base import NotApplicable, Output, Variant
from xentcheck.backends.torch import io as torch_io
from xentcheck.backends.torch import triton_interpret
from xentcheck.core.cases import IGNORE_INDEX, Case
from xentcheck.problems.distill.cases import parse

INSTALL = triton_interpret.LIGER_INSTALL
FLOAT64 = "liger computes in float32 inside its kernels (loads cast to tl.float32): float64 not taken"
JSD = ("LigerJSD", "LigerJSD(beta)(log_softmax(s / T), log_softmax(t / T), labels)",
       ("fkl", "rkl", "jsd", "t", "sq", "ign", "batchmean"))
KL = ("fkl", "t", "sq", "batchmean", "sum", "mean", "none")
FUSED = "LigerFusedLinearJSDLoss_identity"  # on the distillation cases: h = z, W = I
INF_TEACHER = "h W^T with W = I turns a -inf logit into NaN (0 x -inf) before the loss: not Liger's to answer"
MAX_EYE = 4096  # the identity weight is K x K: 128 MiB in float64 at this K


class LigerDistill(triton_interpret.LigerBackend):
    name = "liger-distill"
    label_forms = ("soft", "index")
    dtypes = ("float16", "bfloat16", "float32", "float64")  # the Triton variants: float16 and float32 (run_variant)

    def variants(self) -> list[Variant]:
        return [Variant(JSD[0], "triton", ("soft", "index"), api=JSD[1], options=JSD[2], kind="distill"),
                Variant("LigerFusedLinearJSDLoss", "eager", ("soft", "index"), options=JSD[2], kind="lindistill",
                        api="LigerFusedLinearJSDLoss(0, 1, beta, T, compiled=False)(h_s, W_s, h_t, W_t, labels)"),
                Variant("LigerKLDIVLoss_log_target", "triton", ("soft",), options=KL, kind="distill",
                        api="LigerKLDIVLoss(reduction, log_target=True)(log_softmax(s / T), log_softmax(t / T))"),
                Variant("LigerKLDIVLoss", "triton", ("soft",), options=KL, kind="distill",
                        api="LigerKLDIVLoss(reduction)(log_softmax(s / T), softmax(t / T))"),
                Variant(FUSED, "eager", ("soft", "index"), options=JSD[2], kind="distill",
                        api="LigerFusedLinearJSDLoss(0, 1, beta, T, compiled=False)(h_s=s, W_s=I, h_t=t, W_t=I, labels)")]

    def load(self) -> None:
        triton_interpret.load_liger(self, "liger_kernel.ops.jsd")
        from liger_kernel.chunked_loss import LigerFusedLinearJSDLoss
        from liger_kernel.ops import kl_div
        from liger_kernel.transformers import LigerJSD, LigerKLDIVLoss
        self.kl_div = kl_div
        self.LigerJSD, self.LigerKLDIVLoss = LigerJSD, LigerKLDIVLoss
        self.LigerFusedLinearJSDLoss = LigerFusedLinearJSDLoss

    def unsupported(self, case: Case, device: str) -> str | None:
        if not case.spec.startswith(("kd-", "lkd-")):
            return f"{self.name} computes distillation losses only (cases with a kd- or lkd- segment)"
        return super().unsupported(case, device)

    def run_variant(self, variant: Variant, case: Case, inputs, device: str) -> Output:
        if variant.kind == "lindistill":
            return self._fused_linear(case, inputs, device)
        torch = self.torch
        F = torch.nn.functional
        s = parse(case.spec)
        T = s.temperature
        if variant.mode == "triton" and case.dtype == "float64":
            raise NotApplicable(FLOAT64)
        if variant.mode == "triton" and case.dtype == "bfloat16" and not self.cuda:
            raise NotApplicable(triton_interpret.BFLOAT16)
        if variant.impl == FUSED and s.teacher in ("mask", "disj"):
            raise NotApplicable(INF_TEACHER)
        if variant.impl == FUSED and case.k > MAX_EYE:
            raise NotApplicable(f"W = I would be {case.k} x {case.k} (at most {MAX_EYE} x {MAX_EYE} here)")
        zs = torch_io.tensor(torch, inputs.student, device).requires_grad_(True)
        zt = torch_io.tensor(torch, inputs.teacher, device)
        ls, lt = F.log_softmax(zs / T, dim=-1), F.log_softmax(zt / T, dim=-1)
        beta = {"fkl": 0.0, "rkl": 1.0}.get(s.divergence, s.beta)
        if variant.impl == FUSED:
            labels = torch.zeros(case.n, dtype=torch.int64) if inputs.labels is None else \
                torch.from_numpy(inputs.labels.copy())  # soft labels: every row counts
            eye = torch.eye(case.k, dtype=zs.dtype, device=device)
            fused = self.LigerFusedLinearJSDLoss(weight_hard_loss=0.0, weight_soft_loss=1.0, beta=beta,
                                                 ignore_index=IGNORE_INDEX, temperature=T, compiled=False)
            loss = fused(zs, eye, zt, eye, labels.to(device))
        elif variant.impl == "LigerJSD":
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

    def _fused_linear(self, case: Case, inputs, device: str) -> Output:
        """LigerFusedLinearJSDLoss on the case's hidden states and weights (a linear distillation case)."""
        from xentcheck.problems.lindistill.cases import kd_case
        torch = self.torch
        s = parse(kd_case(case).spec)
        hs, ws = (torch_io.tensor(torch, a, device).requires_grad_(True) for a in (inputs.student_hidden,
                                                                                   inputs.student_weight))
        ht, wt = (torch_io.tensor(torch, a, device) for a in (inputs.teacher_hidden, inputs.teacher_weight))
        labels = torch.zeros(case.n, dtype=torch.int64) if inputs.labels is None else \
            torch.from_numpy(inputs.labels.copy())  # soft labels: every row counts
        fused = self.LigerFusedLinearJSDLoss(weight_hard_loss=0.0, weight_soft_loss=1.0,
                                             beta={"fkl": 0.0, "rkl": 1.0}.get(s.divergence, s.beta),
                                             ignore_index=IGNORE_INDEX, temperature=s.temperature, compiled=False)
        loss = fused(hs, ws, ht, wt, labels.to(device))
        if s.squared:
            loss = loss * s.temperature ** 2
        dh, dw = torch.autograd.grad(loss, (hs, ws))
        return Output(torch_io.array(torch, loss), grads={"dh": torch_io.array(torch, dh), "dw": torch_io.array(torch, dw)},
                      loss_dtype=str(loss.dtype).removeprefix("torch."), grad_dtype=str(dh.dtype).removeprefix("torch."))
