"""The Python API: verify backends from your own code or test suite, and the reference of your own arrays.

`verify` builds the same RunPlan as `xentcheck run` (xentcheck.run.plan validates every argument,
with the command line's messages, as ValueError) and carries it out with the same worker
processes and reports (xentcheck.run.execute). A Backend class or instance of the caller's reaches
its worker as "file:PATH::NAME": the worker imports the class's module file, as `--backend-file`
does, so the class must be defined at module level in a .py file, and a script that defines one
must keep its own work under `if __name__ == "__main__":`.

`reference` is the harness's high-precision loss and gradient (xentcheck.problems.ce.reference) of arrays
the caller supplies. Importing this module imports no numerical library; calling it does.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Union

if TYPE_CHECKING:
    import numpy as np

    from xentcheck.backends.base import Backend
    from xentcheck.core.records import Result
    from xentcheck.core.tolerances import Tolerances
    from xentcheck.run.execute import Execution

BackendLike = Union[str, "os.PathLike[str]", type["Backend"], "Backend"]
# a user's arrays: a file (.npz, .safetensors, .pt) or a dict of logits, labels, weight, ignore_index,
# label_smoothing, reduction (xentcheck.core.user_inputs)
InputsLike = Union[str, "os.PathLike[str]", Mapping[str, Any]]


@dataclass(frozen=True)
class Finding:
    """Bad results of one kind: one backend x implementation x what went wrong (report.md's
    "Findings" table; xentcheck.reports.kinds)."""

    backend: str
    impl: str
    kind: str  # the first reason, its case-specific numbers left out
    results: int
    verdicts: tuple[str, ...]
    modes: tuple[str, ...]
    dtypes: tuple[str, ...]
    options: tuple[str, ...]
    cases: tuple[str, ...]  # case ids, in run order


@dataclass(frozen=True)
class VerifyResult:
    records: list[Result]  # every result, in the order of results.jsonl (Result.to_dict() is its line)
    counts: dict[str, int]  # results per verdict (pass, fail, nonfinite, error, crashed, timeout, skipped, known)
    ok: bool  # nothing out of tolerance, broken or failing a property check
    findings: list[Finding]  # the bad results grouped by kind, the largest groups first
    backends: list[dict]  # what each backend's worker said of itself: name, status, version, or why not
    out: Path | None  # the folder holding every report, when verify(out=...) was given

    @property
    def bad(self) -> list[Result]:
        """The results out of tolerance or broken (fail, nonfinite, error, crashed, timeout)."""
        from xentcheck.core.metrics import BAD_VERDICTS

        return [r for r in self.records if r.verdict in BAD_VERDICTS]

    def explain(self) -> str:
        """Every finding as the reports word it: the kinds, then each bad result with its case id,
        implementation, mode, dtype, verdict and reasons, and the command that reruns it."""
        from xentcheck.reports.junit import repro

        counts = ", ".join(f"{n} {v}" for v, n in self.counts.items() if n)
        lines = [f"xentcheck: {len(self.records)} results ({counts})"]
        if self.findings:
            lines.append(f"{len(self.bad)} results out of tolerance or broken, of {len(self.findings)} kinds:")
            lines += [f"  {f.backend} {f.impl}: {f.kind} ({f.results} results; {', '.join(f.verdicts)}; "
                      f"dtypes {', '.join(f.dtypes)}; e.g. {f.cases[0]})" for f in self.findings]
        specs = {b.get("name"): b.get("spec") for b in self.backends}
        for r in self.bad:
            documented = f" [documented: {r.documented}]" if r.documented else ""
            lines.append(f"{r.case_id} on {r.backend} ({r.impl or ''}, {r.mode or ''}, {r.dtype}): "
                         f"{r.verdict}: {'; '.join(r.reasons or []) or r.verdict}{documented}")
            lines.append(f"  repro: {repro(r, specs.get(r.backend))}")
        return "\n".join(lines)


class VerifyOptions(TypedDict, total=False):
    """verify()'s keyword arguments but `backends` (for xentcheck.testing.assert_backend)."""

    dtypes: Sequence[str] | str | None
    suite: Literal["default", "full"]
    seed: int
    cases: int | Sequence[str] | None
    tolerances: str | Tolerances
    device: str
    impls: Sequence[str] | None
    modes: Sequence[str] | None
    properties: bool | None
    case_timeout: float
    worker_memory: str | int | None
    out: str | os.PathLike[str] | None
    repro: bool
    progress: bool
    inputs: InputsLike | Sequence[InputsLike] | None
    overwrite: bool


def verify(backends: BackendLike | Sequence[BackendLike] | None = None, *,
           dtypes: Sequence[str] | str | None = None, suite: Literal["default", "full"] = "default", seed: int = 0,
           cases: int | Sequence[str] | None = None, tolerances: str | Tolerances = "xentcheck", device: str = "cpu",
           impls: Sequence[str] | None = None, modes: Sequence[str] | None = None, properties: bool | None = None,
           case_timeout: float = 300.0, worker_memory: str | int | None = "auto",
           out: str | os.PathLike[str] | None = None, repro: bool = True,
           progress: bool = False, inputs: InputsLike | Sequence[InputsLike] | None = None,
           overwrite: bool = False) -> VerifyResult:
    """Run the cases through the backends, each in a worker process, as `xentcheck run` does.

    backends: built-in or entry-point names ("numpy", "torch", ...), plugin .py paths ("PATH::NAME"
      for one Backend of several in a file), Backend subclasses or instances defined at module level
      in a .py file; default: every known backend. Named ones run first, then files and classes
      (the command line's order: --backends, then --backend-file).
    dtypes: names of float16, bfloat16, float32, float64 (default: all). suite: "default" or "full".
    cases: the first N cases of the suite (they span every family), or a list of case ids.
    tolerances: a preset (xentcheck, model, torch, jax, tensorflow) or a Tolerances object.
    worker_memory: the resident memory each backend worker may hold before it is killed and its case
      recorded `crashed`, as `--worker-memory`: a size ("2G", "512M"), a number of bytes, "auto"
      (half this machine's memory) or None (no ceiling).
    out: a folder to write every report into, as `xentcheck run --out` does (run.json, results.jsonl,
      report.md, report.html, junit.xml, ..., repro/ unless repro=False); None: write nothing.
    inputs: your own arrays, as `xentcheck run --inputs` takes them: a file path (.npz, .safetensors,
      .pt), or a dict with the same keys (logits, labels; optionally weight, ignore_index,
      label_smoothing, reduction; NumPy arrays, torch tensors or scalars), or a list of these. Alone
      they are the only cases; with `cases`, they run after those. A dict reaches the workers as an
      .npz file in out/inputs/ (or a scratch folder).
    overwrite: replace the xentcheck output already in `out` (as `xentcheck run --overwrite`); without
      it a folder holding a run, a fuzz campaign or timings is refused (ValueError), as is one holding
      other files only.
    A bad argument raises ValueError with the command line's message.
    """
    from xentcheck.run import outdir

    folder = None if out is None else Path(out)
    if folder is not None:  # before inputs/ is written into it
        try:
            outdir.clear(outdir.check(folder, "run", overwrite))
        except OSError as exc:
            raise ValueError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from None
    with tempfile.TemporaryDirectory(prefix="xentcheck-") as scratch:  # the workers' logs, results.jsonl, inputs
        plan = _plan(backends, dtypes, suite, seed, cases, tolerances, device, impls, modes, properties, case_timeout,
                     _input_files(inputs, (folder or Path(scratch)) / "inputs"), worker_memory)
        done = _execute(plan, folder, Path(scratch), progress, repro)
    if not done.finished:
        raise KeyboardInterrupt("xentcheck: interrupted" + (f"; reports cover what finished, in {folder}" if folder else ""))
    return _result(done, folder)


def _plan(backends, dtypes, suite, seed, cases, tolerances, device, impls, modes, properties, case_timeout,
          input_files: tuple[str, ...], worker_memory: str | int | None = "auto"):
    """verify()'s arguments as the command line's RunPlan (its validation and messages)."""
    from xentcheck.run import plan as runplan

    names, files = _backend_args(backends)
    preset, rtol, atol = _tolerance_specs(tolerances)
    n_cases, case_ids = _case_args(cases)
    plan = runplan.plan_from_options(
        _joined(names, "backends") if names else None, tuple(files), _joined(dtypes, "dtypes"), _integer(seed, "seed"),
        n_cases, case_ids, device, preset, rtol, atol, float(case_timeout), suite,
        _joined(impls, "impls"), _joined(modes, "modes"), properties, input_files, _memory_arg(worker_memory))
    plan.case_order = [c.id for c in plan.cases]
    return plan


def _execute(plan, folder: Path | None, scratch: Path, progress: bool, repro: bool) -> Execution:
    from xentcheck.run.execute import execute, start_folder

    if folder is None:
        (scratch / "logs").mkdir()
        return execute(plan, scratch, progress=progress, reports=False, warn=_warn)
    try:
        start_folder(folder, plan)
    except OSError as exc:
        raise ValueError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from None
    return execute(plan, folder, progress=progress, repro=repro, warn=_warn)


def _input_files(inputs: InputsLike | Sequence[InputsLike] | None, folder: Path) -> tuple[str, ...]:
    """verify(inputs=...) as --inputs files: paths as given, each dict checked and written to
    folder/arrays<i>.npz (i: its place in the list, from 1)."""
    from xentcheck.core import user_inputs

    if inputs is None:
        return ()
    items = [inputs] if isinstance(inputs, (str, os.PathLike, Mapping)) else list(inputs)
    if not items:
        raise ValueError("inputs must be a file, a dict of arrays or a non-empty list of these")
    files = []
    for i, item in enumerate(items, 1):
        if isinstance(item, (str, os.PathLike)):
            files.append(os.fspath(item))
        elif isinstance(item, Mapping):
            user_inputs.from_arrays(item, "arrays", f"inputs[{i - 1}]")  # its message names it, before writing
            try:
                folder.mkdir(parents=True, exist_ok=True)
                user_inputs.save_npz(folder / f"arrays{i}.npz", item)
            except OSError as exc:
                raise ValueError(f"cannot write inputs[{i - 1}] to {folder}: {exc.strerror or exc}") from None
            files.append(str(folder / f"arrays{i}.npz"))
        else:
            raise ValueError(f"inputs[{i - 1}] must be a file path or a dict of arrays, got {type(item).__name__}")
    return tuple(files)


# --- the one place that turns the run's records into a VerifyResult ----------------------------

def _result(done: Execution, folder: Path | None) -> VerifyResult:
    from xentcheck.reports import kinds

    findings = [Finding(g["backend"], g["impl"], g["kind"], g["results"], *(tuple(g[k]) for k in
                        ("verdicts", "modes", "dtypes", "options", "cases"))) for g in kinds.group(done.records)]
    return VerifyResult(records=list(done.records), counts=dict(done.summary["counts"]),
                        ok=done.summary["exit_status"] == 0, findings=findings,
                        backends=list(done.summary.get("backends", [])), out=folder)


# --- arguments as the command line's validation takes them ------------------------------------

def _warn(message: str) -> None:
    import warnings

    warnings.warn(f"xentcheck: {message}", RuntimeWarning, stacklevel=3)


def _joined(value: Sequence[str] | str | None, what: str) -> str | None:
    """A list of names as the command line's comma-separated LIST."""
    if value is None or isinstance(value, str):
        return value
    if not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be names (strings), got {list(value)!r}")
    if not value:
        raise ValueError(f"--{what} needs at least one name")
    return ",".join(value)


def _integer(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return value


def _memory_arg(value: object) -> str:
    """verify(worker_memory=...) as --worker-memory's text: a size, bytes, "auto" or None (no ceiling)."""
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    return str(_integer(value, "worker_memory"))


def _case_args(cases: int | Sequence[str] | None) -> tuple[int | None, tuple[str, ...]]:
    if cases is None:
        return None, ()
    if isinstance(cases, str):
        return None, (cases,)
    if isinstance(cases, int):
        if isinstance(cases, bool) or cases < 1:
            raise ValueError(f"cases must be a number >= 1 or a list of case ids, got {cases}")
        return cases, ()
    ids = tuple(cases)
    if not ids or not all(isinstance(i, str) for i in ids):
        raise ValueError(f"cases must be a number >= 1 or a non-empty list of case ids, got {cases!r}")
    return None, ids


def _tolerance_specs(tolerances: str | Tolerances) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(preset, --rtol specs, --atol specs) that rebuild `tolerances`, so that run.json stores them."""
    from xentcheck.core.tolerances import LOSS_ROW, TOLERANCE_ROWS, Tolerances

    if isinstance(tolerances, str):
        return tolerances, (), ()
    if not isinstance(tolerances, Tolerances):
        raise ValueError(f"tolerances must be a preset name or a Tolerances object, got {type(tolerances).__name__}")
    base = Tolerances(tolerances.preset)
    specs = []
    for col in (0, 1):
        changed = {d: tolerances.table[LOSS_ROW][d][col] for d in base.table[LOSS_ROW]
                   if any(tolerances.table[o][d][col] != base.table[o][d][col] for o in TOLERANCE_ROWS)}
        specs.append((",".join(f"{d}={v!r}" for d, v in changed.items()),) if changed else ())
    rebuilt = Tolerances(tolerances.preset)
    for spec in specs[0]:
        rebuilt.override("rtol", spec)
    for spec in specs[1]:
        rebuilt.override("atol", spec)
    if rebuilt.table != tolerances.table:
        raise ValueError("tolerances: an overridden (rtol, atol) must be the same for the loss and the gradient "
                         "(as --rtol and --atol set them)")
    return tolerances.preset, specs[0], specs[1]


def _backend_args(backends: BackendLike | Sequence[BackendLike] | None) -> tuple[list[str], list[str]]:
    """(names, plugin files) for xentcheck.run.plan.backend_specs."""
    if backends is None:
        return [], []
    if isinstance(backends, (str, os.PathLike, type)) or not isinstance(backends, Sequence):
        backends = [backends]
    if not backends:
        raise ValueError("--backends needs at least one name")
    from xentcheck.backends.base import Backend

    names, files = [], []
    for b in backends:
        if isinstance(b, os.PathLike) or (isinstance(b, str) and (b.endswith(".py") or ".py::" in b)):
            files.append(os.fspath(b))
        elif isinstance(b, str):
            names.append(b)
        elif (isinstance(b, type) and issubclass(b, Backend)) or isinstance(b, Backend):
            files.append(locate(b))
        else:
            raise ValueError(f"a backend must be a name, a plugin .py path or a Backend subclass or instance, got {b!r}")
    return names, files


def locate(backend: type[Backend] | Backend) -> str:
    """"PATH::NAME" through which a worker process finds `backend`: the .py file of the module
    that defines it and the module-level name bound to it. ValueError when a worker cannot."""
    cls = backend if isinstance(backend, type) else type(backend)
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    what = f"backend {cls.__qualname__!r} (module {cls.__module__})"
    if cls.__qualname__ != cls.__name__:
        raise ValueError(f"{what} is defined inside a function or class: a worker process cannot import it; "
                         "define it at module level in a .py file")
    if not path or not path.endswith(".py") or not os.path.isfile(path):
        raise ValueError(f"{what} is not defined in a .py file (an interactive session?): a worker process cannot "
                         "import it; define it at module level in a .py file")
    if not isinstance(backend, type):
        bound = next((k for k, v in vars(module).items() if v is backend), None)
        if bound is not None:
            return f"{os.path.abspath(path)}::{bound}"
        if vars(backend):
            raise ValueError(f"{what}: this instance has attributes of its own and no module-level name in "
                             f"{cls.__module__}, so a worker cannot rebuild it; bind it to a name there or pass its class")
    if getattr(module, cls.__name__, None) is not cls:
        raise ValueError(f"{what} is not the module's {cls.__name__!r} at module level: a worker process cannot find it")
    return f"{os.path.abspath(path)}::{cls.__name__}"


# --- the reference of the caller's own arrays ------------------------------------------------

@dataclass(frozen=True)
class ReferenceResult:
    loss: np.ndarray  # () for mean and sum; the labels' shape (N, d1, ...) for none
    # plain CE: the logits' shape, gradient of the loss (of sum(loss) for none) w.r.t. the logits;
    # None for a kind that has no logits gradient (its gradients are in `outputs`)
    grad: np.ndarray | None
    precision: str  # the working precision: "float64" (16-, 32-bit logits), "longdouble" or "mpmath" (float64)
    # every output the kind declares (xentcheck.problems), by name: loss and grad; or loss, dh, dw
    # and (with a bias) db
    outputs: Mapping[str, np.ndarray] = field(default_factory=dict)


def reference(logits: Any, labels: Any = None, reduction: Literal["mean", "sum", "none"] = "mean", *,
              weight: Any = None, ignore_index: int | None = None, label_smoothing: float = 0.0,
              semantics: Literal["torch", "keras", "plain"] = "torch") -> ReferenceResult:
    """The high-precision loss and gradient of softmax cross-entropy on your arrays.

    logits: (N, K) or (N, d1, ..., K), class axis last, float16, bfloat16, float32 or float64.
    labels: class indices, integers of shape (N, d1, ...), or label weights of the logits' shape
      (one-hot or soft, >= 0; rows need not sum to 1: the gradient is p * sum(q) - q).
    Per row, with m the row maximum: loss = sum_j q_j (m - o_j + log1p(sum_{j != argmax} exp(o_j - m))).
    weight (K,), ignore_index and label_smoothing are read as `semantics` documents them
    (xentcheck.problems.ce.reference.effective_labels): "torch" as F.cross_entropy (the weighted mean
    divides by the targets' weights), "keras" (an ignored target is left out of the mean; no
    class weights), "plain" (tf.nn, optax: smoothing only). Worked in float64 for 16- and 32-bit
    logits, in long double (or mpmath) for float64. Bad arguments raise ValueError.

    reference(INPUTS, semantics=...) takes the arrays as `verify(inputs=...)` does instead: a file
    (.npz, .safetensors, .pt) or a dict holding logits, labels and optionally weight, ignore_index,
    label_smoothing and reduction (the other arguments must then be left out).

    A dict of another kind's arrays gives that kind's reference (its problem record reads them):
    linear-CE, CE(h W^T + b, y), from {"hidden": h (N, D), "linear_weight": W (V, D),
    "labels": (N,) and optionally "linear_bias": b (V,), "weight" (V,), "ignore_index",
    "label_smoothing", "reduction"} (torch's F.linear_cross_entropy names), all of one float dtype;
    its `outputs` are loss, dh (N, D), dw (V, D) and, with a bias, db (V,), and `grad` is None.
    """
    import numpy as np

    from xentcheck.core.cases import IGNORE_INDEX, REDUCTIONS, Case, Inputs
    from xentcheck.core.dtypes import DTYPE_NAMES
    from xentcheck.problems.ce.reference import SEMANTICS

    if labels is None:
        if (reduction, weight, ignore_index, label_smoothing) != ("mean", None, None, 0.0):
            raise ValueError("reference(INPUTS): reduction, weight, ignore_index and label_smoothing come from "
                             "the inputs; leave the arguments out")
        return _reference_of_inputs(logits, semantics)
    x = np.asarray(logits)
    dtype = x.dtype.name
    if dtype not in DTYPE_NAMES:
        raise ValueError(f"logits dtype {dtype} is not supported (known: {', '.join(DTYPE_NAMES)})")
    if x.ndim < 2:
        raise ValueError(f"logits must have shape (N, K) or (N, d1, ..., K), got {list(x.shape)}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r} (known: {', '.join(REDUCTIONS)})")
    if semantics not in SEMANTICS:
        raise ValueError(f"unknown semantics {semantics!r} (known: {', '.join(SEMANTICS)})")
    k, lead = x.shape[-1], x.shape[:-1]
    y = np.asarray(labels)
    if y.dtype.kind in "iu":
        form = "index"
        if y.shape != lead:
            raise ValueError(f"index labels must have shape {list(lead)} (the logits' without the class axis), "
                             f"got {list(y.shape)}")
        y = y.astype(np.int64)
        ignored = np.zeros(y.shape, dtype=bool) if ignore_index is None else y == ignore_index
        bad = ~ignored & ((y < 0) | (y >= k))
        if bad.any():
            raise ValueError(f"label {int(y[bad][0])} out of range for K = {k} classes"
                             + ("" if ignore_index is None else f" (ignore_index = {ignore_index})"))
        y = np.where(ignored, IGNORE_INDEX, y)
    elif y.dtype.kind == "f" or y.dtype.name == "bfloat16":
        form = "soft"
        if y.shape != x.shape:
            raise ValueError(f"label weights must have the logits' shape {list(x.shape)}, got {list(y.shape)}")
        yf = y.astype(np.float64)
        if not (np.isfinite(yf).all() and (yf >= 0).all()):
            raise ValueError("label weights must be finite and >= 0")
        if ignore_index is not None:
            raise ValueError("ignore_index needs class-index labels")
    else:
        raise ValueError(f"labels must be integer class indices or float label weights, got dtype {y.dtype}")
    e = float(label_smoothing)
    if not 0.0 <= e <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    w = None
    if weight is not None:
        if semantics != "torch":
            raise ValueError(f"class weights are read as torch documents them: semantics {semantics!r} takes none")
        w = np.asarray(weight)
        if w.shape != (k,) or w.dtype.kind not in "fiu":
            raise ValueError(f"weight must be {k} numbers (one per class), got shape {list(w.shape)} dtype {w.dtype}")
        w = w.astype(np.float64)
        if not np.isfinite(w).all():
            raise ValueError("weight must be finite")
    options = "+".join(o for o, on in (("w", w is not None), ("ign", ignore_index is not None), ("ls", e != 0)) if on)
    case = Case("scale1e+0", dtype, lead[0], k, form, reduction, options, tuple(lead[1:]))
    case.validate()
    rows = case.rows
    inputs = Inputs(x.reshape(rows, k), y.reshape(rows, k) if form == "soft" else y.reshape(rows),
                    np.zeros(rows, dtype=np.int64), w, e)
    return _reference_result(case, inputs, semantics)


def _reference_result(case, inputs, semantics: str) -> ReferenceResult:
    """The case's reference through its kind's record, as a ReferenceResult."""
    from xentcheck.problems import problem_of
    problem = problem_of(case)
    ref = problem.reference(case, inputs, semantics)
    arrays = problem.reference_arrays(case, ref)
    return ReferenceResult(loss=arrays["loss"], grad=arrays.get("grad"), precision=ref.precision, outputs=arrays)


def _reference_of_inputs(inputs: InputsLike, semantics: str) -> ReferenceResult:
    """reference() of a user's file (xentcheck.core.user_inputs) or dict of any kind's arrays (its
    record's `arrays`): the case its arrays and options make."""
    from xentcheck.core import user_inputs
    from xentcheck.problems import of_arrays
    from xentcheck.problems.ce.reference import SEMANTICS

    if semantics not in SEMANTICS:
        raise ValueError(f"unknown semantics {semantics!r} (known: {', '.join(SEMANTICS)})")
    if isinstance(inputs, (str, os.PathLike)):
        case, rows = user_inputs.load(inputs)
    elif isinstance(inputs, Mapping):
        case, rows = of_arrays(inputs).arrays(inputs)
    else:
        raise ValueError(f"reference() needs logits and labels, or one file path or dict of arrays; got "
                         f"{type(inputs).__name__} alone")
    if getattr(rows, "weights", None) is not None and semantics != "torch":  # only CE-like kinds have class weights
        raise ValueError(f"class weights are read as torch documents them: semantics {semantics!r} takes none")
    return _reference_result(case, rows, semantics)
