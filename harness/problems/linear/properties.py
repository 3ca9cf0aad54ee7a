"""Metamorphic checks of linear-CE variants (run in the worker with --properties):

- chunk_settings: the same API at another batch chunk size (a torch options variant
  "..._<policy>_c<chunk>" and its sibling "..._<policy>_c<other>") agrees with this one;
- vs_composition: the API agrees with the materialised composition of its backend (its first
  linear variant in the same mode, e.g. torch's F.cross_entropy(F.linear(h, W, b), y)); the
  composition itself in a compiled mode (jax.jit, tf.function, XLA) against its eager run.

"Agrees" means within twice the run's bound of each other on loss, dh, dW and db: if both are
within the bound of the reference, they are within twice of each other. The bound is the run's
(rtol, atol), atol at each entry's natural scale when the tolerance is scaled
(xentcheck.problems.linear.reference gives the scales).
"""

from __future__ import annotations

import re

import numpy as np

from xentcheck.backends.base import named_grads
from xentcheck.core.cases import Case
from xentcheck.problems.linear.cases import LinearInputs

_CHUNK = re.compile(r"^(?P<stem>.+)_c(?P<chunk>\d+)$")


def _agree(case: Case, ref, a: dict[str, np.ndarray], b: dict[str, np.ndarray], tol) -> dict:
    worst, where = 0.0, ""
    for what in ("loss", "dh", "dw", "db"):
        if what not in a or what not in b or (ref.get(what) is None and not (what == "dw" and ref.streamed)):
            continue
        # a streamed dW (reference.linear_reference above STREAM_DW_ENTRIES) a vocabulary block at a time
        parts = ref.dw_blocks() if what == "dw" else [(..., ref.get(what), ref.scales[what])]
        for rows, expected, ref_scale in parts:
            x, y = np.asarray(a[what][rows], dtype=np.float64), np.asarray(b[what][rows], dtype=np.float64)
            scale = np.asarray(ref_scale) if tol.scaled else 1.0
            allowed = 2 * (tol.atol * scale + tol.rtol * np.abs(np.asarray(expected, dtype=np.float64)))
            with np.errstate(invalid="ignore", divide="ignore"):
                same = (x == y) | (np.isnan(x) & np.isnan(y))  # a NaN loss of an empty batch on both sides agrees
                ratio = np.where(same, 0.0, np.where(allowed > 0, np.abs(x - y) / allowed, np.inf))
            if ratio.size and not np.isfinite(ratio).all() and not (np.isnan(x) == np.isnan(y)).all():
                return {"verdict": "fail", "detail": f"{what}: NaN pattern differs"}
            r = float(np.nanmax(ratio)) if ratio.size else 0.0
            if r > worst:
                worst, where = r, what
    ok = worst <= 1
    return {"verdict": "pass" if ok else "fail",
            "detail": f"largest difference {worst:.3g} x the allowed (twice the bound){' in ' + where if where else ''}"}


def _outputs(backend, v, case: Case, inputs: LinearInputs, device: str) -> dict[str, np.ndarray]:
    out = backend.run_variant(v, case, inputs.copy(), device)
    named = named_grads(out, ("dh", "dw", "db"))
    got = {"loss": np.asarray(out.loss), "dh": np.asarray(named.get("dh")), "dw": np.asarray(named.get("dw"))}
    if named.get("db") is not None and inputs.bias is not None:
        got["db"] = np.asarray(named["db"])
    return got


def _stem(impl: str) -> str | None:
    """The API an implementation with a chunk setting calls (_CHUNK's stem); None for another."""
    m = _CHUNK.match(impl)
    return m["stem"] if m else None


def check_linear(backend, variant, case: Case, inputs: LinearInputs, loss: np.ndarray,
                 grads: dict[str, np.ndarray], device: str, tol, all_variants) -> dict[str, dict]:
    """{"chunk_settings": ..., "vs_composition": ...}, each {"verdict", "detail"}."""
    from xentcheck.problems.linear.reference import linear_reference
    ref = linear_reference(case, inputs, variant.semantics)
    mine = {"loss": loss, **grads}
    linear = [v for v in all_variants if getattr(v, "kind", "ce") == "linear" and v.mode == variant.mode]
    out: dict[str, dict] = {}
    stem = _stem(variant.impl)
    sibling = next((v for v in linear if stem and v.impl != variant.impl and _stem(v.impl) == stem), None)
    if sibling is None:
        out["chunk_settings"] = {"verdict": "skipped", "detail": "no other chunk setting of this API"}
    else:
        out["chunk_settings"] = _safe(lambda: _agree(case, ref, mine, _outputs(backend, sibling, case, inputs, device),
                                                     tol), sibling.impl)
    composed = linear[0] if linear else None
    if composed is not None and composed.impl == variant.impl and variant.mode != "eager":
        composed = next((v for v in all_variants if getattr(v, "kind", "ce") == "linear" and v.impl == variant.impl
                         and v.mode == "eager"), composed)  # a compiled composition: against its eager run
    if composed is None or (composed.impl, composed.mode) == (variant.impl, variant.mode):
        out["vs_composition"] = {"verdict": "skipped", "detail": "this is the backend's materialised composition"}
    else:
        partner = composed.impl if composed.mode == variant.mode else f"{composed.impl} ({composed.mode})"
        out["vs_composition"] = _safe(lambda: _agree(case, ref, mine, _outputs(backend, composed, case, inputs, device),
                                                     tol), partner)
    return out


def _safe(fn, partner: str) -> dict:
    try:
        res = fn()
    except Exception as exc:  # the partner failing is a finding of its own result, not of this check
        return {"verdict": "skipped", "detail": f"{partner} raised {type(exc).__name__}: {exc}"[:300]}
    res["detail"] = f"against {partner}: {res['detail']}"
    return res
