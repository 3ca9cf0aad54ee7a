"""Shrinking a batch's new kinds, in a child process: `python -m xentcheck.fuzz.shrinking BATCH RID...`.

It does for each result id what `xentcheck repro RID --from BATCH --shrink` does (the same
functions of xentcheck.regress.repro: rerun, write, shrink), but imports the backend's framework
once for all of them, and prints one JSON line per result: {"result_id", "verdict", "script",
"case_id"} (script: the shrunk repro, relative to BATCH; null when the rerun did not reproduce).
The campaign runs it in a child process so that a framework never loads into the campaign's own
process, and a hang or crash while shrinking costs one kind's shrunk repro, not the campaign.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from xentcheck.core.records import Result

MAX_STEPS = 60  # candidate cases per result: each runs the framework once


def shrink_one(folder: Path, records: list[Result], summary: dict, rid: str, max_steps: int = MAX_STEPS) -> dict:
    from xentcheck.regress import repro

    record = repro.find(records, rid)
    spec = repro.spec_for(record, summary)
    outcome = repro.rerun(record, spec, summary)
    out: dict = {"result_id": rid, "verdict": outcome["verdict"], "script": None, "case_id": None}
    if outcome["verdict"] not in repro.BAD:
        return out
    small = repro.shrink(outcome, spec, summary, max_steps=max_steps)
    _, script = repro.write(folder / "repro", record, small["inputs"], small["case"], small["ref"],
                            suffix="-shrunk", spec=spec, numerics=repro.numerics_of(summary, record))
    out.update(script=str(script.relative_to(folder)), case_id=small["case"].id)
    return out


def main(argv: list[str]) -> int:
    from xentcheck.reports.files import read_results, read_summary

    folder, rids = Path(argv[0]), argv[1:]
    records = read_results(folder / "results.jsonl")
    summary = read_summary(folder / "summary.json")
    for rid in rids:
        try:
            line = shrink_one(folder, records, summary, rid)
        except Exception as exc:  # one result's failure leaves the others' shrinking
            line = {"result_id": rid, "verdict": None, "script": None, "case_id": None,
                    "error": f"{type(exc).__name__}: {exc}"[:300]}
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
