r"""The RL reference: token log-probabilities, the entropy, and the gradients of A . log p_y and
c . H w.r.t. the logits, in float64 (80-bit long double for float64 cases).

Per row, a = z / T, log p = a - lse(a) (the row maximum taken out), y the sampled token:

    log p_y = a_y - lse(a)                    d(log p_y)/dz_j = (delta_jy - p_j) / T
    H = -sum_j p_j log p_j = lse(a) - E_p[a]  dH/dz_j = -p_j (log p_j + H) / T

(the softmax's VJP v -> p (v - E_p[v]) applied to v = -(log p + 1): E_p[-(log p + 1)] = H - 1).
H is formed as -sum p log p, a sum of non-negative terms (lse - E_p[a] cancels for a large common
offset), 0 log 0 = 0; 0 <= H <= log K, log p_y <= 0. The gradients: A_n and c_n times each row.

Natural scales: a log-probability at max(1, |log p_y|) + w, the entropy at max(1, H) + w, w =
max |z| / T when T is not a power of two (z / T rounded at |z / T|), else 0; a gradient row at
|A_n| (1 + w) / T, an entropy-gradient row at |c_n| (1 + sum_j p_j (|log p_j| + H) + w) / T.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from xentcheck.core.cases import Case
from xentcheck.core.dtypes import numpy_working_type
from xentcheck.problems.rl.cases import RlInputs, parse


@dataclass
class RlReference:
    loss: np.ndarray  # (N,) log p_y
    entropy: np.ndarray  # (N,)
    grad: np.ndarray  # (N, K) of sum A log p_y
    egrad: np.ndarray  # (N, K) of sum c H
    scales: dict = field(default_factory=dict)
    precision: str = "float64"

    def get(self, name: str) -> np.ndarray | None:
        return getattr(self, name, None)


def rl_reference(case: Case, inputs: RlInputs, semantics: str = "plain") -> RlReference:
    spec = parse(case.spec)
    wide, precision = numpy_working_type(case.dtype)
    t = wide(spec.temperature)
    a = inputs.logits.astype(wide) / t
    n = len(a)
    rows = np.arange(n)
    m = a.max(axis=1, keepdims=True) if a.size else np.zeros((n, 1), wide)
    lp = (a - m) - np.log(np.exp(a - m).sum(axis=1, keepdims=True))
    p = np.exp(lp)
    logp = lp[rows, inputs.labels]
    terms = p * lp
    h = -terms.sum(axis=1)
    adv = inputs.advantages.astype(wide)[:, None]
    coef = inputs.coefficients.astype(wide)[:, None]
    g = -p
    g[rows, inputs.labels] += 1
    grad = g * adv / t
    egrad = -p * (lp + h[:, None]) * coef / t
    w = 0.0
    if math.frexp(spec.temperature)[0] != 0.5 and a.size:
        w = np.abs(inputs.logits.astype(np.float64)).max(axis=1) / spec.temperature
    f64 = lambda v: np.asarray(v, dtype=np.float64)  # noqa: E731
    mag = f64((p * (np.abs(lp) + h[:, None])).sum(axis=1))
    tt = float(spec.temperature)
    scales = {"loss": np.fmax(1.0, np.abs(f64(logp))) + w, "entropy": np.fmax(1.0, f64(h)) + w,
              "grad": (np.abs(f64(adv[:, 0])) * (1 + w) / tt)[:, None],
              "egrad": (np.abs(f64(coef[:, 0])) * (1 + mag + w) / tt)[:, None]}
    return RlReference(logp, h, grad, egrad, scales, precision)
