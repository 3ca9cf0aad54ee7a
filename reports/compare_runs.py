"""Comparing two results folders (`xentcheck compare BASE NEW`): regressions, improvements,
new and missing results, and both environments side by side.

Results are matched by (case id, backend, implementation, mode, dtype). A regression is a result
that was fine in BASE (pass or skipped) and is bad in NEW (known differences count by their
original verdict), or one that passes on both
sides while its error grew by more than `factor` (measured by `metric`, ULPs of the tested dtype
by default, for the loss and the gradient separately; growth while the new error is at most
`floor` is noise and ignored); for every output the result's kind declares (xentcheck.problems:
the loss and gradient; the loss, dh, dW and db of linear-CE). An improvement is the reverse. A result present on one side only
is new or missing.

Results are matched by case id alone, so the comparison means something only when both runs used
the same settings: a case id names a seeded draw of inputs. The settings that change what a case id
holds or how it is judged (seed, suite, dtypes, tolerances, device, from each summary.json) are
compared, and every difference is a warning in the report and on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

from xentcheck.core.metrics import BAD_VERDICTS
from xentcheck.core.records import Result
from xentcheck.core.tolerances import TOLERANCE_ROWS
from xentcheck.problems import OUTPUT_NAMES

METRICS = ("ulp_err", "rel_err", "abs_err")
# run settings that change what a case id holds or how its result is judged, and why each matters
SETTINGS = {
    "seed": "the same case ids held other inputs",
    "suite": "other implementations and modes were checked",
    "dtypes": "other dtypes were tested",
    "tolerances": "the verdicts were judged by other tolerances",
    "device": "the backends ran on another device",
}


def key(r: Result) -> tuple[str, str, str, str, str]:
    return (str(r.case_id), str(r.backend), r.impl or "", r.mode or "", str(r.dtype))


def load(folder: Path) -> tuple[list[Result], dict]:
    """A results folder's records and context; ResultsFileError (a ValueError) when a file is broken."""
    from xentcheck.reports.files import read_results, read_summary

    folder = Path(folder)
    records = read_results(folder / "results.jsonl")
    summary = read_summary(folder / "summary.json")
    env_file = folder / "environment.json"
    env = read_summary(env_file) if env_file.exists() else summary.get("environment", {})
    return records, {"summary": summary, "environment": env}


def _growth(b: Result, n: Result, metric: str, factor: float, floor: float) -> list[dict]:
    out: list[dict] = []
    for what in OUTPUT_NAMES:  # each output a record has metrics of, whatever its kind
        bm, nm = _metric(b, what, metric), _metric(n, what, metric)
        if bm is None or nm is None:
            continue
        ratio = nm / bm if bm > 0 else (float("inf") if nm > 0 else 1.0)
        out.append({"output": what, "base": bm, "new": nm, "ratio": ratio})
    return [g for g in out if (g["ratio"] > factor and g["new"] > floor) or
            (g["ratio"] < 1 / factor and g["base"] > floor)]


def _metric(r: Result, what: str, metric: str) -> float | None:
    m = r.metrics.get(what)
    return None if m is None else getattr(m, metric)


def compare_runs(base: list[Result], new: list[Result], factor: float = 2.0, metric: str = "ulp_err",
                 floor: float = 1.0) -> dict:
    from xentcheck.regress.known import unapply

    # known differences count by their original verdict: whether a run was given --known must not
    # make or hide a regression, and a newly appearing known difference is still a change
    bmap, nmap = {key(r): unapply(r) for r in base}, {key(r): unapply(r) for r in new}
    regressions, improvements, changed = [], [], []
    for k, n in nmap.items():
        b = bmap.get(k)
        if b is None:
            continue
        bv, nv = b.verdict, n.verdict
        entry = {"key": list(k), "base_verdict": bv, "new_verdict": nv, "reasons": n.reasons or []}
        if bv not in BAD_VERDICTS and nv in BAD_VERDICTS:
            regressions.append({**entry, "kind": "verdict"})
        elif bv in BAD_VERDICTS and nv not in BAD_VERDICTS:
            improvements.append({**entry, "kind": "verdict", "reasons": b.reasons or []})
        elif bv in BAD_VERDICTS and nv in BAD_VERDICTS and bv != nv:
            changed.append({**entry, "kind": "verdict"})
        elif bv == nv == "pass":
            for g in _growth(b, n, metric, factor, floor):
                item = {**entry, "kind": "error", **g, "metric": metric}
                (regressions if g["ratio"] > 1 else improvements).append(item)
    return {
        "factor": factor, "metric": metric, "floor": floor,
        "matched": len(set(bmap) & set(nmap)),
        "regressions": regressions, "improvements": improvements, "changed": changed,
        "new": [list(k) for k in nmap if k not in bmap],
        "missing": [list(k) for k in bmap if k not in nmap],
    }


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        elif isinstance(v, list):
            out[f"{prefix}{k}"] = " ".join(map(str, v)) if k == "cpu_flags" else json.dumps(v)
        else:
            out[f"{prefix}{k}"] = v
    return out


def environment_diff(base_env: dict, new_env: dict) -> list[dict]:
    """Every fingerprint field on both sides, flattened (packages.torch, backends.jax.settings.x64...)."""
    b, n = _flatten(base_env), _flatten(new_env)
    return [{"field": f, "base": b.get(f), "new": n.get(f), "differs": b.get(f) != n.get(f)}
            for f in sorted(set(b) | set(n))]


def _settings(summary: dict) -> dict:
    """SETTINGS of a run from its summary.json; tolerances by preset, then by each dtype's values
    ("tolerances float32 loss rtol"); None where the summary does not record one."""
    def part(d: object, k: str) -> dict:
        v = d.get(k) if isinstance(d, dict) else None
        return v if isinstance(v, dict) else {}

    config, tol = part(summary, "config"), part(summary, "tolerances")
    out = {"seed": config.get("seed"), "suite": config.get("suite"), "dtypes": config.get("dtypes"),
           "tolerances": tol.get("preset"), "device": config.get("device")}
    for dtype, entry in part(tol, "dtypes").items():
        for output in TOLERANCE_ROWS:
            for which in ("rtol", "atol"):
                out[f"tolerances {dtype} {output} {which}"] = part(entry, output).get(which)
    return out


def setting_differences(base_summary: dict, new_summary: dict) -> list[dict]:
    """The SETTINGS in which two runs differ, with both values. Tolerance values count only
    between runs of one preset (other presets differ in every value) and for the dtypes both ran."""
    b, n = _settings(base_summary), _settings(new_summary)
    both = set(b["dtypes"] or []) & set(n["dtypes"] or [])
    out = []
    for name in list(b) + [k for k in n if k not in b]:
        setting = name.split(" ")[0]
        if name != setting and (b["tolerances"] != n["tolerances"] or name.split(" ")[1] not in both):
            continue
        if b.get(name) != n.get(name):
            out.append({"setting": name, "base": b.get(name), "new": n.get(name), "meaning": SETTINGS[setting]})
    return out


def _value(v: object) -> str:
    if v is None:
        return "(not recorded)"
    return ",".join(map(str, v)) if isinstance(v, list) else str(v)  # str of a float is exact (repr)


def warnings(c: dict) -> list[str]:
    """One sentence per reason the comparison may mislead: settings that differ, a side with no results."""
    out = [f"the runs differ in {d['setting']}: base {_value(d['base'])}, new {_value(d['new'])} ({d['meaning']})"
           for d in c["settings"]]
    for side, count in (("base", c["base_results"]), ("new", c["new_results"])):
        if not count:
            out.append(f"the {side} run holds no results: nothing of it was compared")
    return out


def build(base_dir: Path, new_dir: Path, factor: float, metric: str, floor: float) -> dict:
    base, bctx = load(base_dir)
    new, nctx = load(new_dir)
    result = compare_runs(base, new, factor, metric, floor)
    result["base"], result["new_run"] = str(base_dir), str(new_dir)
    result["base_results"], result["new_results"] = len(base), len(new)
    result["settings"] = setting_differences(bctx["summary"], nctx["summary"])
    result["warnings"] = warnings(result)
    result["environment"] = environment_diff(bctx["environment"], nctx["environment"])
    result["exit_status"] = 1 if result["regressions"] else 0
    return result


def render_markdown(c: dict) -> str:
    from xentcheck.reports.markdown import _table, esc

    def case(k: list) -> str:
        return f"`{esc(k[0])}`"

    lines = ["# xentcheck compare", "",
             f"Base `{esc(c['base'])}`, new `{esc(c['new_run'])}`: {c['matched']} results matched by "
             "(case, backend, implementation, mode, dtype).", "",
             ("**REGRESSIONS FOUND**" if c["regressions"] else "**No regression**")
             + f": {len(c['regressions'])} regressions, {len(c['improvements'])} improvements, "
             f"{len(c['changed'])} changed failures, {len(c['new'])} new, {len(c['missing'])} missing. "
             f"Error growth counts when {esc(c['metric'])} grows more than {c['factor']:g}x (and exceeds "
             f"{c['floor']:g}) on a result that passes on both sides.", ""]
    if c.get("warnings"):
        lines += ["**Warning**: matched results may not be comparable:", ""]
        lines += [f"- {esc(w)}" for w in c["warnings"]] + [""]
    for title, items in (("Regressions", c["regressions"]), ("Improvements", c["improvements"]),
                         ("Changed failures", c["changed"])):
        if not items:
            continue
        rows = []
        for it in items:
            k = it["key"]
            if it["kind"] == "error":
                what = (f"{it['output']} {esc(it['metric'])} {it['base']:.3g} -> {it['new']:.3g} "
                        f"({it['ratio']:.3g}x)")
            else:
                what = f"{esc(it['base_verdict'])} -> {esc(it['new_verdict'])}"
            rows.append([case(k), esc(k[1]), esc(k[2]), esc(k[3]), esc(k[4]), what,
                         esc("; ".join(it.get("reasons", []))[:300])])
        lines += [f"## {title}", ""] + _table(["case", "backend", "implementation", "mode", "dtype", "change",
                                              "explanation"], rows)
    for title, keys in (("New results (only in new)", c["new"]), ("Missing results (only in base)", c["missing"])):
        if keys:
            lines += [f"## {title}", ""] + [f"- {case(k)} {esc(k[1])} {esc(k[2])} {esc(k[3])}" for k in keys[:200]]
            lines += ([f"- ... and {len(keys) - 200} more"] if len(keys) > 200 else []) + [""]
    differing = [e for e in c["environment"] if e["differs"]]
    same = len(c["environment"]) - len(differing)
    lines += ["## Environments", "",
              f"{len(differing)} fingerprint fields differ; {same} are the same on both sides "
              "(environment.json of each run has them all).", ""]
    if differing:
        lines += _table(["field", "base", "new"],
                        [[esc(e["field"]), esc("" if e["base"] is None else e["base"]),
                          esc("" if e["new"] is None else e["new"])] for e in differing])
    return "\n".join(lines)
