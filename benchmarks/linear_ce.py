"""Linear-CE benchmark (issue 18 item 6): torch's implementations and the xentcheck reference,
forward+backward time and peak memory, each in a fresh process; JSON under benchmarks/results/.

    python benchmarks/linear_ce.py --shapes 256x2048x128256 --dtypes float32,bfloat16 --threads 2

The same measurement as `xentcheck bench --linear-shapes ...`; docs/performance.md has the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

from xentcheck.problems.linear import bench as lb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="64x512x32000,256x2048x128256", help="N x D x V, comma-separated")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--impls", default=",".join(lb.TORCH_IMPLS), help="torch linear impls ('' for none)")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/linear_ce-HOST-DATE.json)")
    args = ap.parse_args()
    config = lb.LinearBenchConfig(shapes=lb.parse_linear_shapes(args.shapes), dtypes=args.dtypes.split(","),
                                  variants=[("torch", i, "eager") for i in args.impls.split(",") if i],
                                  reference=not args.no_reference, threads=args.threads, repeats=args.repeats)
    data = lb.run_linear_bench(config, progress=lambda r: print(json.dumps({k: r.get(k) for k in (
        "impl", "dtype", "n", "d", "v", "status", "median", "extra_bytes", "peak_bytes", "reason")}), flush=True))
    out = Path(args.out) if args.out else (Path(__file__).parent / "results" /
                                           f"linear_ce-{platform.node()}-{data['created'][:10]}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1) + "\n")
    print("\n".join(lb.summary_lines(data)))
    print(f"written {out}")


if __name__ == "__main__":
    main()
