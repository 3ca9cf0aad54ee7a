"""PyTorch linear distillation, eagerly: the logits F.linear(h, W) of student and teacher, then the
divergence as TRL's generalized_jsd_loss forms it (log_softmax at T; beta = 0 and 1 forward and
reverse KL by F.kl_div(log_target=True); otherwise the mixture's log by logsumexp of
log p + log(1 - beta) and log q + log(beta)), summed over the vocabulary, ignored rows dropped,
over the counted rows (batchmean) or summed; T^2 with sq. dh and dW by autograd; the teacher is
computed under no_grad (docs/distillation.md)."""

from __future__ import annotations

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import IGNORE_INDEX, Case
from xentcheck.problems.distill.cases import parse as parse_kd
from xentcheck.problems.lindistill.cases import kd_case

OPTIONS = ("fkl", "rkl", "jsd", "t", "sq", "ign", "batchmean", "sum")


def variants() -> list[Variant]:
    return [Variant("linear_log_softmax_jsd", "eager", ("soft", "index"), options=OPTIONS, kind="lindistill",
                    api="F.linear(h, W) / T; log_softmax; kl_div(log_target=True) / logsumexp mixture (TRL's form)")]


def divergence_rows(torch, ls, lt, beta: float):
    """One divergence per row from log-probabilities (TRL's generalized_jsd_loss, summed over V)."""
    F = torch.nn.functional
    if beta == 0:
        out = F.kl_div(ls, lt, reduction="none", log_target=True)
    elif beta == 1:
        out = F.kl_div(lt, ls, reduction="none", log_target=True)
    else:
        b = torch.tensor(beta, dtype=ls.dtype, device=ls.device)
        lm = torch.logsumexp(torch.stack([ls + torch.log(1 - b), lt + torch.log(b)]), dim=0)
        out = b * F.kl_div(lm, lt, reduction="none", log_target=True) + \
            (1 - b) * F.kl_div(lm, ls, reduction="none", log_target=True)
    return out.sum(-1)


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    torch = backend.torch
    F = torch.nn.functional
    s = parse_kd(kd_case(case).spec)
    T = s.temperature
    hs, ws = (backend._tensor(a, device).requires_grad_(True) for a in (inputs.student_hidden, inputs.student_weight))
    ls = F.log_softmax(F.linear(hs, ws) / T, dim=-1)
    with torch.no_grad():
        lt = F.log_softmax(F.linear(backend._tensor(inputs.teacher_hidden, device),
                                    backend._tensor(inputs.teacher_weight, device)) / T, dim=-1)
    rows = divergence_rows(torch, ls, lt, {"fkl": 0.0, "rkl": 1.0}.get(s.divergence, s.beta))
    if inputs.labels is not None:
        rows = rows[torch.from_numpy(inputs.labels.copy()).to(device) != IGNORE_INDEX]
    loss = rows.sum() / rows.shape[0] if case.reduction == "batchmean" else rows.sum()
    if s.squared:
        loss = loss * T ** 2
    dh, dw = torch.autograd.grad(loss, (hs, ws))
    return Output(backend._numpy(loss), grads={"dh": backend._numpy(dh), "dw": backend._numpy(dw)},
                  loss_dtype=str(loss.dtype).removeprefix("torch."), grad_dtype=str(dh.dtype).removeprefix("torch."))
