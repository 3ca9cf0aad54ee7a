"""Reproducers of a sharded result: the unsharded inputs and reference in an .npz, and a script
that runs the variant again on its ranks (xentcheck starts them: gloo on 127.0.0.1, or JAX host
devices) and prints the worst loss and gradient elements against the reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xentcheck.core.cases import Case, Inputs
from xentcheck.core.records import Result

SCRIPT = '''"""Reproduce {name}: {backend} ({impl}, {mode}) on case {case_id}, split over {world} rank(s).

Recorded verdict: {verdict}. Run: python {name}.py (starts the ranks itself).
"""
{prelude}
import numpy as np

from xentcheck.backends.registry import create
from xentcheck.core.cases import Case, make_inputs
from xentcheck.problems import problem_of

case = Case.from_id({case_id!r})
backend = create({spec!r})
backend.load()
variant = next(v for v in backend.variants() if (v.impl, v.mode) == ({impl!r}, {mode!r}))
inputs = make_inputs(case, {seed})
out = problem_of(case).compute(backend, variant, case, inputs, {device!r})
ref = np.load("{name}.npz")
print("status:", out.status, out.error or out.reason)
for note in out.notes:
    print("note:", note)
if out.status == "ok":
    for what, got, want in (("loss", out.loss, ref["ref_loss"]), ("gradient", out.grads["grad"], ref["ref_grad"])):
        err = np.abs(np.asarray(got, np.float64) - want)
        i = np.unravel_index(np.nanargmax(err), err.shape) if err.ndim else ()
        print(f"{{what}}: worst |error| {{err[i]:.3g}} at {{i}}: {{np.asarray(got)[i]}} vs reference {{want[i]}}")
'''


def write(folder: Path, name: str, record: Result, inputs: Inputs, case: Case, ref, shrunk: bool, spec: str | None,
          prelude: str) -> tuple[Path, Path]:
    from xentcheck.problems import problem_of
    npz, py = folder / f"{name}.npz", folder / f"{name}.py"
    with np.errstate(over="ignore"):
        np.savez_compressed(npz, logits=inputs.logits, labels=inputs.labels,
                            ref_loss=np.asarray(ref.loss, np.float64), ref_grad=np.asarray(ref.grad, np.float64),
                            meta=np.array(json.dumps({"case_id": case.id, "result": name})))
    py.write_text(SCRIPT.format(name=name, backend=record.backend, impl=record.impl or "",
                                mode=record.mode or "", case_id=case.id, world=problem_of(case).ranks(case),
                                verdict=record.recorded_verdict, prelude=prelude,
                                spec=spec or record.backend, seed=0 if record.seed is None else record.seed,
                                device=record.device or "cpu"))
    return npz, py
