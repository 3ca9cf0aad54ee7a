"""`xentcheck bench --linear-shapes NxDxV,...`: linear-CE forward+backward time and peak memory.

Each (implementation, dtype, shape) runs in a fresh process (xentcheck.problems.linear.probe), one
at a time, with the bench's thread count and malloc setting forced through the environment; the
high-precision reference is measured the same way. Per row: seconds per forward+backward (the
first call after a warm-up on a tiny shape, then `repeats` more), the process's peak memory
above its inputs (VmHWM - VmRSS, see probe.py) and that peak as a ratio to the logits' size
N x V (what fused kernels exist to save). The reference's row measures the reference and its
comparison with a backend's outputs (made with the inputs; a dW above the reference's
STREAM_DW_ENTRIES is formed during the comparison, a vocabulary block at a time) and carries its
peak (inputs and those outputs included) over the inputs plus the outputs (loss, dh, dW in the
dtype) and its time over
torch's float32 forward+backward of the same shape (F.cross_entropy(F.linear(h, W), y)), with
the issue's targets (1.5x, 3x).
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from dataclasses import dataclass, field

from xentcheck.problems.linear.probe import REFERENCE
from xentcheck.run.environment import allocator_env, fingerprint, thread_env
from xentcheck.timing.measure import dtype_bytes

TORCH_IMPLS = ("linear_then_cross_entropy", "linear_cross_entropy", "linear_cross_entropy_accurate_c16")
BASELINE = ("torch", "linear_then_cross_entropy", "eager", "float32")  # torch's own float32 fwd+bwd
TARGET_MEMORY, TARGET_TIME = 1.5, 3.0


@dataclass
class LinearBenchConfig:
    shapes: list[tuple[int, int, int]]  # (N, D, V)
    dtypes: list[str] = field(default_factory=lambda: ["float32"])
    # (backend spec, impl, mode); the reference is added unless `reference` is False
    variants: list[tuple[str, str, str]] = field(default_factory=lambda: [("torch", i, "eager") for i in TORCH_IMPLS])
    reference: bool = True
    threads: int = 1
    allocator: str = "steady"
    repeats: int = 1
    seed: int = 0
    timeout: float = 3600.0


def parse_linear_shapes(text: str) -> list[tuple[int, int, int]]:
    """"4096x2048x128256,256x512x32000" -> [(4096, 2048, 128256), (256, 512, 32000)] (N x D x V)."""
    shapes = []
    for part in text.split(","):
        try:
            n, d, v = (int(x) for x in part.strip().lower().split("x"))
        except ValueError:
            raise ValueError(f"malformed linear shape {part.strip()!r} (expected NxDxV, e.g. 4096x2048x128256)") from None
        if min(n, d, v) < 1:
            raise ValueError(f"linear shape {part.strip()!r}: N, D and V must be positive")
        shapes.append((n, d, v))
    return shapes


def probe_command(request: dict) -> list[str]:
    return [sys.executable, "-m", "xentcheck.problems.linear.probe", json.dumps(request)]


def run_probe(request: dict, config: LinearBenchConfig) -> dict:
    """One fresh process; its JSON line, or an error row."""
    import os
    env = {**os.environ, **thread_env(config.threads), **allocator_env(config.allocator)}
    try:
        done = subprocess.run(probe_command(request), env=env, capture_output=True, text=True, timeout=config.timeout)
    except subprocess.TimeoutExpired:
        return {**request, "status": "error", "reason": f"timed out after {config.timeout:.0f} s"}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or "").strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {**request, "status": "error", "reason": f"probe failed: {tail[0][:300]}"}
    return json.loads(lines[-1])


def requests(config: LinearBenchConfig) -> list[dict]:
    """Every measurement, small shapes first; the float32 torch baseline of each shape is added
    when the reference is measured and the baseline is not among the variants."""
    out = []
    for n, d, v in sorted(config.shapes, key=lambda s: s[0] * s[1] * s[2]):
        for dtype in config.dtypes:
            for spec, impl, mode in config.variants:
                out.append({"backend": spec, "impl": impl, "mode": mode, "dtype": dtype, "n": n, "d": d, "v": v})
            if config.reference:
                out.append({"impl": REFERENCE, "mode": "", "dtype": dtype, "n": n, "d": d, "v": v})
        if config.reference and not ("float32" in config.dtypes and BASELINE[:3] in config.variants):
            spec, impl, mode, dtype = BASELINE
            out.append({"backend": spec, "impl": impl, "mode": mode, "dtype": dtype, "n": n, "d": d, "v": v})
    for r in out:
        r.update(repeats=config.repeats, seed=config.seed)
    return out


def annotate(rows: list[dict]) -> list[dict]:
    """Add the ratios: peak over the logits' size; the reference's peak over inputs + a backend's
    outputs and its time over torch's float32 forward+backward (same shape)."""
    base = {(r["n"], r["d"], r["v"]): r for r in rows if r.get("status") == "ok"
            and (r.get("backend"), r["impl"], r.get("mode"), r["dtype"]) == BASELINE}
    for r in rows:
        if r.get("status") != "ok":
            continue
        n, d, v, b = r["n"], r["d"], r["v"], dtype_bytes(r["dtype"])
        r["logits_bytes"] = n * v * b
        r["extra_over_logits"] = r["extra_bytes"] / r["logits_bytes"]
        if r["impl"] != REFERENCE:
            continue
        backend_out = 4 + (n * d + v * d) * b  # loss, dh, dW in the dtype
        r["backend_outputs_bytes"] = backend_out
        r["peak_over_io"] = r["peak_bytes"] / (r["inputs_bytes"] + backend_out)
        r["memory_target_met"] = r["peak_over_io"] <= TARGET_MEMORY
        torch32 = base.get((n, d, v))
        if torch32:
            r["torch_float32_median"] = torch32["median"]
            r["time_over_torch_float32"] = r["median"] / torch32["median"]
            r["time_target_met"] = r["time_over_torch_float32"] <= TARGET_TIME
            if "cpu_median" in r and torch32.get("cpu_median"):  # CPU seconds: fairer on a shared host
                r["torch_float32_cpu_median"] = torch32["cpu_median"]
                r["cpu_time_over_torch_float32"] = r["cpu_median"] / torch32["cpu_median"]
    return rows


def run_linear_bench(config: LinearBenchConfig, progress=None) -> dict:
    rows = []
    for req in requests(config):
        row = run_probe(req, config)
        rows.append(row)
        if progress:
            progress(row)
    return {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "kind": "linear-ce", "threads": config.threads,
            "allocator": {"mode": config.allocator, "env": allocator_env(config.allocator)},
            "config": {"shapes": [f"{n}x{d}x{v}" for n, d, v in config.shapes], "dtypes": config.dtypes,
                       "variants": [list(v) for v in config.variants], "reference": config.reference,
                       "repeats": config.repeats, "seed": config.seed},
            "method": {"process": "a fresh process per implementation x dtype x shape, one at a time",
                       "time": "seconds per forward+backward through the adapter (NumPy in and out), after a warm-up "
                               "call on an 8 x 16 x 64 shape; the first call and `repeats` more; median quoted",
                       "memory": "Linux VmHWM (reset before the first call) minus VmRSS: peak_bytes from before the "
                                 "inputs were made, extra_bytes from after; the kernel's resident-set account",
                       "targets": {"reference_peak_over_inputs_plus_outputs": TARGET_MEMORY,
                                   "reference_time_over_torch_float32": TARGET_TIME}},
            "environment": fingerprint(), "rows": annotate(rows)}


def summary_lines(data: dict) -> list[str]:
    """A Markdown table of the rows."""
    out = ["| impl | dtype | N x D x V | median s | peak above inputs (GiB) | / logits "
           "| reference: peak / (in + out), time / torch f32 |",
           "|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        shape = f"{r['n']}x{r['d']}x{r['v']}"
        name = r["impl"] if r["impl"] == REFERENCE else f"{r.get('backend')}:{r['impl']}"
        if r.get("status") != "ok":
            out.append(f"| {name} | {r['dtype']} | {shape} | {r.get('status')}: {r.get('reason', '')} | | | |")
            continue
        ref = ""
        if r["impl"] == REFERENCE:
            ref = f"{r['peak_over_io']:.2f}x"
            if "time_over_torch_float32" in r:
                ref += f", {r['time_over_torch_float32']:.2f}x"
            if "cpu_time_over_torch_float32" in r:
                ref += f" (CPU seconds {r['cpu_time_over_torch_float32']:.2f}x)"
        out.append(f"| {name} | {r['dtype']} | {shape} | {r['median']:.3g} | {r['extra_bytes'] / 2**30:.3f} | "
                   f"{r['extra_over_logits']:.2f} | {ref} |")
    return out
