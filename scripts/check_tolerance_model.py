"""Is the error-model tolerance tighter than the fixed tables, without false alarms?

    python scripts/check_tolerance_model.py RESULTS_DIR [--seed 0]

Part 1 (tightness) needs no backend: for every case of the default suite it computes the
reference and each preset's per-element allowed error, and prints the median over elements of
allowed(model) / allowed(preset) per dtype and output (< 1: the model is tighter).

Part 2 (alarms) reads a results folder of the default suite run with any preset: every record
stores max(|error| / allowed) under each preset (`excess`), so it lists the results the model
fails, the ones it fails that the other presets pass ("new alarms" to explain) and the findings
of the default preset that the model lets through ("misses").
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xentcheck.core.cases import default_suite, make_inputs  # noqa: E402
from xentcheck.core.dtypes import DTYPE_NAMES, info  # noqa: E402
from xentcheck.core.tolerances import PRESETS, allowed, default_table  # noqa: E402
from xentcheck.problems.ce import error_model  # noqa: E402
from xentcheck.problems.ce.metrics import natural_scales  # noqa: E402
from xentcheck.problems.ce.reference import reference  # noqa: E402
from xentcheck.reports.files import read_results  # noqa: E402

OTHERS = ("xentcheck", "torch", "jax", "tensorflow")


def tightness(seed: int) -> dict:
    ratios: dict[tuple, list[float]] = defaultdict(list)
    for case in default_suite():
        ref = reference(case, make_inputs(case, seed))
        d = info(case.dtype)
        bounds = error_model.bounds(case, ref.logits, ref.q, d.eps, 2.0 ** d.min_exp)
        scales = natural_scales(case, ref)
        for i, (what, expected) in enumerate((("loss", ref.loss), ("grad", ref.grad))):
            exp64 = np.asarray(expected, dtype=np.float64)
            model = np.broadcast_to(bounds[i], exp64.shape)
            for name in OTHERS:
                rtol, atol = default_table(name, case.dtype, what)
                other = np.broadcast_to(allowed(PRESETS[name]["kind"], rtol, atol, exp64, scales[i], None), exp64.shape)
                ok = other > 0
                if ok.any():
                    ratios[(case.dtype, what, name)].append(float(np.median(model[ok] / other[ok])))
    return {k: statistics.median(v) for k, v in ratios.items()}


def alarms(results_dir: Path) -> dict:
    out = {"model_fails": [], "new_alarms": [], "misses": []}
    for r in read_results(results_dir / "results.jsonl"):
        if r["verdict"] == "nonfinite":
            continue  # NaN/inf mismatches fail under every tolerance
        ex = {w: {k: float(v) for k, v in (r.get(w) or {}).get("excess", {}).items()} for w in ("loss", "grad")}
        if not ex["loss"]:
            continue
        fails = {name: any(ex[w].get(name, 0) > 1 for w in ex) for name in ("model", *OTHERS)}
        row = (r["backend"], r["case_id"], {w: round(ex[w].get("model", 0), 3) for w in ex},
               {w: round(ex[w].get("xentcheck", 0), 3) for w in ex})
        if fails["model"]:
            out["model_fails"].append(row)
            if not fails["xentcheck"]:
                out["new_alarms"].append(row)
        elif fails["xentcheck"]:
            out["misses"].append(row)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("results_dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print("median over cases of median_elements(allowed_model / allowed_preset); < 1 means the model is tighter")
    t = tightness(args.seed)
    print(f"{'dtype':<9} {'output':<6} " + " ".join(f"{n:>11}" for n in OTHERS))
    for d in DTYPE_NAMES:
        for w in ("loss", "grad"):
            print(f"{d:<9} {w:<6} " + " ".join(f"{t.get((d, w, n), float('nan')):>11.3g}" for n in OTHERS))
    a = alarms(args.results_dir)
    for key, title in (("model_fails", "results the model fails (NaN/inf mismatches left out)"),
                       ("new_alarms", "of which the xentcheck default passes"),
                       ("misses", "default-preset findings the model passes")):
        print(f"\n{title}: {len(a[key])}")
        for backend, cid, model, default in a[key]:
            print(f"  {backend:<11} {cid:<40} excess model {json.dumps(model)} xentcheck {json.dumps(default)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
