"""Run mypy on xentcheck as it installs: `python scripts/typecheck.py [MODULE ...]`.

The editable install maps harness/ to `xentcheck` (and backends/, reports/ to its subpackages)
through an import hook that mypy cannot follow, and mypy would name harness/core/cases.py
`harness.core.cases`. So this script lays the package out as installed, in a temporary folder of
symlinks to the checkout's files, runs mypy there (settings from pyproject's [tool.mypy]) and
prints the paths back as the checkout's. The exit status is mypy's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = {"xentcheck": "harness", "xentcheck/backends": "backends", "xentcheck/reports": "reports"}


def link_tree(dest: Path) -> dict[str, str]:
    """Symlink every .py file of the three folders into dest/xentcheck/...; {linked path: repo path}."""
    back = {}
    for pkg, folder in PACKAGE_DIRS.items():
        for src in (ROOT / folder).rglob("*.py"):
            rel = src.relative_to(ROOT / folder)
            target = dest / pkg / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(src)
            back[str(target)] = str(src.relative_to(ROOT))
    (dest / "xentcheck" / "py.typed").touch()
    return back


def main(argv: list[str]) -> int:
    modules = argv or ["xentcheck"]
    with tempfile.TemporaryDirectory(prefix="xentcheck-types-") as tmp:
        back = link_tree(Path(tmp))
        cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
        for m in modules:
            cmd += ["-p", m]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True,
                              env={**os.environ, "MYPYPATH": tmp})
        out = proc.stdout + proc.stderr
        for linked in sorted(back, key=len, reverse=True):
            out = out.replace(os.path.relpath(linked, tmp), back[linked])
        sys.stdout.write(out)
        return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
