"""bisect.png: the error at each version tested, against the version (matplotlib, imported here only)."""

from __future__ import annotations

import math
import os
from pathlib import Path

COLOURS = {"good": "tab:green", "bad": "tab:red", "skip": "tab:gray"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # one per output (cycled past the last)
FLOOR = 1e-3  # an error of exactly 0 is drawn here on the log axis


def draw(data: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tested = data["tested"]
    metric = data["rule"].get("metric", "ulp_err")
    names = [s["version"] for s in tested]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.55 * len(names) + 2), 3.6))
    finite = [e for s in tested for e in s["errors"].values() if e is not None and math.isfinite(e)]
    top = max(finite + [1.0]) * 10
    from xentcheck.problems import OUTPUT_TITLES
    shown = list(dict.fromkeys(w for s in tested for w in s["errors"]))  # the cases' declared outputs
    for what, marker in zip(shown, MARKERS * len(shown)):
        xs, ys = [], []
        for x, s in enumerate(tested):
            e = s["errors"].get(what)
            if e is not None:
                xs.append(x)
                ys.append(max(e, FLOOR) if math.isfinite(e) else top)
        ax.plot(xs, ys, color="0.6", lw=0.8, zorder=1)
        ax.scatter(xs, ys, marker=marker, c=[COLOURS[tested[x]["verdict"]] for x in xs], zorder=2,
                   label=f"{OUTPUT_TITLES.get(what, what)} {metric}")
    skips = [x for x, s in enumerate(tested) if s["verdict"] == "skip"]
    if skips:
        ax.scatter(skips, [FLOOR] * len(skips), marker="x", color=COLOURS["skip"], label="skipped (not testable)")
    result = data.get("result")
    if result:
        a, b = names.index(result["last_good"]["version"]), names.index(result["first_bad"]["version"])
        ax.axvline((a + b) / 2, color="tab:red", ls="--", lw=1, label=f"first bad: {result['first_bad']['version']}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_xlabel(f"{data['package']} version (tested ones, oldest first)")
    ax.set_ylabel(f"worst {metric} (inf drawn at the top)")
    ax.set_title(f"{data['package']}: error against version (green good, red bad)")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")  # readers never see half a figure
    fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    os.replace(tmp, path)
