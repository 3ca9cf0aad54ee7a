"""The baseline for harness overhead: one backend's framework calls on the default suite, in a plain loop.

`python benchmarks/plain_loop.py BACKEND [N_CASES]` regenerates each case's inputs and calls the
backend's default implementations on it, exactly what a harness worker calls, with no reference,
no comparison, no protocol and no reports. bench_harness.py runs one per backend side by side, as
the harness runs its workers.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xentcheck.backends.registry import create  # noqa: E402
from xentcheck.core.cases import make_inputs  # noqa: E402
from xentcheck.run.plan import parse_dtypes, select_cases  # noqa: E402


def main(name: str, n_cases: int | None) -> int:
    backend = create(name)
    backend.load()
    cases = select_cases(parse_dtypes(None), n_cases, ())  # the run's own selection
    variants = [v for v in backend.variants() if v.default]
    calls = 0
    for case in cases:
        if backend.unsupported(case, "cpu"):
            continue
        inputs = make_inputs(case, 0)
        for v in variants:
            if case.labels in v.label_forms:
                backend.run_variant(v, case, inputs.copy(), "cpu")
                calls += 1
    print(calls)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None))
