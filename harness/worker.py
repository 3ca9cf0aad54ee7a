"""A backend's worker process: `python -m harness.worker SPEC`.

Speaks JSON lines: the parent sends {"op": "run", "case_id", "seed", "device", "out"} and the
worker regenerates the inputs from (seed, case_id), runs the backend and writes loss and
gradient to the .npz file `out`; only small messages cross the pipe. The first message is a
"hello" describing the backend (or why it is missing or broken). The framework's own chatter
on stdout is redirected to stderr so it cannot corrupt the protocol.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

import numpy as np

from harness.cases import Case, make_inputs
from harness.dtypes import transport_dtype


def describe(backend) -> dict:
    return {"name": backend.name, "impl": backend.impl, "mode": backend.mode,
            "version": backend.version(), "dtypes": list(backend.dtypes),
            "label_forms": list(backend.label_forms), "devices": backend.devices(),
            "settings": backend.settings(), "python": sys.version.split()[0],
            "executable": sys.executable}


def hello(spec: str):
    """Create and load the backend; returns (backend or None, hello message)."""
    from backends.registry import BackendLoadError, create
    try:
        backend = create(spec)
    except BackendLoadError as exc:
        return None, {"op": "hello", "status": "broken", "reason": str(exc)}
    except Exception as exc:
        return None, {"op": "hello", "status": "broken", "reason": f"{type(exc).__name__}: {exc}"}
    try:
        backend.load()
    except ImportError as exc:
        return None, {"op": "hello", "status": "missing", "name": backend.name,
                      "reason": f"{backend.name}: framework not installed ({exc})"}
    except Exception as exc:
        return None, {"op": "hello", "status": "broken", "name": backend.name,
                      "reason": f"{backend.name} failed to load: {type(exc).__name__}: {exc}"}
    try:
        return backend, {"op": "hello", "status": "ok", **describe(backend)}
    except Exception as exc:
        return None, {"op": "hello", "status": "broken", "name": getattr(backend, "name", spec),
                      "reason": f"describing the backend failed: {type(exc).__name__}: {exc}"}


def _as_array(value, what: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" and arr.dtype.name != "bfloat16":
        raise TypeError(f"backend returned {what} of type {type(value).__name__} "
                        f"(dtype {arr.dtype}), not a numeric array")
    return arr


def run_case(backend, msg: dict) -> dict:
    case = Case.from_id(msg["case_id"])
    reply = {"op": "result", "case_id": case.id}
    why = backend.unsupported(case, msg["device"])
    if why:
        return {**reply, "status": "skipped", "reason": why}
    inputs = make_inputs(case, msg["seed"])
    pristine = inputs.copy()
    start = time.perf_counter()
    try:
        out = backend.compute(case, inputs, msg["device"])
        seconds = time.perf_counter() - start
        loss = _as_array(out.loss, "loss")
        grad = _as_array(out.grad, "gradient")
    except Exception as exc:
        tb = traceback.format_exc(limit=-3)
        return {**reply, "status": "error", "error": f"{type(exc).__name__}: {exc}", "traceback": tb}
    modified = [name for name in ("logits", "labels")
                if getattr(inputs, name).tobytes() != getattr(pristine, name).tobytes()]
    np.savez(msg["out"], loss=loss.astype(transport_dtype(loss.dtype)),
             grad=grad.astype(transport_dtype(grad.dtype)))
    return {**reply, "status": "ok", "seconds": seconds, "inputs_modified": modified,
            "loss_dtype": out.loss_dtype or loss.dtype.name, "grad_dtype": out.grad_dtype or grad.dtype.name,
            "notes": list(out.notes)}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m harness.worker BACKEND_SPEC", file=sys.stderr)
        return 2
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(msg: dict) -> None:
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    backend, msg = hello(argv[0])
    label = os.environ.get("XENTCHECK_INTERPRETER_LABEL")  # --python LABEL=...: name it BACKEND@LABEL
    if label:
        msg["name"] = f"{msg.get('name', argv[0])}@{label}"
    send(msg)
    if backend is None:
        return 0
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("op") == "quit":
            break
        try:
            send(run_case(backend, request))
        except Exception as exc:  # keep serving: one bad case must not end the backend's run
            send({"op": "result", "case_id": request.get("case_id"), "status": "error",
                  "error": f"worker: {type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=-3)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
