"""The HTML report's figures, drawn with matplotlib (Agg) and embedded as base64 PNG data URIs.

Each function returns {"title", "caption", "src"} or None when the run has no data for it.
"""

from __future__ import annotations

import base64
import io
import math
from collections import defaultdict

from xentcheck.core.cases import SCALES
from xentcheck.core.dtypes import DTYPE_NAMES
from xentcheck.core.records import Result
from xentcheck.problems import OUTPUT_NAMES, output_specs
from xentcheck.reports.blame import scaled_error

FLOOR = 1e-3  # errors of exactly 0 drawn here on log axes
TITLES = {o.name: o.label for o in output_specs()}  # every kind's declared outputs
COLORS = ("tab:orange", "tab:blue", "tab:green", "tab:red", "tab:purple", "tab:brown")


def _outputs(records: list[Result]) -> list[str]:
    """The declared outputs some record has metrics of, in the registry's order."""
    return [w for w in OUTPUT_NAMES if any(r.metrics.get(w) for r in records)]


def _measured(r: Result) -> bool:
    """Whether the record has metrics of a gradient (an output that came back and was compared)."""
    return any(r.metrics.get(w) for w in OUTPUT_NAMES[1:])


def _log_axes(ax, x: bool = True, y: bool = True) -> None:
    """Log scales with ticks at the decades only: every axis here spans several decades, and the
    minor ticks (a tick object and a label layout each) were half of the report's drawing time."""
    from matplotlib.ticker import NullLocator
    for on, axis, set_scale in ((x, ax.xaxis, ax.set_xscale), (y, ax.yaxis, ax.set_yscale)):
        if on:
            set_scale("log")
            axis.set_minor_locator(NullLocator())


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "figure.dpi": 100})
    return plt


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    _plt().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _shared_legend(fig, axes, top: float, ncol: int | None = None) -> None:
    """One legend above the panels, which all draw the same series (in `ncol` columns, default
    one row), then the layout."""
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", ncol=ncol or len(labels), bbox_to_anchor=(0.5, top))
    fig.tight_layout()


def _dtypes(records: list[Result]) -> list[str]:
    return [d for d in DTYPE_NAMES if any(r.dtype == d for r in records)]


def _safe(text: str) -> str:
    """Backend names as literal text: '$' would start matplotlib mathtext."""
    return str(text).replace("$", r"\$")


def _label(r: Result) -> str:
    return _safe(str(r.backend))


def figures(records: list[Result], matrix: dict) -> list[dict]:
    """The run's figures for the HTML report, in order (those without data left out)."""
    return [f for f in (error_vs_scale(records), ulp_histograms(records),
                        blame_heatmaps(matrix) if matrix["backends"] else None, timings(records)) if f]


def error_vs_scale(records: list[Result]) -> dict | None:
    """Scaled error of each output against the logits' scale: a row of panels per output (the
    loss, then every kind's gradients), one panel per dtype."""
    rows = [r for r in records if str(r.family).startswith("scale") and _measured(r)]
    if not rows:
        return None
    plt = _plt()
    dts, outputs = _dtypes(rows), _outputs(rows)
    fig, axes = plt.subplots(len(outputs), len(dts), figsize=(3.2 * len(dts) + 1, 2.8 * len(outputs)), squeeze=False,
                             sharex=True)
    backends = sorted({_label(r) for r in rows})
    for col, d in enumerate(dts):
        for row, what in enumerate(outputs):
            ax = axes[row][col]
            for b in backends:
                pts = defaultdict(list)
                for r in rows:
                    m = r.metrics.get(what)
                    if r.dtype == d and _label(r) == b and m:
                        e = scaled_error(m)
                        if e is not None:
                            pts[float(str(r.family)[len("scale"):])].append(max(e, FLOOR))
                if pts:
                    xs = sorted(pts)
                    ax.plot(xs, [max(pts[x]) for x in xs], marker="o", ms=3, label=b)
            ax.axhline(8, color="grey", ls="--", lw=0.8)
            _log_axes(ax)
            ax.set_title(f"{d} {TITLES[what]}")
            if col == 0:
                ax.set_ylabel("max error / (u (scale + |ref|))")
            if row == len(outputs) - 1:
                ax.set_xlabel("logit scale s (uniform in [-s, s])")
    _shared_legend(fig, axes, 1.04)
    return {"title": "Error against logit scale", "src": _png(fig),
            "caption": "Largest error over each scale family's results, in units of roundoff u of the "
                       "output's natural scale plus its magnitude. The dashed line is the default tolerance "
                       f"(8 u). Families: scale{', scale'.join(SCALES)}; errors of 0 are drawn at {FLOOR:g}."}


def ulp_histograms(records: list[Result]) -> dict | None:
    """Histograms of sampled per-element errors, per backend (rows) and dtype (columns)."""
    import numpy as np

    rows = [r for r in records if _measured(r)]
    if not rows:
        return None
    plt = _plt()
    dts, outputs = _dtypes(rows), _outputs(rows)
    backends = sorted({_label(r) for r in rows})
    fig, axes = plt.subplots(len(backends), len(dts), figsize=(3.0 * len(dts) + 1, 1.9 * len(backends) + 0.8),
                             squeeze=False, sharex=True)
    bins = np.logspace(-3, 6, 37)
    for i, b in enumerate(backends):
        for j, d in enumerate(dts):
            ax = axes[i][j]
            zeros = []
            for what, color in zip(outputs, COLORS):
                every = [abs(v) for r in rows if _label(r) == b and r.dtype == d and (m := r.metrics.get(what))
                         for v in m.sample_ulp or [] if v is not None]
                vals = [v for v in every if v > 0]
                if every:
                    zeros.append(f"{TITLES[what]} {100 * (len(every) - len(vals)) / len(every):.0f}%")
                if vals:
                    # stepfilled: one polygon per histogram, not a patch per bar (a third of the report's drawing time)
                    ax.hist(np.clip(vals, bins[0], bins[-1]), bins=bins, color=color, alpha=0.6, label=TITLES[what],
                            histtype="stepfilled")
            if zeros:
                ax.text(0.98, 0.95, "exact: " + ", ".join(zeros), transform=ax.transAxes, ha="right", va="top",
                        fontsize=7, color="#444")
            _log_axes(ax, y=False)
            ax.axvline(8, color="grey", ls="--", lw=0.8)
            if i == 0:
                ax.set_title(d)
            if j == 0:
                ax.set_ylabel(b)
            if i == len(backends) - 1:
                ax.set_xlabel("|error| in ULP")
    _shared_legend(fig, axes, 1.03, ncol=len(outputs))
    return {"title": "ULP error histograms", "src": _png(fig),
            "caption": "Per-element errors on the sampled elements (up to 32 per output and result, the same "
                       "positions for every backend), in ULPs of the tested dtype at max(|reference|, natural "
                       f"scale). Exact elements are left out and their share printed in each panel; errors below "
                       f"{FLOOR:g} ULP are counted in the first bin; the dashed line is 8 ULP."}


def blame_heatmaps(matrix: dict) -> dict | None:
    import numpy as np

    names = [_safe(n) for n in matrix["backends"]]
    keys = matrix["backends"]
    if len(names) < 1:
        return None
    plt = _plt()
    outputs = list(matrix["outputs"])  # every output some result has (blame.build)
    fig, axes = plt.subplots(1, len(outputs), figsize=(5.2 * len(outputs), 0.75 * len(names) + 2.4), squeeze=False)
    for ax, what in zip(axes[0], outputs):
        o = matrix["outputs"][what]
        grid = np.full((len(names), len(names)), np.nan)
        text = [["" for _ in names] for _ in names]
        for i, a in enumerate(keys):
            for j, b in enumerate(keys):
                cell = o["reference_sampled"][a] if a == b else o["pairs"].get(a, {}).get(b)
                if cell and cell.get("mean") is not None:
                    grid[i, j] = max(cell["mean"], FLOOR)
                    text[i][j] = f"{cell['mean']:.2g}\n({cell['max']:.2g})"
        im = ax.imshow(np.log10(grid), cmap="magma_r", vmin=-3, vmax=max(1.0, np.nanmax(np.log10(grid)) if
                                                                         np.isfinite(grid).any() else 1.0))
        for i in range(len(names)):
            for j in range(len(names)):
                if text[i][j]:
                    ax.text(j, i, text[i][j], ha="center", va="center", fontsize=8,
                            color="white" if grid[i, j] > 10 else "black")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_yticks(range(len(names)), names)
        blame = o.get("blame")
        ax.set_title(f"{TITLES[what]}: furthest from reference = {_safe(blame)}")
        fig.colorbar(im, ax=ax, label="log10 mean |difference| (ULP)", shrink=0.8)
    fig.tight_layout()
    return {"title": "Discrepancy matrix", "src": _png(fig),
            "caption": "Off the diagonal: mean (max) |a - b| between two backends on the sampled elements (up to 32 "
                       "per output and result, the same positions for both) of the cases both computed, in ULPs of "
                       "the dtype at max(|reference|, natural scale). Diagonal: mean (max) |backend - reference| on "
                       "the same elements. The backend named in each title is the furthest from the reference over "
                       "every element (mean over results of the largest error in u of the scale)."}


def timings(records: list[Result]) -> dict | None:
    rows = [r for r in records if (r.timing or {}).get("compute_seconds")]
    if not rows:
        return None
    plt = _plt()
    dts = _dtypes(rows)
    fig, axes = plt.subplots(1, len(dts), figsize=(3.2 * len(dts) + 1, 3.2), squeeze=False, sharey=True)
    for ax, d in zip(axes[0], dts):
        for b in sorted({_label(r) for r in rows}):
            pts = [(_elements(r), (r.timing or {})["compute_seconds"]) for r in rows
                   if r.dtype == d and _label(r) == b and _elements(r)]  # an empty batch has no place on a log axis
            if pts:
                ax.scatter(*zip(*pts), s=10, label=b, alpha=0.8)
        _log_axes(ax)
        ax.set_title(d)
        ax.set_xlabel("elements N x K (x d1 ...)")
    axes[0][0].set_ylabel("compute seconds")
    _shared_legend(fig, axes, 1.08)
    return {"title": "Timings", "src": _png(fig),
            "caption": "Seconds spent in each backend's compute call (forward and backward, first call included, "
                       "so framework warm-up and compilation show up on the first case of each shape)."}


def _elements(r: Result) -> int:
    """The logits' size: N x K, times the extra dimensions where the case has them."""
    return (r.n or 0) * (r.k or 0) * math.prod(r.extra or [])
