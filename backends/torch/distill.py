"""PyTorch distillation, as users write it (docs/distillation.md), eagerly and under torch.compile
(opt-in, as for CE: a C++ kernel per shape on the CPU):

- kl_div_log_target: F.kl_div(F.log_softmax(z_s / T), F.log_softmax(z_t / T), log_target=True,
  reduction=...) for forward KL, the arguments swapped for reverse KL; JSD as TRL's
  generalized_jsd_loss composes it: log M = logsumexp([log p_s + log(1 - beta), log p_t + log beta]),
  beta kl_div(log M, log p_t) + (1 - beta) kl_div(log M, log p_s);
- kl_div_probs: the probability-target form, F.kl_div(F.log_softmax(z_s / T), F.softmax(z_t / T)),
  and JSD with the mixture formed in probabilities and its log taken: M = beta p_t + (1 - beta) p_s,
  F.kl_div(M.log(), p_t) ...

With token labels, the per-row losses (reduction "none", summed over K) are masked and divided
by the counted rows, as users do; T^2 multiplies the loss. Without "tg" the teacher's logits do
not require a gradient (a detached teacher); with it, they do and its gradient is returned."""

from __future__ import annotations

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case
from xentcheck.problems.distill.cases import parse

IMPLS = (("kl_div_log_target", "F.kl_div(F.log_softmax(s / T), F.log_softmax(t / T), log_target=True)"),
         ("kl_div_probs", "F.kl_div(F.log_softmax(s / T), F.softmax(t / T))"))
FEATURES = ("fkl", "rkl", "jsd", "t", "sq", "tg", "ign", "batchmean", "sum", "mean", "none")


def variants() -> list[Variant]:
    out = [Variant(i, "eager", ("soft", "index"), api, options=FEATURES, kind="distill") for i, api in IMPLS]
    out += [Variant(i, "compile", ("soft", "index"), f"torch.compile({api})", options=FEATURES, kind="distill",
                    default=False, opt_in=True) for i, api in IMPLS]
    return out


def loss_fn(torch, impl: str, case: Case):
    """(z_s, z_t, mask or None) -> the loss, as the variant composes it."""
    F = torch.nn.functional
    s = parse(case.spec)
    T, beta = s.temperature, s.beta

    def kl(log_q, target):  # elementwise target-weighted KL terms, (N, K)
        if impl == "kl_div_log_target":
            return F.kl_div(log_q, target, log_target=True, reduction="none")
        return F.kl_div(log_q, target, reduction="none")

    def fn(zs, zt, mask):
        ls, lt = F.log_softmax(zs / T, dim=-1), F.log_softmax(zt / T, dim=-1)
        log_target = impl == "kl_div_log_target"
        if s.divergence in ("fkl", "rkl") and mask is None and case.reduction != "none":
            a, b = (ls, lt) if s.divergence == "fkl" else (lt, ls)
            if not log_target:  # the probability target, as its own softmax
                b = F.softmax((zt if s.divergence == "fkl" else zs) / T, dim=-1)
            loss = F.kl_div(a, b, log_target=log_target, reduction=case.reduction)
            return loss * T ** 2 if s.squared else loss
        if s.divergence == "fkl":
            terms = kl(ls, lt if log_target else F.softmax(zt / T, dim=-1))
        elif s.divergence == "rkl":
            terms = kl(lt, ls if log_target else F.softmax(zs / T, dim=-1))
        elif log_target:  # TRL's generalized_jsd_loss
            b = torch.tensor(beta, dtype=ls.dtype)
            lm = torch.logsumexp(torch.stack([ls + torch.log(1 - b), lt + torch.log(b)]), dim=0)
            terms = beta * kl(lm, lt) + (1 - beta) * kl(lm, ls)
        else:  # the mixture in probabilities, then its log
            ps, pt = F.softmax(zs / T, dim=-1), F.softmax(zt / T, dim=-1)
            lm = (beta * pt + (1 - beta) * ps).log()
            terms = beta * kl(lm, pt) + (1 - beta) * kl(lm, ps)
        rows = terms.sum(dim=-1)
        if mask is not None:
            rows = torch.where(mask, rows, 0)
        count = rows.shape[0] if mask is None else mask.sum()
        if case.reduction == "none":
            loss = rows
        elif case.reduction == "sum":
            loss = rows.sum()
        elif case.reduction == "batchmean":
            loss = rows.sum() / count
        else:
            loss = rows.sum() / (count * terms.shape[-1])
        return loss * T ** 2 if s.squared else loss

    return fn


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    t = backend.torch
    spec = parse(case.spec)
    zs = backend._tensor(inputs.student, device).requires_grad_(True)
    zt = backend._tensor(inputs.teacher, device)
    if spec.teacher_grad:
        zt.requires_grad_(True)
    mask = None if inputs.labels is None else t.from_numpy(inputs.counted().copy()).to(device)
    fn = loss_fn(t, variant.impl, case)
    if variant.mode == "compile":
        key = ("distill", variant.impl, case.spec, case.reduction, mask is None)
        if key not in backend._compiled:
            backend._compiled[key] = t.compile(fn, dynamic=False)
        fn = backend._compiled[key]
    loss = fn(zs, zt, mask)
    loss.backward(t.ones_like(loss))
    grads = {"grad": backend._numpy(zs.grad)}
    if zt.grad is not None:
        grads["tgrad"] = backend._numpy(zt.grad)
    return Output(backend._numpy(loss), grads=grads, loss_dtype=str(loss.dtype).removeprefix("torch."),
                  grad_dtype=str(zs.grad.dtype).removeprefix("torch."))

