"""Properties every softmax cross-entropy must have, checked on a backend's own outputs.

Each check reruns the backend on transformed inputs (or asks its autodiff for more) and compares:
shift invariance, permutation equivariance, integer vs one-hot labels, mean = sum / N, gradient
rows summing to zero, gradient bounds, loss >= 0, bitwise determinism, dtype fidelity, input
isolation, eager vs compiled, forward- vs reverse-mode derivatives, and the second derivative
(diag(p) - p p^T per row, applied to a vector) against the float64 closed form.

Every check returns {"verdict": pass | fail | skipped | error, "detail": one line}. Tolerances are
the run's, for the case's dtype, measured against the same natural scales as the reference
comparison (see xentcheck.core.tolerances).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from xentcheck.core import layout
from xentcheck.core.cases import Case, Inputs
from xentcheck.core.dtypes import info
from xentcheck.core.reference import label_matrix

MAX_K_SECOND_ORDER = 64
PROPERTY_NAMES: tuple[str, ...] = (
    "dtype_fidelity", "input_isolation", "determinism", "shift_invariance", "permutation_equivariance",
    "int_vs_onehot", "mean_vs_sum", "grad_row_sums", "grad_bounds", "loss_nonnegative",
    "eager_vs_compiled", "forward_vs_reverse", "second_order",
)


@dataclass
class Tol:
    rtol: float
    atol: float
    scaled: bool


def _pass(detail: str = "") -> dict:
    return {"verdict": "pass", "detail": detail}


def _fail(detail: str) -> dict:
    return {"verdict": "fail", "detail": detail}


def _skip(detail: str) -> dict:
    return {"verdict": "skipped", "detail": detail}


def _f64(a) -> np.ndarray:
    return np.asarray(a).astype(np.float64)


def grad_scale(case: Case, inputs: Inputs) -> np.ndarray:
    """max(1, sum q) / denominator per row, as (M, 1): no gradient entry exceeds it."""
    q_sum = np.ones(case.rows) if case.labels == "index" else _f64(inputs.labels).sum(axis=1)
    denom = case.rows if case.reduction == "mean" else 1
    return (np.fmax(1.0, np.abs(q_sum)) / denom)[:, None]


def close(actual, expected, tol: Tol, scale) -> str | None:
    """None when actual matches expected (same NaN/inf pattern, finite parts within tolerance),
    else a one-line description of the worst element."""
    a, e = _f64(actual), _f64(expected)
    if a.shape != e.shape:
        return f"shapes differ: {list(a.shape)} vs {list(e.shape)}"
    same_nonfinite = (np.isnan(a) & np.isnan(e)) | (np.isinf(a) & (a == e))
    finite = np.isfinite(a) & np.isfinite(e)
    bad_nonfinite = ~finite & ~same_nonfinite
    if bad_nonfinite.any():
        i = np.unravel_index(int(np.argmax(bad_nonfinite)), a.shape)
        return f"NaN/inf differ at {list(map(int, i))}: {a[i]} vs {e[i]}"
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), a.shape) if tol.scaled else np.ones(a.shape)
    diff = np.where(finite, np.abs(a - e), 0.0)
    allowed = tol.rtol * np.abs(np.where(finite, e, 0.0)) + tol.atol * s
    if (diff <= allowed).all():
        return None
    i = np.unravel_index(int(np.argmax(diff - allowed)), a.shape)
    return f"{int((diff > allowed).sum())} / {a.size} differ; worst at {list(map(int, i))}: {a[i]:.9g} vs {e[i]:.9g}"


def _compare_outputs(out, base, case: Case, inputs: Inputs, tol: Tol, what: str) -> dict:
    loss_scale = np.fmax(1.0, np.abs(np.nan_to_num(_f64(base.loss), nan=1.0, posinf=1.0, neginf=1.0)))
    for label, a, e, scale in (("loss", out.loss, base.loss, loss_scale),
                               ("gradient", out.grad, base.grad, grad_scale(case, inputs))):
        problem = close(a, e, tol, scale)
        if problem:
            return _fail(f"{what}: {label} {problem}")
    return _pass()


def _two_sum_exact(a: np.ndarray, b: float) -> np.ndarray:
    """Whether a + b is exact in float64, elementwise (TwoSum's error term is zero)."""
    s = a + b
    bb = s - a
    return ((a - (s - bb)) + (b - bb)) == 0


def _exact_shift(x: np.ndarray, dtype: str) -> float | None:
    """The largest constant c (a power of two, either sign) with x + c exact in the dtype for every
    finite entry; small logits with full significands may only allow a shift of one ULP."""
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return None
    d = info(dtype)
    top = float(np.abs(finite).max())
    e_top = int(np.floor(np.log2(top))) if top > 0 else 0
    for e in range(e_top + 2, e_top - d.digits - 2, -1):
        for c in (2.0 ** e, -(2.0 ** e)):
            shifted = (finite + c).astype(d.np_type).astype(np.float64)
            if np.isfinite(shifted).all() and np.array_equal(shifted, finite + c) and _two_sum_exact(finite, c).all():
                return c
    return None


def _rng_vector(case: Case, dtype_t) -> np.ndarray:
    import zlib
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    return rng.uniform(-1, 1, (case.rows, case.k)).astype(dtype_t)


Runner = Callable[[object, Case, Inputs], object]  # (variant, case, inputs) -> Output


def check_all(backend, variant, case: Case, inputs: Inputs, base, modified: list[str], device: str,
              tol: Tol, all_variants: list) -> dict[str, dict]:
    """Run every property check for one (case, variant) whose output is `base`. Everything here
    is in rows, (M, K); `xentcheck.core.layout` gives the backend the case's own shape."""
    dt = info(case.dtype)
    out: dict[str, dict] = {}

    def run(v, c: Case, inp: Inputs):
        return layout.run(backend, v, c, inp, device)

    def guarded(name: str, fn: Callable[[], dict]) -> None:
        try:
            out[name] = fn()
        except NotImplementedError as exc:
            out[name] = _skip(str(exc) or "not implemented")
        except Exception as exc:  # the framework raising on a valid request is itself a finding
            out[name] = {"verdict": "error", "detail": f"{type(exc).__name__}: {str(exc)[:300]}"}

    def dtype_fidelity() -> dict:
        got = {base.loss_dtype or np.asarray(base.loss).dtype.name, base.grad_dtype or np.asarray(base.grad).dtype.name}
        if got == {case.dtype}:
            return _pass()
        hint = f"; to get {case.dtype}: {backend.float64_hint.format(dtype=case.dtype)}" if backend.float64_hint else ""
        return _fail(f"requested {case.dtype}, computed in {', '.join(sorted(got))}{hint}")

    def isolation() -> dict:
        return _fail(f"modified its input {' and '.join(modified)} in place") if modified else _pass()

    def determinism() -> dict:
        again = run(variant, case, inputs)
        same = (_f64(again.loss).tobytes() == _f64(base.loss).tobytes()
                and _f64(again.grad).tobytes() == _f64(base.grad).tobytes())
        return _pass("bitwise identical on a repeated call") if same else _fail("a repeated call gave different bits")

    def shift() -> dict:
        c = _exact_shift(_f64(inputs.logits), case.dtype)
        if c is None:
            return _skip("no constant shifts these logits exactly in this dtype")
        shifted = inputs.copy()
        shifted.logits = (_f64(inputs.logits) + c).astype(dt.np_type)
        return _compare_outputs(run(variant, case, shifted), base, case, inputs, tol, f"logits + {c:g}")

    def permutation() -> dict:
        perm = np.random.default_rng(case.k).permutation(case.k)
        inv = np.argsort(perm)
        p_in = inputs.copy()
        p_in.logits = inputs.logits[:, perm]
        p_in.labels = inv[inputs.labels] if case.labels == "index" else inputs.labels[:, perm]
        got = run(variant, case, p_in)
        got.grad = np.asarray(got.grad)[:, inv]
        return _compare_outputs(got, base, case, inputs, tol, "classes permuted")

    def int_vs_onehot() -> dict:
        if case.labels != "index":
            return _skip("index labels only")
        # the same API if it takes one-hot labels, else its sibling (same prefix), else any
        takes = [v for v in all_variants if v.mode == variant.mode and "onehot" in v.label_forms]
        prefix = variant.impl.split("_")[0]
        partner = next((v for v in takes if v.impl == variant.impl), None) \
            or next((v for v in takes if v.impl.split("_")[0] == prefix), None) or next(iter(takes), None)
        if partner is None:
            return _skip("no one-hot implementation in this mode")
        oh = inputs.copy()
        oh.labels = np.zeros((case.rows, case.k), dtype=dt.np_type)
        oh.labels[np.arange(case.rows), inputs.labels] = 1
        got = run(partner, replace(case, labels="onehot"), oh)
        return _compare_outputs(got, base, case, inputs, tol, f"one-hot labels through {partner.impl}")

    def mean_vs_sum() -> dict:
        if case.reduction == "none":
            return _skip("mean and sum cases only")
        other = "sum" if case.reduction == "mean" else "mean"
        got = run(variant, replace(case, reduction=other), inputs)
        m = case.rows
        factor = 1.0 / m if other == "sum" else float(m)
        total = np.abs(_f64(got.loss if other == "sum" else base.loss))
        if np.isinf(total) and np.isfinite(_f64(got.loss if other == "mean" else base.loss) * m).all() \
                and np.abs(_f64(got.loss if other == "mean" else base.loss)).max() * m >= dt.max:
            return _skip(f"the sum overflows {case.dtype}: its inf is correct")
        scaled = type(got)(loss=_f64(got.loss) * factor, grad=_f64(got.grad) * factor)
        return _compare_outputs(scaled, base, case, inputs, tol, f"{other} rescaled by the denominator {m}")

    g = _f64(base.grad)
    gs = grad_scale(case, inputs)

    def row_sums() -> dict:
        rows = g.sum(axis=1)
        bound = 2 * (tol.rtol + tol.atol) * gs[:, 0] + 4 * dt.eps * np.abs(g).sum(axis=1)
        bad = np.isfinite(rows) & (np.abs(rows) > bound)
        if bad.any():
            i = int(np.argmax(np.where(bad, np.abs(rows) / bound, 0)))
            return _fail(f"gradient row {i} sums to {rows[i]:.3g} (allowed {bound[i]:.3g})")
        return _pass()

    def bounds() -> dict:
        limit = gs * (1 + tol.rtol) + tol.atol * gs
        bad = np.isfinite(g) & (np.abs(g) > limit)
        if bad.any():
            i = np.unravel_index(int(np.argmax(np.where(bad, np.abs(g) / limit, 0))), g.shape)
            return _fail(f"|gradient| {abs(g[i]):.3g} at {list(map(int, i))} exceeds max(1, sum q)/denominator = {gs[i[0], 0]:.3g}")
        return _pass()

    def nonnegative() -> dict:
        loss = _f64(base.loss)
        floor = -tol.atol * np.fmax(1.0, np.abs(loss))
        bad = np.isfinite(loss) & (loss < floor)
        return _fail(f"negative loss {loss[bad].min():.3g}") if bad.any() else _pass()

    def eager_vs_compiled() -> dict:
        if variant.mode == "eager":
            return _skip("eager mode itself")
        eager = next((v for v in all_variants if v.impl == variant.impl and v.mode == "eager"), None)
        if eager is None:
            return _skip("no eager mode of this implementation")
        return _compare_outputs(base, run(eager, case, inputs), case, inputs, tol, f"{variant.mode} vs eager")

    def forward_vs_reverse() -> dict:
        v = _rng_vector(case, dt.np_type)
        jvp = _f64(layout.jvp(backend, variant, case, inputs, device, v))
        vf = _f64(v)
        terms = g * vf
        expected = terms.sum(axis=1) if case.reduction == "none" else terms.sum()
        # the JVP forms sum(p q v) - sum(q v): measure its error at the scale of those terms
        q = label_matrix(case, inputs, np.float64) / (case.rows if case.reduction == "mean" else 1)
        parts = (np.abs(g + q) + np.abs(q)) * np.abs(vf)
        magnitude = parts.sum(axis=1) if case.reduction == "none" else parts.sum()
        scale = np.fmax(magnitude, np.finfo(np.float64).tiny)
        problem = close(jvp, expected, Tol(tol.rtol, tol.atol, True), scale)
        return _fail(f"forward-mode JVP vs reverse-mode gradient . v: {problem}") if problem else _pass()

    def second_order() -> dict:
        if case.k > MAX_K_SECOND_ORDER:
            return _skip(f"K > {MAX_K_SECOND_ORDER}")
        v = _rng_vector(case, dt.np_type)
        hv = _f64(layout.hvp(backend, variant, case, inputs, device, v))
        x = _f64(inputs.logits)
        q_sum = label_matrix(case, inputs, np.float64).sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", over="ignore"):
            z = x - x.max(axis=1, keepdims=True)
            p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        vf = _f64(v)
        denom = case.rows if case.reduction == "mean" else 1
        expected = q_sum * (p * vf - p * (p * vf).sum(axis=1, keepdims=True)) / denom
        scale = 2 * np.abs(q_sum) * np.abs(vf).max(axis=1, keepdims=True) / denom
        problem = close(hv, expected, tol, scale)
        return _fail(f"Hessian-vector product vs (diag(p) - p p^T) v: {problem}") if problem else _pass()

    checks = {"dtype_fidelity": dtype_fidelity, "input_isolation": isolation, "determinism": determinism,
              "shift_invariance": shift, "permutation_equivariance": permutation, "int_vs_onehot": int_vs_onehot,
              "mean_vs_sum": mean_vs_sum, "grad_row_sums": row_sums, "grad_bounds": bounds,
              "loss_nonnegative": nonnegative, "eager_vs_compiled": eager_vs_compiled,
              "forward_vs_reverse": forward_vs_reverse, "second_order": second_order}
    computed = {base.loss_dtype or np.asarray(base.loss).dtype.name, base.grad_dtype or np.asarray(base.grad).dtype.name}
    # with class weights, ignored targets or smoothing the denominators and label weights are the
    # API's own: these checks assume plain labels (the reference comparison covers the options)
    option_bound = {"permutation_equivariance", "int_vs_onehot", "mean_vs_sum", "grad_bounds", "second_order",
                    "forward_vs_reverse"} if case.options else set()
    for name in PROPERTY_NAMES:
        if case.rows == 0 and name not in ("dtype_fidelity", "input_isolation", "determinism"):
            out[name] = _skip("an empty batch: no rows to check")
        elif name in option_bound:
            out[name] = _skip(f"assumes plain labels; this case has options {case.options}")
        elif name not in ("dtype_fidelity", "input_isolation", "determinism") and computed != {case.dtype}:
            out[name] = _skip(f"computed in {', '.join(sorted(computed))}, not {case.dtype}: see dtype_fidelity")
        elif name in ("forward_vs_reverse", "second_order") and variant.mode != "eager":
            out[name] = _skip("uses the framework's eager autodiff: checked with the eager mode")
        else:
            guarded(name, checks[name])
    return out
