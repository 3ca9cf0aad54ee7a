"""Compare two runs' results.jsonl line by line, timing aside: `python scripts/results_diff.py A B`.

A refactor that must not change any result (the problem registry's did not) diffs its run of the
default suite against one of the code before it. Exit 0: the same records, byte for byte once each
line's `timing` is dropped; 1: the first lines that differ are printed."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def lines(folder: str) -> list[str]:
    out = []
    for line in (Path(folder) / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        record.pop("timing", None)
        out.append(json.dumps(record))
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python scripts/results_diff.py RUN_A RUN_B", file=sys.stderr)
        return 2
    a, b = lines(argv[0]), lines(argv[1])
    diffs = [i for i in range(max(len(a), len(b))) if i >= len(a) or i >= len(b) or a[i] != b[i]]
    print(f"{len(a)} and {len(b)} results; {len(diffs)} lines differ (timing aside)")
    for i in diffs[:5]:
        print(f"line {i + 1}:\n  A {a[i][:300] if i < len(a) else '(none)'}\n  B {b[i][:300] if i < len(b) else '(none)'}")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
