"""PyTorch GRPO as TRL's GRPOTrainer writes it (trl/trainer/grpo_trainer.py `_compute_loss`,
trl/trainer/utils.py `selective_log_softmax`), eagerly, the gradient by autograd:

    logp = selective_log_softmax(z / T, y)   # gather - logsumexp in float32/64; log_softmax.gather below
    coef_1 = exp(logp - old_logp); coef_2 = clamp(coef_1, 1 - eps_low, 1 + eps_high)
    per_token_loss = -min(coef_1 A, coef_2 A) + beta (exp(ref - logp) - (ref - logp) - 1)
    loss: "grpo" ((l m).sum(-1) / m.sum(-1).clamp(min=1)).mean(); "bnpo" (l m).sum() / m.sum().clamp(min=1);
          "dr_grpo" (l m).sum() / (B max_completion_length), max_completion_length = L here."""

from __future__ import annotations

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case
from xentcheck.problems.grpo.cases import parse

API = "TRL GRPOTrainer: -min(exp(logp - old) A, clamp(exp(logp - old), 1 - e_lo, 1 + e_hi) A) + beta k3, by loss_type"


def variants() -> list[Variant]:
    return [Variant("trl_grpo_loss", "eager", ("index",), API, options=("hi", "kl", "t", "grpo", "bnpo", "drgrpo"),
                    kind="grpo")]


def selective_log_softmax(torch, logits, index):
    """TRL's: gather minus a per-row logsumexp in float32/64, log_softmax then gather below."""
    if logits.dtype in (torch.float32, torch.float64):
        picked = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
        return picked - torch.stack([torch.logsumexp(row, dim=-1) for row in logits])
    rows = [torch.nn.functional.log_softmax(row, dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
            for row, ids in zip(logits, index)]
    return torch.stack(rows)


def grpo_loss(torch, logp, old, ref, adv, mask, s, loss_type: str):
    coef_1 = torch.exp(logp - old)
    coef_2 = torch.clamp(coef_1, 1 - s.eps_low, 1 + s.eps_high)
    per_token = -torch.min(coef_1 * adv.unsqueeze(1), coef_2 * adv.unsqueeze(1))
    if s.beta:
        per_token = per_token + s.beta * (torch.exp(ref - logp) - (ref - logp) - 1)
    if loss_type == "grpo":
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "bnpo":
        return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    return (per_token * mask).sum() / (per_token.size(0) * per_token.size(1))


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    torch = backend.torch
    s = parse(case.spec)
    z = backend._tensor(inputs.logits, device).requires_grad_(True)
    y = torch.from_numpy(inputs.labels.copy()).to(device)
    old, ref, adv = (backend._tensor(a, device) for a in (inputs.old_logp, inputs.ref_logp, inputs.advantages))
    mask = torch.from_numpy(inputs.mask.copy()).to(device)
    logp = selective_log_softmax(torch, z / s.temperature, y)
    loss = grpo_loss(torch, logp, old, ref, adv, mask, s, case.reduction)
    (g,) = torch.autograd.grad(loss, z)
    return Output(backend._numpy(loss), grads={"grad": backend._numpy(g)},
                  loss_dtype=str(loss.dtype).removeprefix("torch."), grad_dtype=str(g.dtype).removeprefix("torch."))
