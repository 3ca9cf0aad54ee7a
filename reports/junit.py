"""junit.xml: one testcase per (case, backend, implementation, mode, dtype) for CI dashboards.

Suites are backends; a testcase's classname is xentcheck.BACKEND.IMPL.MODE.DTYPE (dots only
between parts, so dashboards group by backend, then dtype) and its name is the case id. A result
computed in a wider dtype than requested ("widened") is a passing testcase with a property
verdict=widened and its reasons in system-out.
"""

from __future__ import annotations

import re
import shlex
import xml.etree.ElementTree as ET
from collections import defaultdict

from xentcheck.core.records import Result
from xentcheck.problems import output_specs

_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_+-]+")
_FAILURES = {"fail", "nonfinite"}
_ERRORS = {"error", "crashed", "timeout"}


def clean(text: object) -> str:
    """Text XML 1.0 can hold (control characters dropped); ElementTree escapes the rest."""
    return _NOT_XML.sub("", str(text))


def _part(text: str) -> str:
    return _NOT_NAME.sub("_", text).strip("_") or "_"


def classname(r: Result) -> str:
    return ".".join(["xentcheck", *(_part(getattr(r, k) or "") for k in ("backend", "impl", "mode", "dtype"))])


def repro(r: Result, spec: str | None = None, preset: str | None = None) -> str:
    """The command that reruns just this result."""
    where = f"--backend-file {spec[len('file:'):]}" if spec and spec.startswith("file:") else f"--backends {r.backend}"
    tol = f" --tolerances {preset}" if preset and preset != "xentcheck" else ""
    if r.inputs_file:  # a user's file case (--inputs): its arrays come from the file, not the seed
        return f"xentcheck run {where} --inputs {shlex.quote(r.inputs_file)}{tol}"
    return f"xentcheck run {where} --case {r.case_id} --seed {0 if r.seed is None else r.seed}{tol}"


def failure_message(r: Result) -> str:
    """'loss: greatest absolute / relative / ULP difference A / R / U at index I (x vs y), allowed T; ...'"""
    parts = []
    for what, label in ((o.name, o.label) for o in output_specs()):
        m = r.metrics.get(what)
        if not m:
            continue
        if m.n_nonfinite_mismatch:
            parts.append(f"{label}: {m.n_nonfinite_mismatch} / {m.size} NaN/inf where the reference differs, "
                         f"e.g. {m.worst_actual} vs {m.worst_expected} at index {m.worst_index}")
        elif m.n_exceed:
            allowed = float("nan") if m.worst_allowed is None else m.worst_allowed
            parts.append(f"{label}: greatest absolute / relative / ULP difference {m.abs_err:.3g} / "
                         f"{m.rel_err:.3g} / {m.ulp_err:.3g} at index {m.worst_index} "
                         f"({m.worst_actual} vs {m.worst_expected}), allowed "
                         f"{allowed:.3g}; {m.n_exceed} / {m.size} elements out")
    return "; ".join(parts) or "; ".join(r.reasons or []) or str(r.verdict)


def render(records: list[Result], summary: dict) -> str:
    specs = {b.get("name"): b.get("spec") for b in summary.get("backends", []) if isinstance(b, dict)}
    preset = summary.get("tolerances", {}).get("preset")
    suites: dict[str, list[Result]] = defaultdict(list)
    for r in records:
        suites[str(r.backend)].append(r)
    root = ET.Element("testsuites", name="xentcheck")
    totals: dict[str, int] = defaultdict(int)
    for backend, recs in suites.items():
        suite = ET.SubElement(root, "testsuite", name=clean(f"xentcheck.{backend}"))
        counts: dict[str, int] = defaultdict(int)
        seconds = 0.0
        for r in recs:
            t = (r.timing or {}).get("compute_seconds", 0.0) or 0.0
            seconds += t
            tc = ET.SubElement(suite, "testcase", classname=clean(classname(r)), name=clean(r.case_id),
                               time=f"{t:.6f}")
            v = r.verdict
            detail = "\n".join([*(r.reasons or []), f"repro: {repro(r, specs.get(r.backend), preset)}"])
            if v in _FAILURES:
                counts["failures"] += 1
                el = ET.SubElement(tc, "failure", message=clean(failure_message(r)), type=v)
                el.text = clean(detail)
            elif v in _ERRORS:
                counts["errors"] += 1
                el = ET.SubElement(tc, "error", message=clean("; ".join(r.reasons or []) or v), type=v)
                el.text = clean("\n".join(filter(None, [detail, r.traceback or ""])))
            elif v == "skipped":
                counts["skipped"] += 1
                ET.SubElement(tc, "skipped", message=clean("; ".join(r.reasons or [])))
            elif v == "widened":  # passes at the requested dtype's tolerance; said apart from a pass
                props = ET.SubElement(tc, "properties")
                ET.SubElement(props, "property", name="verdict", value="widened")
                ET.SubElement(tc, "system-out").text = clean(detail)
        counts["tests"] = len(recs)
        for k in ("tests", "failures", "errors", "skipped"):
            suite.set(k, str(counts[k]))
            totals[k] += counts[k]
        suite.set("time", f"{seconds:.6f}")
    for k in ("tests", "failures", "errors", "skipped"):
        root.set(k, str(totals[k]))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
