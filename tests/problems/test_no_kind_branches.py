"""No shared module tests a case's kind or names a kind's outputs (issue 26's "done when").

The shared modules are every module of the package but the problem records (harness/problems/)
and the adapters (backends/): what differs by kind is read from a case's record
(problems.problem_of) and its declared outputs (Problem.outputs). docs/architecture.md gives the
same check as a grep that a reviewer can rerun; PATTERN is its pattern.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# a kind's output names as strings ("grad"; linear-CE's "dh", "dw", "db") or attributes (ref.grad,
# out.dw), a case's kind read from its grammar (case.linear, case.d), a kind's name compared, and
# the kinds' output tuples
PATTERN = re.compile(r'"(grad|dh|dw|db)"|\.(grad|dh|dw|db)\b|\b(case|c)\.(linear|d)\b|kind *[!=]= *"(ce|linear)"'
                     r'|"(ce|linear)" *[!=]=|\b(LINEAR|CE)_(OUTPUTS|GRADS)\b')
# lines that match and may: each with the reason
ALLOWED = {
    # the tolerance tables' two rows (judging every kind's loss and its gradients): a concept of the
    # tables, spelled out once
    ("harness/core/tolerances.py", 'LOSS_ROW, GRAD_ROW = TOLERANCE_ROWS = ("loss", "grad")'),
    # xentcheck.reference()'s ReferenceResult.grad: the public API's plain-CE field (README), kept
    # for its callers; every kind's outputs are in `outputs`
    ("harness/api.py", 'grad=arrays.get("grad")'),
}


def shared_modules() -> list[Path]:
    """harness/ (without problems/ and the backends/, reports/ symlinks) and reports/."""
    files = [f for f in (ROOT / "harness").rglob("*.py")
             if f.relative_to(ROOT / "harness").parts[0] not in ("problems", "backends", "reports")]
    return sorted(files + list((ROOT / "reports").rglob("*.py")))


def hits(files: list[Path]) -> list[str]:
    out = []
    for f in files:
        rel = f.relative_to(ROOT).as_posix()
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if PATTERN.search(line) and not any(rel == a and s in line for a, s in ALLOWED):
                out.append(f"{rel}:{n}: {line.strip()}")
    return out


def test_no_shared_module_tests_a_kind_or_names_its_outputs():
    files = shared_modules()
    assert len(files) > 80 and ROOT / "harness" / "core" / "evaluate.py" in files
    assert not hits(files), "kind-specific lines outside harness/problems/ and backends/:\n" + "\n".join(hits(files))


def test_every_allowed_line_is_still_there():
    """An allowance outlives its line only by mistake: each one still matches a line."""
    for rel, text in ALLOWED:
        assert text in (ROOT / rel).read_text(encoding="utf-8"), (rel, text)


def test_the_pattern_finds_what_it_is_for():
    for line in ('for what in ("loss", "grad"):', "g = ref.grad", "if case.linear:", "if case.d:",
                 'if problem.kind == "linear":', "m = r[\"dw\"]", "from x import LINEAR_OUTPUTS"):
        assert PATTERN.search(line), line
    for line in ('out["grad_dtype"]', "tolerances.get(case.dtype, GRAD_ROW)", "for spec in problem.outputs:",
                 'if installer.kind == "uv":', "self.d > 0"):
        assert not PATTERN.search(line), line
    # the records themselves name their outputs: the search reaches them when not left out
    records = sorted((ROOT / "harness" / "problems").rglob("*.py"))
    assert any("harness/problems/ce/" in h for h in hits(records))
    assert any("harness/problems/linear/" in h for h in hits(records))
