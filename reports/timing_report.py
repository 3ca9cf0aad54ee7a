"""The timing report: timing.json, timing.md, and its figures (time vs N x K, ratio to the floor)."""

from __future__ import annotations

import json
from pathlib import Path

from xentcheck.reports.files import write_atomic

PHASE_TITLES = {"forward": "forward", "backward": "backward", "forward_backward": "fwd+bwd"}


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1e3:.3g}"


def _gib(nbytes: int | None, signed: bool = False) -> str:
    """GiB; "" for none (and for 0, unless `signed`: a difference of 0 is a figure)."""
    if nbytes is None or (not nbytes and not signed):
        return ""
    return f"{nbytes / 2**30:.3f}" if signed else f"{nbytes / 2**30:.2f}"


def _shape(row: dict) -> str:
    """A row's shape in timing.json files written before rows carried `shape`."""
    return f"{row['n']} x {row['k']}"


def _allocator(data: dict) -> str:
    alloc = data.get("allocator") or {}  # absent from timing.json files of earlier versions
    if not alloc:
        return "not recorded"
    env = ", ".join(f"{k}={v}" for k, v in alloc.get("env", {}).items())
    return f"{alloc.get('mode', '')}" + (f" ({env})" if env else "")


def render_md(data: dict) -> str:
    env = data.get("environment", {})
    bw = data.get("bandwidth", {})
    lines = ["# xentcheck timing", "",
             f"{data.get('created', '')}, {env.get('cpu', '')} ({env.get('cpu_count', '')} cores), "
             f"device {data.get('device', '')}, **{data.get('threads')} thread(s)** for every framework, "
             f"allocator {_allocator(data)}. "
             f"Copy bandwidth measured in this run: {bw.get('bytes_per_second', 0) / 1e9:.2f} GB/s ({bw.get('method', '')}).",
             "", f"Steady state: {data.get('method', {}).get('steady', '')}. "
             f"First call: {data.get('method', {}).get('first', '')}. "
             f"Floor: {data.get('method', {}).get('floor', '')}.", "",
             *([f"**Quick timing**: {data['method']['quick']}.", ""] if data.get("method", {}).get("quick") else []),
             "Times in ms per call: median (IQR) [min]; `x floor` is median / floor time; `!` marks a noisy figure. "
             "Shapes: N x K logits (linear-CE: N x D x V). Peak RSS: the worker's, during the variant; above start: "
             "that peak above the worker's resident set with the variant's inputs, and over the logits' N x K bytes.",
             "",
             "| backend | impl | mode | dtype | shape | floor ms | first fwd+bwd ms | forward | backward | fwd+bwd | "
             "x floor (fwd+bwd) | peak RSS GiB | above start GiB | / logits |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in data.get("rows", []):
        head = (f"| {r['backend']} | {r['impl']} | {r['mode']} | {r['dtype']} | {r.get('shape') or _shape(r)} | "
                f"{_ms(r.get('floor_seconds'))} |")
        if r.get("status") != "ok":
            lines.append(f"{head} {r.get('status')}: {r.get('reason', '')} ||||||||")
            continue
        ph = r["phases"]
        cells = []
        for name in PHASE_TITLES:
            s = ph.get(name)
            cells.append("n/a" if s is None else
                         f"{_ms(s['median'])} ({_ms(s['iqr'])}) [{_ms(s['min'])}]{' !' if s['noisy'] else ''}")
        fb = ph.get("forward_backward", {})
        over = r.get("extra_over_logits")
        lines.append(f"{head} {_ms(fb.get('first'))} | {' | '.join(cells)} | {fb.get('floor_ratio', 0):.1f} | "
                     f"{_gib(r.get('peak_rss_bytes'))} | {_gib(r.get('extra_bytes'), signed=True)} | "
                     f"{'' if over is None else f'{over:.2f}'} |")
    notes = sorted({n for r in data.get("rows", []) for n in r.get("notes", [])})
    if any(r.get("status") == "ok" and "backward" not in r["phases"] for r in data.get("rows", [])):
        notes.append("backward n/a: no kept forward to replay (TensorFlow's tf.function and XLA modes trace forward "
                     "and backward into one graph; torch's fused linear_cross_entropy is not replayed), or no "
                     "timing_fns (plugins, linear-CE adapters but torch's): forward+backward only.")
    lines += [""] + [f"- {n}" for n in notes]
    lines += ["", "Backends: " + "; ".join(f"{b.get('name')} {b.get('version', '')} "
                                           f"({', '.join(f'{k}={v}' for k, v in (b.get('settings') or {}).items())})"
                                           if b.get("status") == "ok" else f"{b.get('name')}: {b.get('reason', '')}"
                                           for b in data.get("backends", []))]
    return "\n".join(lines) + "\n"


def write(out_dir: Path, data: dict) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / "timing.json", json.dumps(data, indent=2) + "\n")
    write_atomic(out_dir / "timing.md", render_md(data))
    for name, fig in figures(data, as_png=True):
        (out_dir / name).write_bytes(fig)


def load(out_dir: Path) -> dict | None:
    path = Path(out_dir) / "timing.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None


def _series(data: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in data.get("rows", []):
        if r.get("status") == "ok" and "forward_backward" in r["phases"]:
            out.setdefault(f"{r['backend']} {r['impl']} {r['mode']} {r['dtype']}".replace("$", r"\$"), []).append(r)
    return out


def figures(data: dict, as_png: bool = False) -> list:
    """[(file name, PNG bytes)] when as_png, else the HTML report's figure dicts; [] without timings."""
    from xentcheck.reports.plots import _plt, _png
    series = _series(data)
    if not series:
        return []
    plt = _plt()
    fig, (ax_t, ax_r) = plt.subplots(1, 2, figsize=(11, 4))
    for label, rows in sorted(series.items()):
        rows = sorted(rows, key=lambda r: r["n"] * r["k"])
        x = [r["n"] * r["k"] for r in rows]
        ax_t.plot(x, [r["phases"]["forward_backward"]["median"] for r in rows], marker="o", ms=3, label=label)
        ax_r.plot(x, [r["phases"]["forward_backward"]["floor_ratio"] for r in rows], marker="o", ms=3, label=label)
    # one floor line per kind (a linear-CE workload's floor is not a function of N x K alone)
    floors: dict[str, set] = {}
    for rows in series.values():
        for r in rows:
            floors.setdefault(r.get("kind", ""), set()).add((r["n"] * r["k"], r["floor_seconds"]))
    for i, (kind, points) in enumerate(sorted(floors.items())):
        ax_t.plot(*zip(*sorted(points)), ("k--", "k:", "k-.")[i % 3], lw=1,
                  label="bandwidth floor" + (f" ({kind})" if len(floors) > 1 else ""))
    for ax, title, ylabel in ((ax_t, "forward+backward time", "seconds per call (median)"),
                              (ax_r, "ratio to the bandwidth floor", "median / floor")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("logits N x K (linear-CE: N x V)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
    ax_r.axhline(1, color="k", lw=0.8)
    ax_t.legend(fontsize=7)
    fig.tight_layout()
    caption = (f"Steady-state forward+backward per call, {data.get('threads')} thread(s) for every framework, allocator "
               f"{_allocator(data)}, against "
               f"the memory-bandwidth floor from the copy bandwidth measured in the same run "
               f"({data.get('bandwidth', {}).get('bytes_per_second', 0) / 1e9:.2f} GB/s). Every phase's median, IQR, "
               "min and first call are in timing.md / timing.json.")
    if as_png:
        import io
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        plt.close(fig)
        return [("timing.png", buf.getvalue())]
    return [{"title": "Timing (xentcheck bench)", "caption": caption, "src": _png(fig)}]
