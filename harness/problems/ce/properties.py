"""Properties every softmax cross-entropy must have, checked on a backend's own outputs.

Each check reruns the backend on transformed inputs (or asks its autodiff for more) and compares:
shift invariance, permutation equivariance, integer vs one-hot labels, mean = sum / N, gradient
rows summing to zero, gradient bounds, loss >= 0, bitwise determinism, dtype fidelity, input
isolation, eager vs compiled, forward- vs reverse-mode derivatives, and the second derivative
(diag(p) - p p^T per row, applied to a vector) against the float64 closed form.

Every check returns {"verdict": pass | fail | skipped | error, "detail": one line}. Tolerances are
the run's, for the case's dtype, measured against the same natural scales as the reference
comparison (see xentcheck.core.tolerances).

Each check is a function of a Context (one case, one variant, the backend's output for it);
PROPERTIES lists them in report order with the cases each applies to, and check_all walks it.

Under the LLM-training options (scale, softcap, z-loss, cotangent; docs/llm-options.md) each
Property says which invariants still hold (`llm_skip`: why not, `llm_note`: how the check
accounts for the option); `invariants_table` renders that as the table in docs/llm-options.md.
The scales of gradient entries then come from the reference's natural scales
(xentcheck.problems.ce.metrics.llm_natural_scales): they grow with s, |v| and the z-loss's 2 z lse.

Label weights need not sum to one (label form "unnorm": rows of mass Q = sum(q), 0 included). No
check assumes Q = 1: the gradient p Q - q still sums to Q - Q = 0 per row (grad_row_sums: a p - q
gradient sums to 1 - Q and fails it), entries are bounded by max(1, |Q|) / D (grad_bounds), the loss
sum q (lse - x) is >= 0 for q >= 0, and the Hessian is Q (diag(p) - p p^T) (second_order).

A probability API that clips (semantics in xentcheck.problems.ce.probs.CLIPPED: Keras's from_logits=False)
computes another function: `Property.clipped_skip` names the checks that do not hold for it, and
int_vs_onehot's partner must clip the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from xentcheck.core.cases import LLM_OPTIONS, OPTIONS, Case, Inputs
from xentcheck.core.dtypes import info
from xentcheck.core.tolerances import Tol
from xentcheck.problems.ce import layout, metrics
from xentcheck.problems.ce.probs import CLIPPED
from xentcheck.problems.ce.reference import Reference, label_matrix, reference

if TYPE_CHECKING:  # the core imports no backend at run time
    from xentcheck.backends.base import Backend, Output, Variant

MAX_K_SECOND_ORDER = 64


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


def _compare_outputs(out, base, case: Case, inputs: Inputs, tol: Tol, what: str,
                     g_scale: np.ndarray | None = None) -> dict:
    """`g_scale`: the gradient rows' scale (default grad_scale; LLM options: Context.grad_scale)."""
    loss_scale = np.fmax(1.0, np.abs(np.nan_to_num(_f64(base.loss), nan=1.0, posinf=1.0, neginf=1.0)))
    g_scale = grad_scale(case, inputs) if g_scale is None else g_scale
    for label, a, e, scale in (("loss", out.loss, base.loss, loss_scale),
                               ("gradient", out.grad, base.grad, g_scale)):
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


@dataclass
class Context:
    """One (case, variant) whose output is `base`, everything in rows, (M, K);
    `xentcheck.problems.ce.layout` gives the backend the case's own shape."""
    backend: Backend
    variant: Variant
    case: Case
    inputs: Inputs
    base: Output  # the backend's output for (case, inputs)
    modified: list[str]  # the inputs the backend changed in place
    device: str
    tol: Tol
    all_variants: list[Variant]  # every variant of the backend, for the checks that need a partner
    timings: dict[str, float] = field(default_factory=dict)  # seconds of some checks' calls, for the run's timing

    @property
    def dt(self):
        return info(self.case.dtype)

    def run(self, variant, case: Case, inputs: Inputs):
        """The backend's output for another variant, case or inputs."""
        return layout.run(self.backend, variant, case, inputs, self.device)

    def reference(self) -> Reference:
        """The reference of the case as the variant's API reads it (LLM options: the properties'
        expected row sums and gradient scales come from it); computed once."""
        if "ref" not in self.__dict__:
            self.__dict__["ref"] = reference(self.case, self.inputs, getattr(self.variant, "semantics", "plain"))
        return self.__dict__["ref"]

    def grad_scale(self) -> np.ndarray:
        """Each gradient row's scale, (M, 1): grad_scale, or with LLM options the natural scale
        (metrics.natural_scales: s, |v|, the z-loss and the final logits' rounding)."""
        if not self.case.llm:
            return grad_scale(self.case, self.inputs)
        return metrics.natural_scales(self.case, self.reference())[1]

    def grad_limit(self) -> np.ndarray:
        """No gradient entry exceeds this, (M, 1): max(1, sum q) / denominator, or with LLM options
        metrics.grad_entry_bound (|s| |v| (max(1, |Q|) / D + 2 z |lse| / D_z))."""
        if not self.case.llm:
            return grad_scale(self.case, self.inputs)
        return metrics.grad_entry_bound(self.case, self.reference())

    def compare(self, out, base, what: str) -> dict:
        return _compare_outputs(out, base, self.case, self.inputs, self.tol, what, self.grad_scale())

    def computed(self) -> set[str]:
        """The dtypes the backend computed the loss and the gradient in."""
        b = self.base
        return {b.loss_dtype or np.asarray(b.loss).dtype.name, b.grad_dtype or np.asarray(b.grad).dtype.name}


def dtype_fidelity(c: Context) -> dict:
    got = c.computed()
    if got == {c.case.dtype}:
        return _pass()
    hint = f"; to get {c.case.dtype}: {c.backend.float64_hint.format(dtype=c.case.dtype)}" if c.backend.float64_hint else ""
    return _fail(f"requested {c.case.dtype}, computed in {', '.join(sorted(got))}{hint}")


def input_isolation(c: Context) -> dict:
    return _fail(f"modified its input {' and '.join(c.modified)} in place") if c.modified else _pass()


def determinism(c: Context) -> dict:
    start = time.perf_counter()
    again = c.run(c.variant, c.case, c.inputs)
    c.timings["repeat_seconds"] = time.perf_counter() - start  # the call once traced: suite_time.py's figure
    same = (_f64(again.loss).tobytes() == _f64(c.base.loss).tobytes()
            and _f64(again.grad).tobytes() == _f64(c.base.grad).tobytes())
    return _pass("bitwise identical on a repeated call") if same else _fail("a repeated call gave different bits")


def shift_invariance(c: Context) -> dict:
    s = c.case.logit_scale
    if s is not None and np.frexp(s)[0] != 0.5:
        return _skip(f"s = {s:g} is not a power of two: s x and s (x + t) round differently")
    x = _f64(c.inputs.logits)
    shift = _exact_shift(x if s is None else x * s, c.case.dtype)  # the scaled logits shift by s t
    if shift is None:
        return _skip("no constant shifts these logits exactly in this dtype")
    shift = shift if s is None else shift / s
    shifted = c.inputs.copy()
    shifted.logits = (x + shift).astype(c.dt.np_type)
    if s is not None and not np.array_equal(_f64(shifted.logits), x + shift, equal_nan=True):
        return _skip("no constant shifts these logits exactly in this dtype")
    return c.compare(c.run(c.variant, c.case, shifted), c.base, f"logits + {shift:g}")


def permutation_equivariance(c: Context) -> dict:
    case, inputs = c.case, c.inputs
    perm = np.random.default_rng(case.k).permutation(case.k)
    inv = np.argsort(perm)
    p_in = inputs.copy()
    p_in.logits = inputs.logits[:, perm]
    p_in.labels = inv[inputs.labels] if case.labels == "index" else inputs.labels[:, perm]
    got = c.run(c.variant, case, p_in)
    got.grad = np.asarray(got.grad)[:, inv]
    return c.compare(got, c.base, "classes permuted")


def int_vs_onehot(c: Context) -> dict:
    case, variant = c.case, c.variant
    # the same API if it takes one-hot labels, else its sibling (same prefix), else any
    needs = case.option_set  # the LLM options travel with the case: the partner must take them
    clip = getattr(variant, "semantics", "plain")
    takes = [v for v in c.all_variants if v.mode == variant.mode and "onehot" in v.label_forms
             and needs <= set(getattr(v, "options", ()))
             and (clip not in CLIPPED or getattr(v, "semantics", "plain") == clip)]  # the same clipped function
    prefix = variant.impl.split("_")[0]
    partner = next((v for v in takes if v.impl == variant.impl), None) \
        or next((v for v in takes if v.impl.split("_")[0] == prefix), None) or next(iter(takes), None)
    if partner is None:
        return _skip("no one-hot implementation in this mode" + (f" taking {case.options}" if needs else ""))
    oh = c.inputs.copy()
    oh.labels = np.zeros((case.rows, case.k), dtype=c.dt.np_type)
    oh.labels[np.arange(case.rows), c.inputs.labels] = 1
    got = c.run(partner, replace(case, labels="onehot"), oh)
    return c.compare(got, c.base, f"one-hot labels through {partner.impl}")


def mean_vs_sum(c: Context) -> dict:
    case, base = c.case, c.base
    other = "sum" if case.reduction == "mean" else "mean"
    got = c.run(c.variant, replace(case, reduction=other), c.inputs)
    m = case.rows
    factor = 1.0 / m if other == "sum" else float(m)
    total = np.abs(_f64(got.loss if other == "sum" else base.loss))
    if np.isinf(total) and np.isfinite(_f64(got.loss if other == "mean" else base.loss) * m).all() \
            and np.abs(_f64(got.loss if other == "mean" else base.loss)).max() * m >= c.dt.max:
        return _skip(f"the sum overflows {case.dtype}: its inf is correct")
    scaled = type(got)(loss=_f64(got.loss) * factor, grad=_f64(got.grad) * factor)
    # the scalar cotangent v (ct<v>) is the same for both: v g_mean = v g_sum / N
    return c.compare(scaled, base, f"{other} rescaled by the denominator {m}")


def expected_row_sums(case: Case, ref: Reference) -> np.ndarray:
    """What each gradient row sums to, (M,): 0, and with a z-loss (no softcap) s v 2 z lse / D_z
    on the rows it counts: the cross-entropy part p Q - r sums to 0 with Q = sum r, the z part
    2 z lse p to 2 z lse; the scale s and the cotangent v multiply both."""
    z = case.zloss
    if not z:
        return np.zeros(case.rows)
    from xentcheck.problems.ce import error_model
    opts = error_model.options_of(case, ref)
    # a z-loss is an LLM option: the case has Options, and its reference each row's lse
    assert opts is not None and ref.lse is not None
    inv_z = error_model.inverse(opts.denom_z) if case.reduction == "mean" else 1.0
    out = np.where(opts.counted, 2 * z * ref.lse * inv_z * (opts.scale or 1.0), 0.0)
    return out if opts.cotangent is None else out * opts.cotangent


def grad_row_sums(c: Context) -> dict:
    """Each gradient row sums to 0 (p Q - q: Q - Q, whatever the label mass Q), or to
    expected_row_sums under a z-loss."""
    g, gs, tol = _f64(c.base.grad), c.grad_scale(), c.tol
    rows = g.sum(axis=1)
    expected = expected_row_sums(c.case, c.reference()) if c.case.llm else np.zeros(len(rows))
    # the expected sum is formed from lse, which the dtype rounds at its magnitude
    bound = 2 * (tol.rtol + tol.atol) * gs[:, 0] + 4 * c.dt.eps * (np.abs(g).sum(axis=1) + np.abs(expected))
    off = np.abs(rows - expected)
    bad = np.isfinite(rows) & (off > bound)
    if bad.any():
        i = int(np.argmax(np.where(bad, off / bound, 0)))
        if not c.case.zloss:
            return _fail(f"gradient row {i} sums to {rows[i]:.3g} (allowed {bound[i]:.3g})")
        return _fail(f"gradient row {i} sums to {rows[i]:.6g}, expected {expected[i]:.6g} (allowed difference "
                     f"{bound[i]:.3g})")
    return _pass("rows sum to s v 2 z lse / D_z (the z-loss)" if c.case.zloss else "")


def grad_bounds(c: Context) -> dict:
    g, tol = _f64(c.base.grad), c.tol
    gl, gs = c.grad_limit(), c.grad_scale()
    limit = gl * (1 + tol.rtol) + tol.atol * gs
    bad = np.isfinite(g) & (np.abs(g) > limit)
    if bad.any():
        i = np.unravel_index(int(np.argmax(np.where(bad, np.abs(g) / limit, 0))), g.shape)
        what = "|s v| (max(1, sum q) / D + 2 z |lse| / D_z)" if c.case.llm else "max(1, sum q)/denominator"
        return _fail(f"|gradient| {abs(g[i]):.3g} at {list(map(int, i))} exceeds {what} = {gl[i[0], 0]:.3g}")
    return _pass()


def loss_nonnegative(c: Context) -> dict:
    loss = _f64(c.base.loss)
    floor = -c.tol.atol * np.fmax(1.0, np.abs(loss))
    bad = np.isfinite(loss) & (loss < floor)
    return _fail(f"negative loss {loss[bad].min():.3g}") if bad.any() else _pass()


def eager_vs_compiled(c: Context) -> dict:
    variant = c.variant
    if variant.mode == "eager":
        return _skip("eager mode itself")
    eager = next((v for v in c.all_variants if v.impl == variant.impl and v.mode == "eager"), None)
    if eager is None:
        return _skip("no eager mode of this implementation")
    return c.compare(c.base, c.run(eager, c.case, c.inputs), f"{variant.mode} vs eager")


def forward_vs_reverse(c: Context) -> dict:
    case, inputs, tol = c.case, c.inputs, c.tol
    g = _f64(c.base.grad)
    v = _rng_vector(case, c.dt.np_type)
    jvp = _f64(layout.jvp(c.backend, c.variant, case, inputs, c.device, v))
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


def second_order(c: Context) -> dict:
    case, inputs = c.case, c.inputs
    if case.k > MAX_K_SECOND_ORDER:
        return _skip(f"K > {MAX_K_SECOND_ORDER}")
    v = _rng_vector(case, c.dt.np_type)
    hv = _f64(layout.hvp(c.backend, c.variant, case, inputs, c.device, v))
    x = _f64(inputs.logits)
    q_sum = label_matrix(case, inputs, np.float64).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        z = x - x.max(axis=1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    vf = _f64(v)
    denom = case.rows if case.reduction == "mean" else 1
    expected = q_sum * (p * vf - p * (p * vf).sum(axis=1, keepdims=True)) / denom
    scale = 2 * np.abs(q_sum) * np.abs(vf).max(axis=1, keepdims=True) / denom
    problem = close(hv, expected, c.tol, scale)
    return _fail(f"Hessian-vector product vs (diag(p) - p p^T) v: {problem}") if problem else _pass()


@dataclass(frozen=True)
class Property:
    """A check and the cases it applies to; on any other case it is skipped with the reason.

    Under the LLM options (s, cap, z, ct) a property holds unless `llm_skip` names the option
    with the reason it does not; `llm_note` says how the check accounts for an option it holds
    under. Both feed invariants_table (docs/llm-options.md)."""
    check: Callable[[Context], dict]
    of_the_call: bool = False  # checks the call itself: also on an empty batch and an output in another dtype
    plain_labels: bool = False  # assumes no class weights, ignored targets or smoothing (the API's own denominators)
    eager_only: bool = False  # uses the framework's eager autodiff
    labels: tuple[str, ...] | None = None  # the label forms it applies to (None: all)
    reductions: tuple[str, ...] | None = None  # the reductions it applies to (None: all)
    llm_skip: dict[str, str] = field(default_factory=dict)  # LLM option -> why the property does not hold
    llm_note: dict[str, str] = field(default_factory=dict)  # LLM option -> how the check accounts for it
    clipped_skip: str = ""  # why it does not hold for a clipped probability composition (probs.CLIPPED)


_SCALED = "gradient scale times |s|"
_COT = "gradient scale times |v|"
# in report order
PROPERTIES: dict[str, Property] = {
    "dtype_fidelity": Property(dtype_fidelity, of_the_call=True),
    "input_isolation": Property(input_isolation, of_the_call=True),
    "determinism": Property(determinism, of_the_call=True),
    "shift_invariance": Property(
        shift_invariance,
        llm_skip={"cap": "c tanh(x / c) is not shift-equivariant",
                  "z": "lse moves with the shift, and z lse^2 with it"},
        llm_note={"s": "x + t is s x + s t: checked for s a power of two (both exact), skipped otherwise",
                  "ct": "the cotangent is unchanged"}),
    "permutation_equivariance": Property(permutation_equivariance, plain_labels=True,
                                         llm_note={"ct": "v is per row, unpermuted"}),
    "int_vs_onehot": Property(int_vs_onehot, plain_labels=True, labels=("index",),
                              llm_note={o: "through a one-hot API that takes the same options" for o in LLM_OPTIONS}),
    "mean_vs_sum": Property(mean_vs_sum, plain_labels=True, reductions=("mean", "sum"),
                            llm_note={"z": "D_z = D = N without class weights or ignored targets",
                                      "ct": "the same scalar v for both: v g_mean = v g_sum / N"}),
    "grad_row_sums": Property(
        grad_row_sums,
        llm_skip={"cap": "the chain factor sech^2(y / c) differs per class"},
        llm_note={"z": "rows sum to s v 2 z lse / D_z, not 0", "s": "s times 0", "ct": "v times 0"}),
    "grad_bounds": Property(grad_bounds, plain_labels=True,
                            clipped_skip="the renormalisation after the clip (TensorFlow's sparse form) adds a term",
                            llm_note={"s": "|g| <= |s| times the bound", "ct": "|g| <= |v_n| times the bound",
                                      "z": "|g| <= max(1, Q) / D + 2 z |lse| / D_z",
                                      "cap": "sech^2 <= 1: the bound without a cap"}),
    "loss_nonnegative": Property(loss_nonnegative, llm_note={"z": "z lse^2 >= 0", "ct": "the loss is unchanged"}),
    "eager_vs_compiled": Property(eager_vs_compiled),
    "forward_vs_reverse": Property(forward_vs_reverse, plain_labels=True, eager_only=True,
                                   llm_skip={o: "its error scale is the plain loss's" for o in LLM_OPTIONS}),
    "second_order": Property(second_order, plain_labels=True, eager_only=True,
                             clipped_skip="(diag(p) - p p^T) v is the unclipped loss's Hessian",
                             llm_skip={o: "(diag(p) - p p^T) v is the plain loss's Hessian" for o in LLM_OPTIONS}),
}
PROPERTY_NAMES: tuple[str, ...] = tuple(PROPERTIES)
LLM_ORDER: tuple[str, ...] = tuple(o for o in OPTIONS if o in LLM_OPTIONS)


def _not_applicable(prop: Property, c: Context) -> str | None:
    """Why `prop` does not apply to this case and variant, or None when it does."""
    case = c.case
    if case.rows == 0 and not prop.of_the_call:
        return "an empty batch: no rows to check"
    if prop.plain_labels and case.option_set - LLM_OPTIONS:
        return f"assumes plain labels; this case has options {case.options}"
    if prop.clipped_skip and getattr(c.variant, "semantics", "plain") in CLIPPED:
        return f"does not hold for a clipped probability input: {prop.clipped_skip}"
    for opt in LLM_ORDER:
        if opt in prop.llm_skip and opt in case.option_set:
            return f"does not hold under option {opt}: {prop.llm_skip[opt]}"
    if not prop.of_the_call and c.computed() != {case.dtype}:
        return f"computed in {', '.join(sorted(c.computed()))}, not {case.dtype}: see dtype_fidelity"
    if prop.eager_only and c.variant.mode != "eager":
        return "uses the framework's eager autodiff: checked with the eager mode"
    if prop.labels is not None and case.labels not in prop.labels:
        return f"{' and '.join(prop.labels)} labels only"
    if prop.reductions is not None and case.reduction not in prop.reductions:
        return f"{' and '.join(prop.reductions)} cases only"
    return None


def invariants_table() -> str:
    """The Markdown table of docs/llm-options.md: each property under each LLM option, from
    PROPERTIES (`holds`, how the check accounts for the option, or `skipped: why`)."""
    heads = {"s": "scale `s`", "cap": "softcap `cap`", "z": "z-loss `z`", "ct": "cotangent `ct`"}
    lines = ["| property | " + " | ".join(heads[o] for o in LLM_ORDER) + " |", "|---" * (len(LLM_ORDER) + 1) + "|"]
    for name, prop in PROPERTIES.items():
        cells = [(f"skipped: {prop.llm_skip[o]}" if o in prop.llm_skip else prop.llm_note.get(o, "holds")).replace("|", "\\|")
                 for o in LLM_ORDER]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _guarded(check: Callable[[Context], dict], c: Context) -> dict:
    try:
        return check(c)
    except NotImplementedError as exc:
        return _skip(str(exc) or "not implemented")
    except Exception as exc:  # the framework raising on a valid request is itself a finding
        return {"verdict": "error", "detail": f"{type(exc).__name__}: {str(exc)[:300]}"}


def check_all(backend, variant, case: Case, inputs: Inputs, base, modified: list[str], device: str,
              tol: Tol, all_variants: list, timings: dict[str, float] | None = None) -> dict[str, dict]:
    """Every property of PROPERTIES, in order, for one (case, variant) whose output is `base`;
    `timings` gets `repeat_seconds` (the determinism check's call) when that check runs."""
    c = Context(backend, variant, case, inputs, base, modified, device, tol, all_variants,
                {} if timings is None else timings)
    out: dict[str, dict] = {}
    for name, prop in PROPERTIES.items():
        reason = _not_applicable(prop, c)
        out[name] = _skip(reason) if reason else _guarded(prop.check, c)
    return out
