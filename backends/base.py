"""The adapter interface every backend implements (built-in or a user's plugin).

A backend computes, for one case, the loss and the gradient of v . loss with respect to the
logits through its own autodiff (v: the case's cotangent, ones without option "ct"), and
returns them as NumPy arrays together with the dtype it actually computed in. It imports its
framework lazily (in `load`), never at module import.

Minimal plugin::

    from xentcheck import Backend, Output  # or xentcheck.backends.base

    class MyKernel(Backend):
        name = "mykernel"
        def compute(self, case, inputs, device):
            loss, grad = my_fused_ce(inputs.logits, inputs.labels, case.reduction)
            return Output(loss=loss, grad=grad)

    BACKEND = MyKernel  # what `--backend-file` and the entry point look for

Case options. A backend runs a case only when it declares all of the case's options (`options`
on a single-variant plugin, `Variant.options` per variant); other cases are skipped with the
reason. Declaring an option means the kernel takes it natively and reads its parameter:

    token     parameter                         what the kernel must compute
    "w"       inputs.weights (K,)               class weights
    "ign"     labels == IGNORE_INDEX rows       no loss, zero gradient (the mean per `semantics`)
    "ls"      inputs.smoothing                  label smoothing
    "s"       case.logit_scale (s)              CE of s x (flash-attn logit_scale)
    "cap"     case.softcap (c)                  logits -> c tanh(x / c), after the scale
    "z"       case.zloss (z)                    each counted row's loss gains z lse^2
                                                (lse_square_scale); the mean divides it by the
                                                counted rows
    "ct"      inputs.cotangent                  the gradient is the VJP with it, not with ones:
                                                shape () for mean/sum, the loss's shape (N, d1,
                                                ...) for reduction none

docs/llm-options.md has the formulas. A fused kernel that takes `lse_square_scale` and
`softcap`, say, declares them and passes the case's values on::

    class MyFused(Backend):
        name = "myfused"
        options = ("ign", "cap", "z", "ct")

        def compute(self, case, inputs, device):
            loss, grad = my_fused_ce(inputs.logits, inputs.labels, softcap=case.softcap,
                                     lse_square_scale=case.zloss or 0.0, reduction=case.reduction)
            if inputs.cotangent is not None:  # the upstream gradient of the reduced/per-row loss
                v = inputs.cotangent
                grad = grad * (v[..., None] if v.ndim else v)
            return Output(loss=loss, grad=grad)

Linear-CE kernels (fused linear + cross-entropy, e.g. torch's F.linear_cross_entropy). A
linear-CE case (`case.linear`, id ``..._lin<D>_...``) gives hidden states h (N, D), a weight W
(V, D), an optional bias b (V,) and index labels, as `LinearInputs` (inputs.hidden, .weight,
.bias, .labels, .weights, .smoothing, .cotangent), instead of logits. A backend runs them
through the variants whose `kind` is "linear" (plain variants never see them, and linear ones
never see plain cases), and returns an `Output` with the loss and the gradients of v . loss
w.r.t. h, W and b, named "dh", "dw" and "db" (db only with a bias; LinearOutput(loss, dh, dw, db),
the old form, still works and warns). Options as above, plus "b" (the case has a bias).
docs/linear-ce.md has the formulas; examples/linear_backend.py is a full plugin::

    class MyLinear(Backend):
        name = "mylinear"

        def variants(self):
            return [Variant("my_linear_ce", "eager", ("index",), options=("b", "ign"), kind="linear")]

        def run_variant(self, variant, case, inputs, device):
            loss, dh, dw, db = my_linear_ce(inputs.hidden, inputs.weight, inputs.bias, inputs.labels,
                                            ignore_index=-100, reduction=case.reduction)
            return Output(loss, grads={"dh": dh, "dw": dw, "db": db})

Label forms (`label_forms`): "index", "onehot", "soft" (rows summing to 1) and "unnorm" (label
weights of any row sum, 0 included: the gradient is p * sum(q) - q). A kernel that computes the
general formula need declare nothing; one documented for probability distributions only leaves
"unnorm" out of its label forms.

Probability inputs (`Variant.takes`, docs/probability-inputs.md). An API that takes probabilities
("probs") or log-probabilities ("logprobs") is fed softmax(x) or log_softmax(x) of the case's logits,
computed in the framework inside the differentiated function, so the gradient is still with respect
to the logits x. Its reference is the exact value of the composition as the API documents it, named
by `semantics`:
    "plain", "torch"        -sum q log p computed as written (F.nll_loss(torch.log(F.softmax(x))),
                            -sum(q * tf.math.log(tf.nn.softmax(x)))): exactly the cross-entropy of x
    "keras_clip"            Keras from_logits=False (CategoricalCrossentropy on every backend,
                            SparseCategoricalCrossentropy on jax/torch/numpy): p / sum(p) clipped to
                            [1e-7, 1 - 1e-7], then -sum q log; a clipped entry passes no gradient
    "keras_clip_tf_sparse"  Keras's SparseCategoricalCrossentropy(from_logits=False) on TensorFlow:
                            clipped, then renormalised by the clipped row's sum
The Keras forms read the options as "keras" does; xentcheck.problems.ce.probs has their formulas.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from xentcheck.core.cases import Case, Inputs

ALL_DTYPES: tuple[str, ...] = ("float16", "bfloat16", "float32", "float64")
# label forms (xentcheck.core.cases): class indices, one-hot rows, soft rows summing to 1, and
# "unnorm" rows of any total mass (0 included), whose gradient is p * sum(q) - q. A kernel that
# takes label weights takes all of them unless it declares otherwise.
ALL_LABELS: tuple[str, ...] = ("index", "onehot", "soft", "unnorm")


def one_hot(labels: np.ndarray, k: int, dtype: type = np.float64) -> np.ndarray:
    """Class indices (..., ) as (..., K) label weights with a 1 at each label: np.eye(k)[labels]
    without its K x K matrix (8 GB at K = 32,000). For a kernel that takes label weights only."""
    q: np.ndarray = np.zeros(labels.shape + (k,), dtype=dtype)
    np.put_along_axis(q, labels[..., None], 1, axis=-1)
    return q


@dataclass(frozen=True)
class Variant:
    """One API called in one execution mode, e.g. ("cross_entropy_probs", "eager")."""

    impl: str
    mode: str
    label_forms: tuple[str, ...] = ALL_LABELS
    api: str = ""  # the call, as a user would write it
    documented: str = ""  # a documented deviation from the canonical math, if any
    default: bool = True  # run in the default suite (else only when asked for, or in --suite full)
    opt_in: bool = False  # run only when its mode is named explicitly (slow or fragile here)
    # case options it takes: "w", "ign", "allign", "ls", "s", "cap", "z", "ct" ("oor" goes to every index API)
    options: tuple[str, ...] = ()
    semantics: str = "plain"  # how the reference reads the options: "plain", "torch", "keras" (+ probs: above)
    takes: str = "logits"  # what the API is fed: "logits", "probs" (softmax(x)), "logprobs" (log_softmax(x))
    kind: str = "ce"  # "linear": a linear-CE variant (returns dh, dw, db; see the module docstring)


@dataclass(init=False)
class Output:
    """A variant's result: the loss and the gradients of v . loss, keyed by the names the case's
    kind declares (xentcheck.problems): {"grad": (N, K)} for a plain case (`Output(loss, grad=g)`
    is short for it), {"dh", "dw", "db"} for linear-CE (db only with a bias). A gradient given as
    None is left out."""
    loss: np.ndarray  # () for mean/sum reductions, (N,) for none; (N, d1, ...) with extra dimensions
    # plain CE "grad": the logits' shape, (N, K) or (N, d1, ..., K); linear-CE "dh" (N, D),
    # "dw" (V, D), "db" (V,)
    grads: dict[str, np.ndarray]
    loss_dtype: str | None  # dtype the framework computed in; None: taken from the array
    grad_dtype: str | None  # of the gradients
    notes: list[str]

    def __init__(self, loss: np.ndarray, grad: np.ndarray | None = None, loss_dtype: str | None = None,
                 grad_dtype: str | None = None, notes: list[str] | None = None, *,
                 grads: dict[str, np.ndarray | None] | None = None) -> None:
        if (grad is None) == (grads is None):
            raise TypeError("Output takes grad= (a plain case's gradient) or grads= (named gradients), one of the two")
        named = {"grad": grad} if grads is None else grads
        self.loss = loss
        self.grads = {k: v for k, v in named.items() if v is not None}
        self.loss_dtype, self.grad_dtype, self.notes = loss_dtype, grad_dtype, list(notes or [])

    @property
    def grad(self) -> np.ndarray:
        """A plain case's gradient (grads["grad"])."""
        return self.grads["grad"]

    @grad.setter
    def grad(self, value: np.ndarray) -> None:
        self.grads["grad"] = value


class LinearOutput(Output):
    """Deprecated: `Output(loss, grads={"dh": dh, "dw": dw, "db": db})`, the same record."""

    def __init__(self, loss: np.ndarray, dh: np.ndarray, dw: np.ndarray, db: np.ndarray | None = None,
                 loss_dtype: str | None = None, grad_dtype: str | None = None, notes: list[str] | None = None) -> None:
        warnings.warn('LinearOutput(loss, dh, dw, db) is now Output(loss, grads={"dh": dh, "dw": dw, "db": db})',
                      DeprecationWarning, stacklevel=2)
        super().__init__(loss, None, loss_dtype, grad_dtype, notes, grads={"dh": dh, "dw": dw, "db": db})

    @property
    def dh(self) -> np.ndarray:
        return self.grads["dh"]

    @property
    def dw(self) -> np.ndarray:
        return self.grads["dw"]

    @property
    def db(self) -> np.ndarray | None:
        return self.grads.get("db")


AnyOutput = Output  # the old name of what a variant of any kind returns


class NotApplicable(Exception):
    """Raised by `run_variant` for a case its reference cannot judge (Keras's KLDivergence where the
    dtype cannot tell which side of its clip at 1e-7 a probability is): `skipped` with this reason, not an
    error. For what a variant can say in advance, use its label forms and options instead."""


def named_grads(out: object, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The gradients a backend returned, by name: an Output's `grads`, or (an object of a plugin's
    own with one attribute per gradient, as `.grad` or `.dh`...) its attributes `names`."""
    grads = getattr(out, "grads", None)
    if isinstance(grads, dict):
        return grads
    return {n: getattr(out, n) for n in names if getattr(out, n, None) is not None}


class Backend:
    """Base class of adapters. Subclasses set `name` and implement `compute`."""

    name: str = "unnamed"
    framework: str = ""  # distribution name whose version is reported, e.g. "torch"
    impl: str = "default"  # the API called, reported with every result
    mode: str = "eager"
    dtypes: tuple[str, ...] = ALL_DTYPES
    label_forms: tuple[str, ...] = ALL_LABELS
    options: tuple[str, ...] = ()  # case options a single-variant plugin takes (see Variant)
    semantics: str = "plain"
    # Takes cases with extra dimensions: logits (N, d1, ..., K), labels (N, d1, ...), class axis
    # last. Off by default: a plugin written for (N, K) gets those cases skipped, with this reason.
    extra_dims: bool = False
    # Modules a rank of a gloo variant imports (run/zygote.py imports them once and forks each rank)
    rank_preload: tuple[str, ...] = ()

    def load(self) -> None:
        """Import the framework and configure it. Raise ImportError when it is missing."""

    def version(self) -> str:
        if not self.framework:
            return ""
        from importlib.metadata import PackageNotFoundError, version
        try:
            return version(self.framework)
        except PackageNotFoundError:
            return ""

    def devices(self) -> list[str]:
        return ["cpu"]

    def release(self) -> None:
        """Drop the compiled programs kept across cases. The worker calls it between cases once its
        resident set passes xentcheck.run.memory.RELEASE_BYTES: a backend that compiles a program
        per shape and dtype grows by about 10 MB a program (JAX), and the full suite has hundreds
        of shapes. The next case compiles again, or loads from the run's compile cache."""

    def settings(self) -> dict:
        """Numerics-relevant settings in force (thread counts, x64, TF32...), for the report."""
        return {}

    def unsupported(self, case: Case, device: str) -> str | None:
        """Why this backend cannot run `case` on `device`, or None when it can."""
        if case.dtype not in self.dtypes:
            return f"{self.name} does not support dtype {case.dtype}"
        if case.labels not in self.label_forms:
            return f"{self.name} does not support {case.labels} labels"
        if case.extra and not self.extra_dims:
            return f"{self.name} takes (N, K) logits only (set extra_dims = True to get (N, d1, ..., K))"
        if device not in self.devices():
            return f"device {device!r} not available to {self.name} (has: {', '.join(self.devices())})"
        return None

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        raise NotImplementedError

    # --- several implementations and modes (the built-ins); a plugin may ignore these ----------

    def variants(self) -> list[Variant]:
        """The implementations x modes this backend can run; class-level data, no framework needed."""
        return [Variant(self.impl, self.mode, tuple(self.label_forms), options=tuple(self.options),
                        semantics=self.semantics)]

    def run_variant(self, variant: Variant, case: Case, inputs: Inputs, device: str) -> Output:
        """One variant on the case's inputs: an Output with the gradients the case's kind declares
        (xentcheck.problems)."""
        return self.compute(case, inputs, device)

    def jvp(self, variant: Variant, case: Case, inputs: Inputs, device: str, tangent: np.ndarray) -> np.ndarray:
        """Forward-mode derivative of the loss along `tangent` (same shape as the logits)."""
        raise NotImplementedError(f"{self.name} has no forward-mode derivative")

    def hvp(self, variant: Variant, case: Case, inputs: Inputs, device: str, vector: np.ndarray) -> np.ndarray:
        """Second derivative of sum(loss) w.r.t. the logits, applied to `vector` (reverse over reverse)."""
        raise NotImplementedError(f"{self.name} has no second-order derivative")

    def timing_fns(self, variant: Variant, case: Case, inputs: Inputs, device: str) -> dict[str, Callable[[], object]] | None:
        """Zero-argument callables for `xentcheck bench`: "forward" (the loss), "backward" (the gradient
        from a forward computed beforehand and kept), "forward_backward"; each waits for the device
        before it returns. A phase left out is not timed; None: only forward+backward is timed,
        through run_variant (conversions to NumPy included)."""
        return None

    float64_hint: str = ""  # how to get true float64 where the framework can silently downcast


def kind_adapter(framework: str, kind: str):
    """The module that runs a `kind` variant on a framework, backends/<framework>/<module>.py (Keras
    3's backend/<framework>/ layout; the module its problem record names), or None for plain CE,
    which the backend class runs itself. `framework`: the folder, as "torch"."""
    from xentcheck.problems import DEFAULT_KIND, PROBLEMS
    if kind == DEFAULT_KIND:
        return None
    return importlib.import_module(f"xentcheck.backends.{framework}.{PROBLEMS[kind].adapter or kind}")
