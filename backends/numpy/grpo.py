"""NumPy GRPO: the clipped objective and its analytic gradient (problems/grpo/reference.py), in the
dtype widened to at least float32, rounded once: a complete example of a GRPO kernel for plugin
authors (docs/rl.md, "Your own kernel").

Per token: log p from the log-softmax with the row maximum taken out, r = exp(log p - log p_old),
loss_t = -min(r A, clip(r) A) + beta (expm1(d) - d), d = log p_ref - log p; dloss_t / dlog p is
-A r where the min picks r A (not where it picks the clipped constant) minus beta expm1(d), and the
logits' gradient is w_t dloss_t / dlog p (onehot(y) - p) / T with w_t the loss type's weight."""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Output, Variant
from xentcheck.core.cases import Case
from xentcheck.problems.grpo.cases import parse
from xentcheck.problems.grpo.reference import token_weights


def variants() -> list[Variant]:
    return [Variant("grpo_analytic", "eager", ("index",), api="analytic clipped GRPO loss and gradient",
                    options=("hi", "kl", "t", "grpo", "bnpo", "drgrpo"), kind="grpo")]


def run(backend, variant: Variant, case: Case, inputs, device: str) -> Output:
    s = parse(case.spec)
    dt = inputs.logits.dtype
    acc = np.float32 if dt.itemsize < 4 else dt.type
    t = acc(s.temperature)
    a = inputs.logits.astype(acc) / t
    z = a - a.max(axis=-1, keepdims=True)
    lp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    y = inputs.labels[..., None]
    logp = np.take_along_axis(lp, y, axis=-1)[..., 0]
    r = np.exp(logp - inputs.old_logp.astype(acc))
    adv = inputs.advantages.astype(acc)[:, None]
    lo, hi = acc(1 - s.eps_low), acc(1 + s.eps_high)
    per_token = -np.minimum(r * adv, np.clip(r, lo, hi) * adv)
    dlogp = np.where((r * adv <= np.clip(r, lo, hi) * adv), -adv * r, acc(0))
    if s.beta:
        d = inputs.ref_logp.astype(acc) - logp
        per_token = per_token + acc(s.beta) * (np.expm1(d) - d)
        dlogp = dlogp - acc(s.beta) * np.expm1(d)
    w = token_weights(inputs.mask, case.reduction, acc)
    g = -np.exp(lp)
    np.put_along_axis(g, y, np.take_along_axis(g, y, axis=-1) + 1, axis=-1)
    return Output(np.asarray((w * per_token).sum(), dtype=dt), grads={"grad": (g * (w * dlogp)[..., None] / t).astype(dt)})
