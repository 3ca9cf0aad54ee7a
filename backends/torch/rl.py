"""PyTorch RL log-probabilities and entropy as RL libraries write them (docs/rl.md), eagerly:

- log_softmax_gather: log p_y = F.log_softmax(z / T).gather(-1, y) (verl's logprobs_from_logits_v2,
  TRL), H = torch.distributions.Categorical(logits=z / T).entropy();
- cross_entropy_verl_entropy: log p_y = -F.cross_entropy(z / T, y, reduction="none"), and verl's
  entropy_from_logits: H = torch.logsumexp(z / T) - sum(softmax(z / T) * z / T).

The gradients by autograd: torch.autograd.grad(log p, z, A) and (H, z, c)."""

from __future__ import annotations

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case
from xentcheck.problems.rl.cases import parse

IMPLS = (("log_softmax_gather", "F.log_softmax(z / T).gather(-1, y); Categorical(logits=z / T).entropy()"),
         ("cross_entropy_verl_entropy", "-F.cross_entropy(z / T, y); logsumexp(z / T) - sum(softmax(z / T) * z / T)"))


def variants() -> list[Variant]:
    return [Variant(i, "eager", ("index",), api, options=("t",), kind="rl") for i, api in IMPLS]


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    torch = backend.torch
    F = torch.nn.functional
    T = parse(case.spec).temperature
    z = backend._tensor(inputs.logits, device).requires_grad_(True)
    y = torch.from_numpy(inputs.labels.copy()).to(device)
    a = z / T
    if variant.impl == "log_softmax_gather":
        logp = F.log_softmax(a, dim=-1).gather(-1, y[:, None])[:, 0]
        h = torch.distributions.Categorical(logits=a).entropy()
    else:
        logp = -F.cross_entropy(a, y, reduction="none")
        h = torch.logsumexp(a, dim=-1) - (F.softmax(a, dim=-1) * a).sum(dim=-1)
    (g,) = torch.autograd.grad(logp, z, backend._tensor(inputs.advantages, device), retain_graph=True)
    (eg,) = torch.autograd.grad(h, z, backend._tensor(inputs.coefficients, device))
    return Output(backend._numpy(logp), grads={"entropy": backend._numpy(h), "grad": backend._numpy(g),
                                               "egrad": backend._numpy(eg)},
                  loss_dtype=str(logp.dtype).removeprefix("torch."), grad_dtype=str(g.dtype).removeprefix("torch."))
