"""Synthetic but real result records for report tests: outputs of made-up backends judged against
the true reference by xentcheck.core.evaluate, without running any worker."""

from __future__ import annotations

import numpy as np

from xentcheck.core.cases import Case, make_inputs
from xentcheck.core.dtypes import info
from xentcheck.core.evaluate import Subject, VariantOutput, evaluate
from xentcheck.core.records import Result
from xentcheck.core.tolerances import Tolerances
from xentcheck.problems.ce.reference import reference

CASES = ("scale1e+0_float32_16x10_index_mean", "scale1e+2_float32_3x5_soft_sum", "neartie_float64_16x10_onehot_none",
         "scale1e+0_float16_3x5_index_sum")


def record(case_id: str, backend: str, ulps: float = 0.0, nan: bool = False, seed: int = 0,
           preset: str = "xentcheck", impl: str = "impl", seconds: float = 0.01) -> Result:
    """The record of a backend whose loss and gradient are the reference rounded to the dtype,
    then moved by `ulps` units in the last place (and made NaN when `nan`)."""
    case = Case.from_id(case_id)
    ref = reference(case, make_inputs(case, seed))
    d = info(case.dtype)

    def out(v):
        r = np.asarray(v, dtype=np.float64).astype(d.np_type).astype(np.float64)
        step = np.spacing(np.abs(r).astype(d.np_type)).astype(np.float64)
        return (r + ulps * step).astype(d.np_type)

    loss, grad = out(ref.loss), out(ref.grad)
    if nan:
        loss = np.full_like(loss, np.nan)
    out = VariantOutput("ok", inputs_modified=[], loss=loss, grads={"grad": grad})
    subject = Subject(backend=backend, impl=impl, mode="eager", device="cpu", seed=seed, backend_version="1.0")
    rec = evaluate(case, subject, out, Tolerances(preset), reference=ref)
    rec.api = None  # these made-up backends name no API
    rec.timing = {"wall_seconds": seconds * 2, "compute_seconds": seconds}
    return rec


def error_record(case_id: str, backend: str, message: str) -> Result:
    case = Case.from_id(case_id)
    return Result.from_dict({**case.as_dict(), "seed": 0, "backend": backend, "impl": "impl", "mode": "eager",
                             "device": "cpu", "backend_version": "1.0", "verdict": "error", "reasons": [message],
                             "traceback": message})


def context(backends: list[str], preset: str = "xentcheck") -> dict:
    return {"xentcheck_version": "test", "interrupted": False,
            "config": {"backends": backends, "dtypes": ["float16", "float32", "float64"], "seed": 0,
                       "n_cases": len(CASES), "device": "cpu", "case_timeout": 300.0},
            "environment": {"python": "3", "platform": "test", "cpu": "test", "cpu_count": 1, "packages": {}},
            "backends": [{"name": b, "spec": b, "status": "ok", "version": "1.0", "impl": "impl"} for b in backends],
            "tolerances": Tolerances(preset).as_dict(), "reference_float64": "longdouble"}


def suite(evil: str = "<script>alert(1)</script>") -> tuple[list[Result], dict]:
    """Records of three backends: exact, off by a few ULPs, and `evil` (a hostile name) that
    returns NaN losses on one case and raises an exception with a hostile message on another."""
    records = []
    for cid in CASES:
        records.append(record(cid, "exact", 0.0))
        records.append(record(cid, "sloppy", 3.0))
        if cid == CASES[0]:
            records.append(record(cid, evil, 0.0, nan=True))
        elif cid == CASES[1]:
            records.append(error_record(cid, evil, f"RuntimeError: {evil} & <b>bold</b>"))
        else:
            records.append(record(cid, evil, 40.0))
    return records, context(["exact", "sloppy", evil])
