"""A worker's run of one variant of a case split over ranks (the records' compute).

The variant's mode says where its ranks run: "gloo" (a process per rank) and "devices" (one
process, W host devices) through xentcheck.run.ranks; any other mode in the worker itself, handed
every rank's shard at once (rank None: a simulation, or micro-batches looped over). The pieces
that come back are gathered by the kind (`gather`) into the full batch's loss and gradient, which
the kind's compare judges against the unsharded reference like any plain CE output.
"""

from __future__ import annotations

import inspect
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

from xentcheck.core.cases import Case, Inputs
from xentcheck.core.records import VariantOutput, as_array, variant_info
from xentcheck.problems import problem_of

RANK_MODES = ("gloo", "devices")

Gather = Callable[[Case, list[dict]], tuple[np.ndarray, np.ndarray, list[str]]]


def backend_ref(backend) -> dict:
    """How a rank process creates the same backend: a module it imports, or a plugin's file."""
    cls = type(backend)
    if cls.__module__.startswith("xentcheck."):
        return {"module": cls.__module__, "cls": cls.__name__}
    return {"file": inspect.getfile(cls), "cls": cls.__name__}


def save_inputs(path: Path, inputs: Inputs) -> None:
    arrays = {"logits": inputs.logits, "labels": inputs.labels, "target": inputs.target,
              "smoothing": np.float64(inputs.smoothing)}
    if inputs.weights is not None:
        arrays["weights"] = inputs.weights
    if inputs.cotangent is not None:
        arrays["cotangent"] = inputs.cotangent
    np.savez(path, **arrays)


def load_inputs(path: str) -> Inputs:
    """What save_inputs wrote (a rank reads it: run/rank.py)."""
    from xentcheck.core.cases import Inputs
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    return Inputs(arrays["logits"], arrays["labels"], arrays["target"], arrays.get("weights"),
                  float(arrays["smoothing"]), arrays.get("cotangent"))


def _on_ranks(backend, v, case: Case, pristine: Inputs, device: str, world: int) -> VariantOutput | list[dict]:
    from xentcheck.run.ranks import launch_ranks
    with tempfile.TemporaryDirectory(prefix="xentcheck-ranks-") as tmp:
        folder = Path(tmp)
        save_inputs(folder / "inputs.npz", pristine)
        ref = backend_ref(backend)
        task = {"backend": ref, "variant": [v.impl, v.mode], "case_id": case.id,
                "inputs_file": str(folder / "inputs.npz"),
                "load_inputs": f"{__name__}:load_inputs", "device": device,
                "preload": [m for m in (ref.get("module"), *backend.rank_preload) if m]}
        outcome = launch_ranks(task, world, v.mode, folder)
        if outcome.status == "skipped":
            return VariantOutput("skipped", variant_info(v), reason=outcome.reason)
        if outcome.status != "ok":
            return VariantOutput(outcome.status, variant_info(v), error=outcome.reason)
        pieces = []
        for prefix in outcome.files:
            import json
            with np.load(f"{prefix}.npz") as f:
                piece = {"loss": f["loss"], "grad": f["grad"]}
            pieces.append({**piece, **json.loads(Path(f"{prefix}.json").read_text())})
        return pieces


def run_on(backend, v, case: Case, pristine: Inputs, device: str, gather: Gather) -> VariantOutput:
    """Variant `v` on `case`'s inputs `pristine`, on the case's ranks, gathered."""
    problem = problem_of(case)
    world = problem.ranks(case)
    start = time.perf_counter()
    try:
        if v.mode in RANK_MODES:
            got = _on_ranks(backend, v, case, pristine, device, world)
            if isinstance(got, VariantOutput):
                return got
            pieces = got
        else:
            assert problem.shard is not None
            out = backend.run_variant(v, case, problem.shard(case, pristine.copy(), None, world), device)
            loss, grad = as_array(out.loss, "loss"), as_array(out.grads.get("grad"), "gradient")
            pieces = [{"loss": loss, "grad": grad, "loss_dtype": out.loss_dtype or loss.dtype.name,
                       "grad_dtype": out.grad_dtype or grad.dtype.name, "notes": list(out.notes)}]
        seconds = time.perf_counter() - start
        loss, grad, notes = gather(case, pieces)
    except ImportError as exc:  # a library the variant needs (megatron-core, transformers) is not installed
        return VariantOutput("skipped", variant_info(v), reason=f"{v.impl}: not installed ({exc})")
    except Exception as exc:
        return VariantOutput("error", variant_info(v), error=f"{type(exc).__name__}: {exc}",
                             traceback=traceback.format_exc(limit=-3))
    notes = sorted({n for p in pieces for n in p.get("notes", [])}) + notes
    return VariantOutput("ok", variant_info(v), seconds=seconds, loss_dtype=pieces[0]["loss_dtype"],
                         grad_dtype=pieces[0]["grad_dtype"], notes=notes, loss=loss, grads={"grad": grad})


def compute(backend, v, case: Case, pristine: Inputs, device: str, properties=None, all_variants=(), *,
            gather: Gather, others: Callable[[Case], list[Case]]) -> VariantOutput:
    """The variant on the case; with `properties` (the run's gradient tolerance) also on the
    same batch split otherwise (`others`: other TP sizes, the unsplit batch), which must agree."""
    result = run_on(backend, v, case, pristine, device, gather)
    if properties is not None and result.status == "ok":
        name = "tp_invariance" if problem_of(case).kind == "vocab" else "split_invariance"
        result.properties = {name: _agree(backend, v, case, pristine, device, gather, others(case), result,
                                          properties)}
    return result


def _agree(backend, v, case: Case, pristine: Inputs, device: str, gather: Gather, cases: list[Case],
           result: VariantOutput, tol) -> dict:
    """Whether the variant gives the same loss and gradient on the other partitionings, within the
    run's tolerance at the gradient's scale (rtol x max |g| + atol; the loss's likewise)."""
    assert result.loss is not None and result.grads is not None
    details = []
    for other in cases:
        out = run_on(backend, v, other, pristine, device, gather)
        if out.status != "ok":
            return {"verdict": "error", "detail": f"{other.part}: {out.status} {out.error or out.reason}"[:300]}
        assert out.loss is not None and out.grads is not None
        for what, a, b in (("loss", result.loss, out.loss), ("gradient", result.grads["grad"], out.grads["grad"])):
            a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
            diff = float(np.max(np.abs(a - b), initial=0.0))
            allowed = tol.rtol * float(np.max(np.abs(a), initial=0.0)) + tol.atol
            if not diff <= allowed:  # NaN on one side only fails too
                details.append(f"{what} at {case.part} vs {other.part}: differs by {diff:.3g} (allowed {allowed:.3g})")
    if details:
        return {"verdict": "fail", "detail": "; ".join(details)}
    return {"verdict": "pass", "detail": f"agrees with {', '.join(c.part for c in cases)}"}
