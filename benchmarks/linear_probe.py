"""One linear-CE measurement in a fresh process, for benchmarks/linear_reference_vs_torch.py:
`python benchmarks/linear_probe.py JSON` prints one JSON line.

This measures xentcheck itself (the reference's speed and memory against torch), not a framework:
`xentcheck bench --linear-shapes` times the frameworks through the worker's timing message. The
request names a backend spec and a linear variant (impl, mode), or "reference" (the
high-precision reference, xentcheck.problems.linear.reference, and its comparison with a backend's
outputs through xentcheck.core.evaluate: a streamed dW is formed during the comparison, so the two
are measured together; the outputs, of the dtype, are made with the inputs), a dtype and a shape
N x D x V. Its inputs are bench's linear-CE workload (xentcheck.problems.linear.timing: h in
[-1, 1], W in [-3/sqrt(D), 3/sqrt(D)], index labels, mean, no bias); then forward+backward once
(the first call, after a warm-up on 8 x 16 x 64) and `repeats` more times.

Memory is the kernel's account of this process (Linux /proc/self/status): VmRSS before the
inputs are made (`rss_start`), after (`rss_inputs`), and the high-water mark VmHWM, reset to the
current RSS just before the first call (run.memory.reset_peak), read after it. So `peak_bytes` =
VmHWM - rss_start is what the inputs, the call's working set and its outputs took at their
largest, and `extra_bytes` = VmHWM - rss_inputs is the call's own peak above its inputs. A fresh
process per measurement: no heap left over from another implementation or shape.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's xentcheck, as benchmarks/bench_harness.py

import numpy as np  # noqa: E402

from xentcheck.backends.base import named_grads  # noqa: E402
from xentcheck.core import dtypes  # noqa: E402
from xentcheck.core.cases import Case  # noqa: E402
from xentcheck.problems.linear import timing  # noqa: E402
from xentcheck.problems.linear.cases import LinearInputs  # noqa: E402
from xentcheck.run.environment import allocator_env, proc_kib, thread_env  # noqa: E402
from xentcheck.timing.measure import dtype_bytes  # noqa: E402

REFERENCE = "reference"
PRODUCTS = "reference_products"  # the reference's six BLAS products alone: its floor


@dataclass
class ProbeConfig:
    threads: int = 1
    allocator: str = "steady"  # environment.allocator_env, as bench's workers have it
    repeats: int = 0  # calls after the first
    seed: int = 0
    timeout: float = 3600.0


def status_bytes(field: str) -> int | None:
    return proc_kib("/proc/self/status", field)  # in bytes


def bench_case(dtype: str, n: int, d: int, v: int) -> Case:
    """bench's linear-CE workload of N x D x V (not validated: W may exceed the suite's size limit)."""
    return timing.workload(dtype, (n, d, v), "index")


def bench_inputs(case: Case, seed: int = 0) -> LinearInputs:
    return timing.inputs(case, seed)


def nbytes(*arrays) -> int:
    return int(sum(np.asarray(a).nbytes for a in arrays if a is not None))


def backend_outputs(case: Case):
    """A backend's outputs of `case` for the reference's comparison: loss, dh, dW of the dtype,
    every page written (a constant 1e-3: the comparison's work does not depend on the values)."""
    from xentcheck.core.records import VariantOutput
    np_type = dtypes.info(case.dtype).np_type
    grads: dict[str, np.ndarray] = {"dh": np.full((case.n, case.d), 1e-3, dtype=np_type),
                                    "dw": np.full((case.k, case.d), 1e-3, dtype=np_type)}
    return VariantOutput(status="ok", variant={"impl": "bench", "mode": "eager", "semantics": "torch"},
                         loss=np.asarray(1.0, dtype=np_type), grads=grads, loss_dtype=case.dtype, grad_dtype=case.dtype)


def reference_and_comparison(case: Case, inputs: LinearInputs, output) -> tuple:
    """The reference (torch semantics) and evaluate's judgement of `output` against it, and the
    seconds (wall, CPU) of each: a streamed dW is formed in the second."""
    from xentcheck.core.evaluate import Subject, evaluate
    from xentcheck.core.tolerances import Tolerances
    from xentcheck.problems.linear.reference import linear_reference
    t0, c0 = time.perf_counter(), time.process_time()
    ref = linear_reference(case, inputs, "torch")
    t1, c1 = time.perf_counter(), time.process_time()
    verdict = evaluate(case, Subject("bench"), output, Tolerances(), reference=ref)
    parts = {"reference": [t1 - t0, c1 - c0], "comparison": [time.perf_counter() - t1, time.process_time() - c1]}
    return ref, verdict, parts


def reference_products(case: Case, inputs: LinearInputs) -> dict:
    """The products linear_reference and its comparison make for a 16- or 32-bit case, on its
    vocabulary blocks, and nothing else: h W_b^T and dh += G_b W_b and dW_b = G_b^T h in float64,
    |h| |W_b|^T and A_b |W_b| and A_b^T |h| in float32 (G_b and A_b constant blocks): what any
    reference of this precision and these natural scales pays before its elementwise work."""
    from xentcheck.problems.linear.reference import _blocks
    n, d = inputs.hidden.shape
    h64, h32 = inputs.hidden.astype(np.float64), np.abs(inputs.hidden.astype(np.float32))
    dh, s_dh = np.zeros((n, d)), np.zeros((n, d), dtype=np.float32)
    blocks = _blocks(case.k, d, n)
    for vb in blocks:
        w = inputs.weight[vb]
        w64, w32 = w.astype(np.float64), np.abs(w.astype(np.float32))
        g = h64 @ w64.T  # the logits' product; its result stands in for G_b
        a = h32 @ w32.T  # w_n's; stands in for A_b
        dh += g @ w64
        s_dh += a @ w32
        g.T @ h64  # dW_b and its scale, formed and dropped as the comparison does
        a.T @ h32
    return {"blocks": len(blocks), "block_width": max(vb.stop - vb.start for vb in blocks)}


def runner(request: dict):
    """(fn(case, inputs[, outputs]) doing forward+backward once (the reference: and the comparison)
    and returning its outputs, what it is)."""
    if request["impl"] == PRODUCTS:
        return reference_products, {"api": "the reference's BLAS products alone (benchmarks/linear_probe.py)"}
    if request["impl"] == REFERENCE:
        if "stream_dw_entries" in request:  # tests: the streamed dW at a small shape
            import xentcheck.problems.linear.reference as lr
            lr.STREAM_DW_ENTRIES = int(request["stream_dw_entries"])
        return reference_and_comparison, {"api": "xentcheck.problems.linear.reference + xentcheck.core.evaluate"}
    from xentcheck.run.worker import hello
    backend: Any
    backend, said = hello(request["backend"])  # created and loaded as a worker does
    if backend is None:
        raise RuntimeError(f"{request['backend']}: {said.status}: {said.reason}")
    chosen = [v for v in backend.variants() if getattr(v, "kind", "ce") == "linear"
              and (v.impl, v.mode) == (request["impl"], request["mode"])]
    if not chosen:
        raise ValueError(f"{request['backend']} has no linear variant {request['impl']} ({request['mode']})")
    v = chosen[0]
    device = request.get("device", "cpu")
    # the adapter's own path: NumPy in, NumPy out (the conversions are part of the time, as in a run)
    return (lambda case, inputs: backend.run_variant(v, case, inputs, device)), \
        {"api": v.api, "backend": backend.name, "version": said.version}


def outputs_bytes(request: dict, result) -> int:
    if request["impl"] == PRODUCTS:
        return 0
    if request["impl"] == REFERENCE:  # its outputs: loss, dh, dW (db; dW not when streamed), their scales
        ref = result[0]
        return nbytes(ref.loss, ref.dh, ref.dw, ref.db, *ref.scales.values())
    return nbytes(result.loss, *named_grads(result, ("dh", "dw", "db")).values())


def probe(request: dict) -> dict:
    """Load, warm up on a tiny shape (libraries, thread pools, first-call set-up), then measure."""
    case = bench_case(request["dtype"], request["n"], request["d"], request["v"])
    out: dict = {"impl": request["impl"], "mode": request.get("mode", ""), "backend": request.get("backend", ""),
                 "dtype": case.dtype, "n": case.n, "d": case.d, "v": case.k}
    fn, info = runner(request)
    out.update(info)
    tiny = bench_case(case.dtype, 8, 16, 64)
    reference = request["impl"] == REFERENCE
    fn(tiny, bench_inputs(tiny), *([backend_outputs(tiny)] if reference else []))
    rss_start = status_bytes("VmRSS")
    inputs = bench_inputs(case, request.get("seed", 0))
    compared = [backend_outputs(case)] if reference else []  # a backend's outputs, held while it compares
    rss_inputs = status_bytes("VmRSS")
    out["inputs_bytes"] = nbytes(inputs.hidden, inputs.weight, inputs.labels)
    if reference:
        out["compared_bytes"] = nbytes(compared[0].loss, *compared[0].grads.values())
    from xentcheck.run.memory import reset_peak
    out["peak_reset"] = reset_peak()
    times, cpu = [], []
    for i in range(1 + request.get("repeats", 0)):
        start, cpu_start = time.perf_counter(), time.process_time()
        result = fn(case, inputs, *compared)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
        if i == 0:
            hwm = status_bytes("VmHWM")  # the first call's peak, its outputs alive
            out["outputs_bytes"] = outputs_bytes(request, result)
            if reference:
                out["streamed_dw"], out["verdict"] = result[0].streamed, result[1].verdict
                out["parts"] = {k: {"seconds": w, "cpu_seconds": c} for k, (w, c) in result[2].items()}
        del result
    # CPU seconds (all threads) beside the wall clock: on a shared host the CPU time is what the
    # call cost, the wall time also what the neighbours took
    out.update(seconds=times, cpu_seconds=cpu, cpu_median=float(np.median(cpu)),
               median=float(np.median(times)), min=float(min(times)), rss_start=rss_start,
               rss_inputs=rss_inputs, hwm=hwm, memory="VmHWM / VmRSS of a fresh process")
    if rss_start is not None and rss_inputs is not None and hwm is not None:
        out["peak_bytes"] = hwm - rss_start
        out["extra_bytes"] = hwm - rss_inputs
    out["status"] = "ok"
    return out


def run_probe(request: dict, config: ProbeConfig) -> dict:
    """One fresh process with the config's threads and malloc setting; its JSON line, or an error row."""
    env = {**os.environ, **thread_env(config.threads), **allocator_env(config.allocator)}
    command = [sys.executable, str(Path(__file__).resolve()),
               json.dumps({**request, "repeats": config.repeats, "seed": config.seed})]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=config.timeout)
    except subprocess.TimeoutExpired:
        return {**request, "status": "error", "reason": f"timed out after {config.timeout:.0f} s"}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or "").strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {**request, "status": "error", "reason": f"probe failed: {tail[0][:300]}"}
    return json.loads(lines[-1])


def peak_over_io(row: dict) -> float:
    """The reference row's peak over its inputs plus a backend's outputs (loss, dh, dW in the dtype)."""
    b = dtype_bytes(row["dtype"])
    return row["peak_bytes"] / (row["inputs_bytes"] + 4 + (row["n"] * row["d"] + row["v"] * row["d"]) * b)


def main(argv: list[str]) -> int:
    request = json.loads(argv[0])
    try:
        reply = probe(request)
    except Exception as exc:  # reported as a row, not a crash of the bench
        reply = {**request, "status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
