"""GRPO toy kernels: a careful one (every step in float64, the row maximum taken out, rounded once
to the dtype) and five each broken one way a GRPO kernel gets wrong: pick one with
--backend-file grpo_toys.py::NAME."""

import numpy as np

from xentcheck.backends.base import Backend, Output, Variant
from xentcheck.problems.grpo.cases import parse
from xentcheck.problems.grpo.reference import token_weights


class CarefulGrpo(Backend):
    name = "grpo-careful"
    dtypes = ("float32", "float64")
    extra_dims = True  # GRPO logits are (B, L, K)
    breaks: frozenset = frozenset()

    def variants(self):
        return [Variant("toy_grpo", "eager", ("index",), kind="grpo", options=("hi", "kl", "t", "grpo", "bnpo", "drgrpo"))]

    def run_variant(self, variant, case, inputs, device):
        s, br = parse(case.spec), self.breaks
        a = inputs.logits.astype(np.float64) / s.temperature
        z = a - a.max(axis=-1, keepdims=True)
        lp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        y = inputs.labels[..., None]
        logp = np.take_along_axis(lp, y, axis=-1)[..., 0]
        r = np.exp(logp - inputs.old_logp.astype(np.float64))
        adv = inputs.advantages.astype(np.float64)[:, None]
        lo, hi = 1 - s.eps_low, 1 + s.eps_high
        if "minfirst" in br:  # the min taken before multiplying by A: -min(r, clip(r)) A
            per_token = -np.minimum(r, np.clip(r, lo, hi)) * adv
            dlogp = np.where(r <= hi, -adv * r, 0.0)
        else:
            per_token = -np.minimum(r * adv, np.clip(r, lo, hi) * adv)
            picks_r = r * adv <= np.clip(r, lo, hi) * adv
            if "clipside" in br:  # the gradient cut wherever r leaves the range, whichever term the min picks
                picks_r = (r >= lo) & (r <= hi)
            if "swapped" in br:  # the sides swapped: cut below the range for A > 0, above it for A < 0
                picks_r = ~(((adv > 0) & (r < lo)) | ((adv < 0) & (r > hi)))
            dlogp = np.where(picks_r, -adv * r, 0.0)
        if s.beta:
            d = inputs.ref_logp.astype(np.float64) - logp
            if "klsign" in br:  # k3 of the other direction: exp(new - ref) - (new - ref) - 1
                d = -d
                dlogp = dlogp + s.beta * np.expm1(d)
            else:
                dlogp = dlogp - s.beta * np.expm1(d)
            per_token = per_token + s.beta * (np.expm1(d) - d)
        w = token_weights(inputs.mask, "bnpo" if "tokenmean" in br else case.reduction)
        g = -np.exp(lp)
        np.put_along_axis(g, y, np.take_along_axis(g, y, axis=-1) + 1, axis=-1)
        dt = inputs.logits.dtype
        return Output(np.asarray((w * per_token).sum()).astype(dt),
                      grads={"grad": (g * (w * dlogp)[..., None] / s.temperature).astype(dt)})


class ClipWrongSide(CarefulGrpo):
    name = "grpo-clip-wrong-side"
    breaks = frozenset({"clipside"})


class ClipSidesSwapped(CarefulGrpo):
    name = "grpo-clip-sides-swapped"
    breaks = frozenset({"swapped"})


class MinBeforeAdvantage(CarefulGrpo):
    name = "grpo-min-before-advantage"
    breaks = frozenset({"minfirst"})


class KlReversed(CarefulGrpo):
    name = "grpo-kl-reversed"
    breaks = frozenset({"klsign"})


class TokenMean(CarefulGrpo):
    """loss_type "grpo" reduced as "bnpo": one mean over every token, not a mean of completions' means."""
    name = "grpo-token-mean"
    breaks = frozenset({"tokenmean"})


BACKEND = CarefulGrpo
