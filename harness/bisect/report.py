"""bisect.json, bisect.md and bisect.png in --out: what was tested, and where it changed.

The report says what a regression report says: "worked up to X, stopped working in Y", both
versions' upload dates, the release-notes links from the package's metadata (Project-URL), the
error at each version tested, and the `pip freeze` difference between the two environments. It
is rewritten (atomically, reports/files.py) after every version tested; the plot at the end.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING

from xentcheck.problems import OUTPUT_TITLES
from xentcheck.reports.files import write_atomic

if TYPE_CHECKING:
    from xentcheck.bisect.hunt import Hunt, Step

FORMAT = 1
_NOTES = re.compile(r"change|release|news|history|what.?s.?new", re.I)
_SOURCE = re.compile(r"source|repository|code|github|home", re.I)
_GITHUB = re.compile(r"^https?://github\.com/([^/\s]+)/([^/\s#?]+)")


def freeze_diff(good: dict[str, str], bad: dict[str, str]) -> list[dict]:
    """Every package whose version differs between two environments (None: not installed)."""
    return [{"name": n, "good": good.get(n), "bad": bad.get(n)}
            for n in sorted(set(good) | set(bad)) if good.get(n) != bad.get(n)]


def release_links(project_urls: dict[str, str]) -> list[dict]:
    """The package's release-notes links: its changelog-like Project-URLs, else its source, with
    a GitHub repository's releases page."""
    notes = [{"label": k, "url": u} for k, u in project_urls.items() if _NOTES.search(k) or _NOTES.search(u)]
    if notes:
        return notes
    out: list[dict] = []
    for u in project_urls.values():
        m = _GITHUB.match(u)
        link = {"label": "releases", "url": m.group(0).removesuffix(".git") + "/releases"} if m else None
        if link and link not in out:
            out.append(link)
    return out or [{"label": k, "url": u} for k, u in project_urls.items() if _SOURCE.search(k)]


def _step(hunt: Hunt, s: Step) -> dict:
    env = s.env
    return {"version": s.version, "upload_time": _uploaded(hunt, s.version), "order": s.order,
            "verdict": s.outcome.verdict, "reason": s.outcome.reason, "errors": s.outcome.errors,
            "counts": s.outcome.counts, "run_seconds": s.run_seconds,
            "env": {"path": env.path, "status": env.status, "policy": env.policy, "reused": env.reused,
                    "installer": env.installer, "build_seconds": env.build_seconds, "size_bytes": env.size_bytes,
                    "reason": env.reason}}


def _uploaded(hunt: Hunt, version: str) -> str | None:
    release = hunt.releases.get(version)
    return release.upload_time if release else None


def build(hunt: Hunt) -> dict:
    """The JSON report."""
    c = hunt.c
    steps = [hunt.steps[v] for v in hunt.versions if v in hunt.steps]
    built = [s for s in steps if not s.env.reused]
    data: dict = {
        "format": FORMAT,
        "command": c.command,
        "package": c.package,
        "status": hunt.status,  # running, found, good-is-bad, bad-is-good, untestable, interrupted
        "message": hunt.message,
        "mode": "sweep" if c.sweep else "bisect",
        "subject": c.subject,
        "rule": ({"metric": c.rule.metric, "factor": c.rule.factor, "floor": c.rule.floor} if c.rule
                 else {"bad_verdicts": list(c.bad_verdicts)}),
        "index": c.index.describe(),
        "installer": c.installer.kind,
        "python": {"path": c.python.path, "version": ".".join(map(str, c.python.version))},
        "with": list(c.with_pins.values()),
        "range": {"good": hunt.versions[0] if hunt.versions else None,
                  "bad": hunt.versions[-1] if hunt.versions else None,
                  "candidates": hunt.versions, "left_out": hunt.left_out, "bound": hunt.bound},
        "tested": [_step(hunt, s) for s in steps],
        "builds": {"tested": len(steps), "built": len(built), "reused": len(steps) - len(built),
                   "build_seconds": round(sum(s.env.build_seconds for s in built), 1),
                   "run_seconds": round(sum(s.run_seconds for s in steps), 1),
                   "disk_bytes": hunt.disk_bytes(), "cache": str(c.cache)},
        "seconds": round(time.monotonic() - hunt.started, 1),
        "transitions": [],
        "result": None,
    }
    for t in hunt.transitions:
        data["transitions"].append({"kind": t.kind, "before": hunt.versions[t.before], "after": hunt.versions[t.after],
                                    "skipped": [hunt.versions[j] for j in t.skipped]})
    headline = hunt.headline() if hunt.status == "found" else None
    if headline is not None:
        t = headline
        before, after = hunt.steps[hunt.versions[t.before]], hunt.steps[hunt.versions[t.after]]
        data["result"] = {
            "last_good": {"version": before.version, "upload_time": _uploaded(hunt, before.version)},
            "first_bad": {"version": after.version, "upload_time": _uploaded(hunt, after.version)},
            "undecided": [hunt.versions[j] for j in t.skipped],
            "freeze_diff": freeze_diff(before.env.freeze, after.env.freeze),
            "release_notes": release_links(after.env.project_urls),
        }
    return data


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def markdown(d: dict) -> str:
    pkg, r = d["package"], d["result"]
    lines = [f"# Bisect: {pkg}", ""]
    if r:
        lb, fb = r["last_good"], r["first_bad"]
        lines += [f"**{pkg} worked up to {lb['version']}** (uploaded {lb['upload_time'] or 'date unknown'}) "
                  f"**and stopped working in {fb['version']}** (uploaded {fb['upload_time'] or 'date unknown'}).", ""]
        if r["undecided"]:
            lines += [f"The change may also be in {', '.join(r['undecided'])}, which could not be tested.", ""]
        if r["release_notes"]:
            lines += ["Release notes: " + ", ".join(f"[{n['label']}]({n['url']})" for n in r["release_notes"]), ""]
    elif d["message"]:
        lines += [f"**{d['message']}**", ""]
    if len(d["transitions"]) > 1:
        lines += ["Every change of verdict:", ""]
        lines += [f"- {t['kind']}: {t['before']} -> {t['after']}" + (f" (untested between: {', '.join(t['skipped'])})"
                                                                       if t["skipped"] else "") for t in d["transitions"]]
        lines.append("")
    subject = d["subject"]
    rule = d["rule"]
    judged = (f"{rule['metric']} grown more than {rule['factor']:g} x the good version's while above {rule['floor']:g}"
              if "metric" in rule else f"a result {' or '.join(rule['bad_verdicts'])}")
    lines += ["## What was bisected", "",
              f"- command: `{d['command']}`",
              f"- cases: {', '.join(f'`{x}`' for x in subject.get('cases', []))}",
              f"- backends: {', '.join(subject.get('backends', []))}; implementations: "
              f"{', '.join(subject.get('impls') or ['default'])}; modes: {', '.join(subject.get('modes') or ['default'])}",
              f"- a version is bad with {judged}",
              f"- {d['mode']} over {len(d['range']['candidates'])} versions from {d['range']['good']} to {d['range']['bad']}"
              + (f" (with {', '.join(d['with'])})" if d["with"] else ""),
              f"- Python {d['python']['version']}; {d['installer']}; index: {d['index']}", ""]
    metric = rule.get("metric", "ulp_err")
    shown = list(dict.fromkeys(w for s in d["tested"] for w in s["errors"]))  # the cases' declared outputs
    lines += ["## Versions tested", "",
              "| " + " | ".join(["version", "uploaded", "verdict", *(f"{OUTPUT_TITLES.get(w, w)} {metric}" for w in shown),
                                  "environment", "why"]) + " |", "|" + "---|" * (len(shown) + 5)]
    for s in d["tested"]:
        env = s["env"]
        how = "cached" if env["reused"] else f"built in {env['build_seconds']:.1f} s"
        if env["policy"] == "relaxed":
            how += "; its dependencies unpinned"
        why = s["reason"].replace("|", "\\|").replace("\n", " ")[:300]
        errs = "".join(f"{_num(s['errors'].get(w))} | " for w in shown)
        lines.append(f"| {s['version']} | {(s['upload_time'] or '')[:10]} | {s['verdict']} | {errs}{how} | {why} |")
    untested = [v for v in d["range"]["candidates"] if v not in {s["version"] for s in d["tested"]}]
    lines += ["", f"Not tested: {', '.join(untested) or 'none'}."]
    if d["range"]["left_out"]:
        lines += ["Left out of the range: " + "; ".join(f"{v} ({why})" for v, why in d["range"]["left_out"].items()) + "."]
    if r:
        lines += ["", f"## Packages that differ ({r['last_good']['version']} -> {r['first_bad']['version']})", ""]
        lines += [f"- {x['name']}: {x['good'] or 'absent'} -> {x['bad'] or 'absent'}" for x in r["freeze_diff"]] or ["- none"]
    b = d["builds"]
    lines += ["", "## Cost", "",
              f"{b['tested']} versions tested ({b['built']} environments built in {b['build_seconds']:.1f} s, "
              f"{b['reused']} reused from {b['cache']}; at most {d['range']['bound']} builds for a bisection without "
              f"skips), cases run in {b['run_seconds']:.1f} s, {d['seconds']:.1f} s in all; the environments take "
              f"{_mib(b['disk_bytes'])} on disk (a file hard-linked into several counted once).", ""]
    return "\n".join(lines)


def write(hunt: Hunt, final: bool = False) -> None:
    """bisect.json and bisect.md; at the end, bisect.png too."""
    out = hunt.c.out
    data = build(hunt)
    write_atomic(out / "bisect.json", json.dumps(data, indent=1) + "\n")
    write_atomic(out / "bisect.md", markdown(data))
    if final and data["tested"]:
        from xentcheck.bisect.plot import draw
        try:
            draw(data, out / "bisect.png")
        except Exception as exc:  # the figure is an aid: never lose the report to it
            hunt.say(f"warning: bisect.png not drawn: {type(exc).__name__}: {exc}")
