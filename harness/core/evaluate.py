"""Judging one backend output: the one place a result's verdict is decided.

The runner, the pytest plugin, `xentcheck repro` and the Python API all call `evaluate`. Its rules,
in order:
- skipped: the variant did not run (unsupported dtype, option, label form): `skipped`.
- out-of-range class index (case option `oor`): the backend must refuse it. An error is a
  `pass`; a value returned in silence is a `fail`. No reference is computed or compared.
- error: the backend raised: `error`, with its message and traceback. A variant run on several
  ranks whose rank died or hung is `crashed` or `timeout`, as a worker's would be.
- shapes: a loss or gradient in another shape than the case's (layout.check) is a `fail`.
- dtypes: a loss or gradient computed in a narrower dtype than the case's (or one that is not
  wider, float16 for bfloat16) is a `fail`. One computed in a wider dtype (dtypes.wider: float32
  for a float16 request, as mixed precision does) is judged by its values at the requested
  dtype's tolerance like any other; when they pass, the verdict is `widened`, not `pass`, and its
  reasons say which output was widened (after any value reason, which decides the verdict).
- values (the kind's `compare`, over its declared outputs): NaN/inf where the reference (rounded to the dtype) differs is
  `nonfinite`, else an element out of tolerance is a `fail`, else `pass`. NumPy's warnings are
  silenced: extreme cases overflow in intermediate casts by design, and their NaN/inf are
  compared explicitly.
- properties: the verdicts the worker computed (--properties) are kept on the result; they
  do not change its verdict (a property failure fails the run on its own, see reports.summary).
- known differences: a bad verdict that an entry of the known-differences file matches becomes
  `known` (mark_known; the file's format and loading are xentcheck.regress.known's).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

import numpy as np

from xentcheck.core.cases import Case
from xentcheck.core.dtypes import wider
from xentcheck.core.metrics import BAD_VERDICTS
from xentcheck.core.records import MATCH_FIELDS, Metrics, Result, Subject, VariantOutput
from xentcheck.core.tolerances import TOLERANCE_ROWS, Tolerances
from xentcheck.problems import OutputSpec, problem_of

__all__ = ["evaluate", "mark_known", "matches", "Result", "Metrics", "Subject", "VariantOutput"]


def evaluate(case: Case, subject: Subject, output: VariantOutput, tolerances: Tolerances, *,
             reference: Any, known: Sequence[dict] = ()) -> Result:
    """The result of `output` (one variant of `subject` on `case`). `reference` (its kind's,
    problems.Problem.reference) may be a function that computes it: it is called only when values
    are compared. `known`: the entries of a known-differences file (xentcheck.regress.known.load)."""
    result = subject.result(case, **_judge(case, output, tolerances, reference))
    return mark_known(result, list(known))


def _judge(case: Case, output: VariantOutput, tolerances: Tolerances,
           reference: Any) -> dict:
    if output.status == "skipped":
        return {"verdict": "skipped", "reasons": [output.reason]}
    if "oor" in case.option_set:
        return _out_of_range(case, output)
    if output.status in ("crashed", "timeout"):  # a rank of a multi-rank variant (xentcheck.run.ranks)
        return {"verdict": output.status, "reasons": [output.error]}
    if output.status != "ok":
        return {"verdict": "error", "reasons": [output.error or "unknown error"], "traceback": output.traceback}
    with np.errstate(all="ignore"):
        ref = reference() if callable(reference) else reference
        fields = problem_of(case).compare(case, ref, output, tolerances)  # shapes, dtypes, values
    fields["tolerance"] = {"preset": tolerances.preset, **{w: dict(zip(("rtol", "atol"), tolerances.get(case.dtype, w)))
                                                          for w in TOLERANCE_ROWS}}
    fields["reference_precision"] = ref.precision
    fields["inputs_modified"] = list(output.inputs_modified)
    if output.notes:
        fields["notes"] = list(output.notes)
    if output.properties is not None:
        fields["properties"] = output.properties
    return fields


def _out_of_range(case: Case, output: VariantOutput) -> dict:
    """An out-of-range class index must be refused; a value returned in silence is a finding."""
    if output.status == "error":
        return {"verdict": "pass", "reasons": [f"raised on the out-of-range class index: {output.error[:200]}"]}
    shown = np.array2string(np.asarray(output.loss, dtype=np.float64).ravel()[:4], precision=6)
    return {"verdict": "fail", "reasons": [f"silently returned loss {shown} for an out-of-range class index "
                                           f"(label {case.k} with K = {case.k})"]}


def dtype_reasons(case: Case, out: dict) -> tuple[list[str], list[str]]:
    """The dtype rule (module docstring): (reasons that fail, notes of a widened output) from the
    dtype a result records for each tolerance row: out["loss_dtype"] (the loss), out["grad_dtype"]
    (the gradients)."""
    reasons, widened = [], []
    for what in TOLERANCE_ROWS:
        got = out[f"{what}_dtype"]
        if got != case.dtype and wider(got, case.dtype):
            widened.append(f"{what} computed in {got}, wider than the requested {case.dtype}")
        elif got != case.dtype:
            reasons.append(f"{what} computed in {got}, requested {case.dtype}")
    return reasons, widened


def values_verdict(case: Case, outputs: Sequence[OutputSpec], metrics: dict, tolerances: Tolerances,
                   reasons: list[str], widened: list[str]) -> dict:
    """The values rule: each declared output's metrics (metrics[name], judged at its tolerance,
    named by its title) add their reasons; then the verdict."""
    nonfinite = False
    for spec in outputs:
        m, label = metrics.get(spec.name), spec.title
        if m is None:
            continue
        rtol, atol = tolerances.get(case.dtype, spec.tolerance)
        if m["n_nonfinite_mismatch"]:
            nonfinite = True
            reasons.append(f"{label}: {m['n_nonfinite_mismatch']} / {m['size']} NaN/inf where the reference "
                           f"differs, e.g. {m['worst_actual']} vs {m['worst_expected']} at index {m['worst_index']}")
        elif m["n_exceed"]:
            scale_note = f" x scale {m['worst_scale']:.3g}" if tolerances.scaled else ""
            if tolerances.kind == "model":
                scale_note = f"; error-model bound {m['worst_allowed']:.3g}"
            reasons.append(
                f"{label}: {m['n_exceed']} / {m['size']} out of tolerance; greatest absolute difference "
                f"{m['abs_err']:.3g}, relative {m['rel_err']:.3g}, {m['ulp_err']:.3g} ULP; worst at index "
                f"{m['worst_index']}: {m['worst_actual']} vs {m['worst_expected']} "
                f"(allowed rtol {rtol:.3g}, atol {atol:.3g}{scale_note})")
    verdict = "nonfinite" if nonfinite else ("fail" if reasons else ("widened" if widened else "pass"))
    return {"verdict": verdict, "reasons": reasons + widened}


def matches(entry: dict, record: dict) -> bool:
    """Whether a known-differences entry covers a result: each of the entry's match fields holds
    an fnmatch pattern (or a list of them) that the result's field matches."""
    for key, field in MATCH_FIELDS.items():
        if key not in entry:
            continue
        patterns = [entry[key]] if isinstance(entry[key], str) else entry[key]
        value = str(record.get(field, ""))
        if not any(fnmatch.fnmatchcase(value, p) for p in patterns):
            return False
    return True


def mark_known(result: Result, entries: list[dict]) -> Result:
    """The rule: a bad result that an entry matches (the first one) becomes `known`, keeping its
    verdict in `original_verdict` and the entry's id, reason and link in `known`. Changes and
    returns `result`."""
    if result.verdict in BAD_VERDICTS:
        hit = next((e for e in entries if matches(e, result.id_fields)), None)
        if hit is not None:
            result.original_verdict, result.verdict = result.verdict, "known"
            result.known = {"id": hit["id"], "reason": hit["reason"], "link": hit["link"]}
    return result
