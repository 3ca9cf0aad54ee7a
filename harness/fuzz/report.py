"""A campaign's report: report.json and report.md in the campaign folder, rewritten after every
batch (so a killed campaign still has one): the kinds found, how many cases each, the smallest
case and the shrunk repro of each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xentcheck.core.cases import Case

NOT_YET = "not shrunk yet: the budget was spent first; --resume shrinks it"
STOPPED = {"budget": "the time budget was spent", "cases": "every case asked for ran",
           "interrupted": "interrupted (Ctrl-C): the report covers what finished", None: "still running"}


def build(state: Any) -> dict:
    """report.json's content, from the campaign's State."""
    plan = state.plan
    kinds = sorted(state.kinds, key=lambda k: (-len(k["cases"]), k["key"]))
    return {
        "seed": state.seed,
        "backends": plan["backends"],
        "dtypes": plan["dtypes"],
        "known_file": plan.get("known_file"),
        "budget_s": state.budget_s,
        "cases_asked": state.cases,
        "cases_drawn": state.next_index,
        "cases_run": sum(b["cases"] for b in state.batches if b["finished"]),
        "batches": len(state.batches),
        "batches_finished": sum(b["finished"] for b in state.batches),
        "elapsed_s": round(state.elapsed_s, 1),
        "stopped": state.stopped,
        "exit_status": 1 if kinds else 0,
        "kinds": [{**k, "n_cases": len(k["cases"])} for k in kinds],
    }


def markdown(report: dict) -> str:
    kinds = report["kinds"]
    lines = [
        "# xentcheck fuzz campaign", "",
        f"Seed {report['seed']}; backends {', '.join(report['backends'])}; dtypes {', '.join(report['dtypes'])}"
        + (f"; known differences from {report['known_file']}" if report["known_file"] else "") + ".",
        f"{report['cases_run']} cases run in {report['batches_finished']} finished batches, {report['elapsed_s']:.0f} s "
        f"({report['cases_drawn']} drawn: a drawn duplicate runs once"
        + ("; the last batch stopped part way, and --resume finishes it" if report["batches_finished"] < report["batches"]
           else "") + f"); stopped: {STOPPED.get(report['stopped'])}.", "",
        f"## {len(kinds)} kinds of findings", "",
    ]
    if not kinds:
        lines.append("None: every result was within tolerance or a known difference.")
        return "\n".join(lines) + "\n"
    lines += ["| # | backend | implementation | mode | verdict | cases | smallest case | shrunk to N x K |",
              "|---|---|---|---|---|---|---|---|"]
    for i, k in enumerate(kinds, 1):
        shrunk = k.get("shrunk") or {}
        shape = Case.from_id(shrunk["case_id"]).dims if shrunk.get("case_id") else "-"
        lines.append(f"| {i} | {k['backend']} | {k['impl']} | {k['mode']} | {k['verdict']} | {k['n_cases']} | "
                     f"`{k['smallest']['case_id']}` | {shape} |")
    for i, k in enumerate(kinds, 1):
        shrunk = k.get("shrunk") or {}
        lines += ["", f"### {i}. {k['backend']} {k['impl']} {k['mode']}: {k['verdict']}", "",
                  f"Kind: {k['reason'] or '(no reason given)'}", "",
                  f"- first found: `{k['first']['case_id']}` ({k['first']['batch']})",
                  f"- smallest case: `{k['smallest']['case_id']}`; rerun it: "
                  f"`xentcheck repro {k['smallest']['result_id']} --from {k['smallest']['batch']} --shrink`",
                  f"- repro: `{k['repro']}`" if k.get("repro") else "- repro: none written",
                  f"- shrunk repro: `{shrunk['script']}`" if shrunk.get("script")
                  else f"- shrunk repro: none ({shrunk.get('note') or NOT_YET})",
                  f"- cases ({k['n_cases']}): " + ", ".join(f"`{c}`" for c in k["cases"][:10])
                  + (", ..." if k["n_cases"] > 10 else "")]
        lines += ["- example reasons:"] + [f"  - {r}" for r in k["example"][:4]]
    return "\n".join(lines) + "\n"


def write(out: Path, state: Any) -> dict:
    from xentcheck.reports.files import write_atomic

    report = build(state)
    write_atomic(Path(out) / "report.json", json.dumps(report, indent=2) + "\n")
    write_atomic(Path(out) / "report.md", markdown(report))
    return report
