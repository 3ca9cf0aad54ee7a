"""What an output folder holds, decided in one place for every command that writes one (`run`,
`fuzz`, `bench`, `merge`, `bisect` and `verify(out=...)`), so that no command writes over another's output.

A folder holds a run (run.json or results.jsonl), a fuzz campaign (campaign.json or batches/),
bench timings (timing.json, or an earlier version's linear_timing.json), a bisect report (bisect.json),
leftovers of one cut short before that (logs/, inputs/ alone, e.g. a killed bench's worker logs), files
that are not xentcheck output, or nothing.
Only an empty or missing folder is free. Entries whose names start with "." (.gitkeep, a killed
atomic write's temporary file) are neither counted nor ever removed.

`check` refuses an occupied folder before anything is written, in one line naming the way out;
with `overwrite` it instead returns what `clear` removes: the top-level entries that the kinds of
output it holds write, nothing else. A folder holding files that are not xentcheck output and no
xentcheck output is refused even with `overwrite`: it replaces output, never a user's files.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

RUN, CAMPAIGN, BENCH, BISECT = "run", "campaign", "bench", "bisect"

# the top-level entries each kind writes (a run's --timing adds a bench's timing files; verify(out=)
# keeps its dict inputs in inputs/); tests/run/test_outdir.py checks them against real outputs
WRITES = {
    RUN: frozenset({"run.json", "results.jsonl", "summary.json", "report.md", "report.html", "results.csv",
                    "results.parquet", "junit.xml", "tolerance.md", "tolerance.json", "discrepancy.json",
                    "environment.json", "logs", "repro", "inputs", "timing.json", "timing.md", "timing.png"}),
    CAMPAIGN: frozenset({"campaign.json", "report.md", "report.json", "batches"}),
    BENCH: frozenset({"timing.json", "timing.md", "timing.png", "report.html", "logs", "linear_timing.json",
                      "linear_timing.md"}),
    BISECT: frozenset({"bisect.json", "bisect.md", "bisect.png", "versions"}),
}
# the entries that say a kind is there; the first kind found names the folder (a run's --timing
# writes timing.json too: it is a run holding timings)
MARKERS = {CAMPAIGN: ("campaign.json", "batches"), RUN: ("run.json", "results.jsonl"),
           BENCH: ("timing.json", "linear_timing.json"), BISECT: ("bisect.json",)}
# what an output cut short before its marker leaves (a killed bench's worker logs; verify's inputs/ and
# logs/ before run.json): a folder of these alone is leftovers, replaceable; any other name is the user's
LEFTOVERS = frozenset({"logs", "inputs"})


class OccupiedError(ValueError):
    """The folder holds output (or other files) a command must not write over: one line, exit 2."""


@dataclass(frozen=True)
class Holding:
    """What a folder holds. `kinds` in order of precedence; none with `ours` set: leftovers."""

    folder: Path
    kinds: tuple[str, ...]
    ours: tuple[str, ...]  # the top-level entries xentcheck wrote, which clear() removes
    other: tuple[str, ...]  # the entries that are not xentcheck output, never removed
    finished: bool = False  # a run whose summary.json says it ran to the end
    resumable: bool = False  # a run with run.json that did not finish

    @property
    def empty(self) -> bool:
        return not self.ours and not self.other

    def describe(self) -> str:
        if CAMPAIGN in self.kinds:
            return "a fuzz campaign"
        if RUN in self.kinds:
            return "a finished run" if self.finished else "an unfinished run"
        if BENCH in self.kinds:
            return "timings of xentcheck bench"
        if BISECT in self.kinds:
            return "a bisect report"
        return f"leftovers of xentcheck output ({', '.join(self.ours)})"


def inspect(folder: Path) -> Holding:
    """What `folder` holds (a missing folder holds nothing). Reads only; OccupiedError when it cannot."""
    folder = Path(folder)
    try:
        with os.scandir(folder) as entries:
            names = sorted(e.name for e in entries if not e.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):  # not there (or below a file: mkdir will say so)
        return Holding(folder, (), (), ())
    except OSError as exc:
        raise OccupiedError(f"cannot read output folder {folder}: {exc.strerror or exc}") from None
    kinds = tuple(k for k, marks in MARKERS.items() if any(m in names for m in marks))
    written = frozenset().union(*(WRITES[k] for k in kinds)) if kinds else LEFTOVERS
    ours = tuple(n for n in names if n in written)
    other = tuple(n for n in names if n not in written)
    if not kinds and other:  # no xentcheck output: every entry is the user's
        return Holding(folder, (), (), tuple(names))
    finished = resumable = False
    if RUN in kinds:
        finished = _finished(folder / "summary.json")
        resumable = not finished and "run.json" in names
    return Holding(folder, kinds, ours, other, finished, resumable)


def _finished(summary: Path) -> bool:
    """A run's summary.json is written at its end, with `interrupted` true after Ctrl-C."""
    try:
        return json.loads(summary.read_text(encoding="utf-8")).get("interrupted") is False
    except (OSError, ValueError, AttributeError):
        return False


def check(folder: Path, command: str, overwrite: bool = False, option: str = "--out") -> Holding:
    """What `command` (run, fuzz, bench, merge) may write over in `folder`: nothing unless `overwrite`.
    OccupiedError, one line naming the way out, when the folder is not free; `option` names the
    command's folder argument in it."""
    held = inspect(folder)
    if held.empty:
        return held
    if not held.ours:
        shown = ", ".join(held.other[:3]) + (", ..." if len(held.other) > 3 else "")
        raise OccupiedError(f"{folder} holds files that are not xentcheck output ({shown}): give a new or empty "
                            f"folder as {option} (--overwrite replaces only xentcheck output)")
    if overwrite:
        return held
    ways = [f"give another {option}", "or --overwrite to replace it"]
    if command == "fuzz" and CAMPAIGN in held.kinds:
        ways.insert(0, f"continue it with --resume {folder}")
    elif command == "run" and held.kinds[:1] == (RUN,) and held.resumable:
        ways.insert(0, f"finish it with --resume {folder}")
    raise OccupiedError(f"{folder} already holds {held.describe()}: {', '.join(ways)}")


def clear(held: Holding) -> str | None:
    """Remove the xentcheck output `check` found (its top-level entries), keeping every other file.
    Returns the line saying what was replaced (None when nothing was); OSError when it cannot."""
    if not held.ours:
        return None
    for name in held.ours:
        path = held.folder / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    kept = f" (kept what is not xentcheck output: {', '.join(held.other)})" if held.other else ""
    return f"replacing {held.describe()} in {held.folder}{kept}"
