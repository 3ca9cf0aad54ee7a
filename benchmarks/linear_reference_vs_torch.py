"""The linear-CE reference with its comparison against torch's float32 forward+backward, at one
N x D x V, in one run (issue 30): JSON under benchmarks/results/.

    python benchmarks/linear_reference_vs_torch.py --shape 4096x2048x128256 --threads 2

Each side runs in a fresh process (benchmarks/linear_probe.py), one after the other, with the
same thread count: torch's F.cross_entropy(F.linear(h, W), y) forward and backward to h and W in
float32 (the `linear_then_cross_entropy` adapter, NumPy in and out), then the reference
(xentcheck.problems.linear.reference, torch semantics) with evaluate()'s comparison of a backend's
float32 outputs (`parts`: the reference's and the comparison's seconds), then (unless
--no-floor) the reference's six BLAS products alone, what any reference of its precision and
natural scales pays (`floor_ratio`). Per side: wall and CPU seconds of the first call (after a
warm-up on 8 x 16 x 64), its peak resident memory (VmHWM) and the load average before and after. The ratio is the
reference's wall time over torch's; a side that failed or made no call gets no ratio (`refused`
says why), as benchmarks/bench_harness.py refuses a figure without its work. The machine (CPU
model, cores, AVX-512 flags), NumPy's BLAS and the packages' versions are in the record.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # linear_probe beside it, however this file is loaded

import linear_probe as lp  # noqa: E402

from xentcheck.problems.linear import timing  # noqa: E402
from xentcheck.run.environment import fingerprint  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TORCH = {"backend": "torch", "impl": "linear_then_cross_entropy", "mode": "eager"}
TARGET_TIME = 3.0  # the target at 4096 rows (2x at 1024)


def blas() -> dict:
    """NumPy's BLAS as its build reports it (the reference's products run there), and the kernels
    a DYNAMIC_ARCH OpenBLAS chose at run time (the build's configuration names its build target)."""
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]["blas"]  # type: ignore[func-returns-value]
        out = {k: deps.get(k) for k in ("name", "version", "openblas configuration")}
    except Exception as exc:  # a NumPy without the dict form
        return {"error": f"{type(exc).__name__}: {exc}"}
    libs = sorted(Path(np.__file__).parent.parent.glob("numpy.libs/*openblas*"))
    for lib in libs[:1]:
        try:
            so = ctypes.CDLL(str(lib))
            for name in ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"):
                if hasattr(so, name):
                    fn = getattr(so, name)
                    fn.restype = ctypes.c_char_p
                    out["runtime_core"] = fn().decode()
                    break
        except OSError:
            pass
    return out


def refusal(torch_row: dict, ref_row: dict) -> str | None:
    """Why the two sides give no ratio (None: they do): a side that did not finish or made no call."""
    for name, row in (("torch float32", torch_row), ("reference", ref_row)):
        if row.get("status") != "ok":
            return f"the {name} side failed: {row.get('reason', 'no reason given')}"
        if not row.get("seconds"):
            return f"the {name} side made no call"
    if ref_row.get("verdict") in (None, ""):
        return "the reference side made no comparison"
    return None


def side(request: dict, config: lp.ProbeConfig) -> dict:
    load = os.getloadavg()
    print(f"{request.get('backend') or ''}{request['impl']}: load average {load[0]:.2f} ...", flush=True)
    row = lp.run_probe(request, config)
    row["load_average"] = {"before": [round(x, 2) for x in load], "after": [round(x, 2) for x in os.getloadavg()]}
    print(json.dumps({k: row.get(k) for k in ("impl", "status", "seconds", "cpu_seconds", "hwm", "verdict",
                                                "reason", "load_average")}), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="4096x2048x128256", help="N x D x V")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=0, help="calls after the first (median of all quoted)")
    ap.add_argument("--no-floor", dest="floor", action="store_false",
                    help="skip the third side: the reference's BLAS products alone (its floor)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/linear_ref_vs_torch-SHAPE-DATE.json)")
    args = ap.parse_args(argv)
    try:
        n, d, v = timing.parse(args.shape)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = lp.ProbeConfig(threads=args.threads, repeats=args.repeats)
    shape = {"dtype": "float32", "n": n, "d": d, "v": v}
    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg()
    torch_row = side({**TORCH, **shape}, config)
    ref_row = side({"impl": lp.REFERENCE, "mode": "", **shape}, config)
    floor_row = side({"impl": lp.PRODUCTS, "mode": "", **shape}, config) if args.floor else None
    if ref_row.get("status") == "ok" and "peak_bytes" in ref_row:
        ref_row["peak_over_io"] = lp.peak_over_io(ref_row)
    why = refusal(torch_row, ref_row)
    target = TARGET_TIME if n >= 4096 else 2.0  # the targets: 3x at 4096 rows, 2x at 1024
    data: dict = {
        "created": started.isoformat(timespec="seconds"), "kind": "linear-ce reference vs torch float32",
        "shape": f"{n}x{d}x{v}", "threads": args.threads, "repeats": args.repeats,
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
        "machine": fingerprint(), "numpy_blas": blas(),
        "method": "one fresh process per side (benchmarks/linear_probe.py), torch first; seconds of the first "
                  "call after a warm-up on 8 x 16 x 64 (and `repeats` more: median); memory VmHWM of that process "
                  "(peak_bytes: above VmRSS before the inputs were made)",
        "torch_float32": torch_row, "reference": ref_row, "target": target}
    if floor_row is not None:
        data["products_alone"] = floor_row
        if floor_row.get("status") == "ok" and torch_row.get("status") == "ok" and torch_row.get("median"):
            data["floor_ratio"] = floor_row["median"] / torch_row["median"]
            data["floor_cpu_ratio"] = floor_row["cpu_median"] / torch_row["cpu_median"]
    if why:
        data["refused"] = why
        print(f"no ratio: {why}", flush=True)
    else:
        ratio = ref_row["median"] / torch_row["median"]
        cpu_ratio = ref_row["cpu_median"] / torch_row["cpu_median"]
        # a load above the cores makes wall seconds measure the neighbours: judge only a quiet run,
        # and then on the worse of the wall and CPU ratios
        busy = max(load_start[0], os.getloadavg()[0]) > (os.cpu_count() or 1)
        data.update(ratio=ratio, cpu_ratio=cpu_ratio, busy=busy,
                    target_met=None if busy else max(ratio, cpu_ratio) <= target,
                    peak_over_inputs_plus_outputs=ref_row.get("peak_over_io"))
        if busy:
            print("the machine was busy (load average above its cores): no verdict on the target", flush=True)
        print(f"reference {ref_row['median']:.1f} s, torch float32 {torch_row['median']:.1f} s: ratio {ratio:.2f} "
              f"(CPU seconds {data['cpu_ratio']:.2f}; target {target}); reference peak / (inputs + outputs) "
              f"{ref_row.get('peak_over_io', float('nan')):.2f}", flush=True)
        if "floor_ratio" in data:
            print(f"its BLAS products alone: {floor_row['median']:.1f} s, ratio {data['floor_ratio']:.2f} "  # type: ignore[index]
                  f"(CPU seconds {data['floor_cpu_ratio']:.2f})", flush=True)
    out = Path(args.out) if args.out else RESULTS / f"linear_ref_vs_torch-{n}x{d}x{v}-{started.date()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"written {out}")
    return 1 if why else 0


if __name__ == "__main__":
    sys.exit(main())
