"""The baseline for harness overhead: the default suite's work as a user would write it by hand.

    python benchmarks/plain_loop.py [--cases N | --case ID ...] [--shard I/P] [--backends numpy,torch,tensorflow,jax]

One loop, in one process: for each case (every P-th from the I-th: bench_harness.py runs P of these
side by side, one per core), its inputs, then for each framework each API the default run calls on
it: the loss and its gradient through the framework's own autodiff (the adapter's run_variant: the
framework call and the NumPy conversions, nothing else), the case's reference (once per case and
API semantics) and a comparison of every output with it (np.allclose at torch.testing's tolerances
for the dtype). Which APIs run on which case is the worker's rule (worker.run_case): the variant's
kind (a linear-CE case's h, W, b go to the linear variants, logits to the plain ones), its label
forms, the case's options and the backend's own unsupported(). There are no worker processes, no
protocol, no .npz files, no error model, no reports.

Prints one JSON line: the calls made, those that raised (and the first error), the outputs that
disagree with the reference, the frameworks that did not load (their cases are skipped, as a run
skips them), and the seconds spent loading frameworks, in framework calls, in the reference and in
comparing. A call that raises is counted and the loop goes on, as a run records an error and goes on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xentcheck.backends.registry import create  # noqa: E402
from xentcheck.core.cases import make_inputs  # noqa: E402
from xentcheck.core.tolerances import Tolerances  # noqa: E402
from xentcheck.problems import problem_of, runs  # noqa: E402
from xentcheck.problems.ce.reference import reference_key  # noqa: E402
from xentcheck.run.plan import parse_dtypes, select_cases  # noqa: E402

BACKENDS = ("numpy", "torch", "tensorflow", "jax")  # the default run's
TOLERANCES = Tolerances("torch")  # torch.testing.assert_close's defaults per dtype, as a user would take them


def applicable(backend, case) -> list:
    """The backend's default APIs that run on `case` (as worker.run_case chooses them)."""
    if backend.unsupported(case, "cpu"):
        return []
    return [v for v in backend.variants() if v.default and not v.opt_in and runs(v, case)
            and case.labels in v.label_forms and not (case.option_set - {"oor"} - set(v.options))]


def agrees(case, got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> bool:
    """Every output the backend returned against the reference's array of that name."""
    ok = True
    for name, array in got.items():
        want = ref.get(name)
        if want is None:  # a linear reference streams dW above 2^24 entries: none in the default suite
            continue
        rtol, atol = TOLERANCES.get(case.dtype, "loss" if name == "loss" else "grad")
        a = np.asarray(array).astype(np.float64).reshape(np.shape(want))
        ok &= bool(np.allclose(a, np.asarray(want, np.float64), rtol=rtol, atol=atol, equal_nan=True))
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, help="only the first N cases of the default suite")
    ap.add_argument("--case", action="append", default=[], metavar="ID", help="this case instead of the suite (repeatable)")
    ap.add_argument("--shard", default="1/1", help="I/P: every P-th case from the I-th (1-based)")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    args = ap.parse_args(argv)
    index, count = (int(v) for v in args.shard.split("/"))
    cases = select_cases(parse_dtypes(None), args.cases, args.case)[index - 1::count]  # the run's own selection
    seconds = {"load": 0.0, "calls": 0.0, "reference": 0.0, "compare": 0.0}
    t = time.perf_counter()
    backends, missing = [], []
    for name in args.backends.split(","):
        try:
            backend = create(name)
            backend.load()
        except Exception as exc:
            missing.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        backends.append(backend)
    seconds["load"] = time.perf_counter() - t
    calls, raised, disagree, first_error = 0, 0, 0, None
    for case in cases:
        inputs = make_inputs(case, 0)
        problem = problem_of(case)
        refs: dict[str, dict[str, np.ndarray]] = {}
        for backend in backends:
            for v in applicable(backend, case):
                t = time.perf_counter()
                calls += 1
                # the kind's own call: the inputs in the shape its adapters take, the outputs by name
                out = problem.compute(backend, v, case, inputs, "cpu")
                if out.status != "ok":
                    raised += 1
                    first_error = first_error or f"{backend.name} {v.impl} on {case.id}: {out.error}"
                    continue
                t1 = time.perf_counter()
                key = reference_key(case, v.semantics)
                if key not in refs:
                    refs[key] = problem.reference_arrays(case, problem.reference(case, inputs, key))
                t2 = time.perf_counter()
                disagree += not agrees(case, {"loss": out.loss, **out.grads}, refs[key])
                t3 = time.perf_counter()
                seconds["calls"] += t1 - t
                seconds["reference"] += t2 - t1
                seconds["compare"] += t3 - t2
    print(json.dumps({"calls": calls, "raised": raised, "first_error": first_error, "disagree": disagree,
                      "cases": len(cases), "missing": missing, "seconds": {k: round(v, 3) for k, v in seconds.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
