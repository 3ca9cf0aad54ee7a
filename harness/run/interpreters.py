"""Other Python interpreters in one run: `--python LABEL=/path/to/venv/bin/python`.

Each backend then also runs in a worker process of that interpreter, as backend spec
`BACKEND@LABEL`, and its results are named `BACKEND@LABEL`: one run, one report, two framework
versions side by side. The other interpreter imports this project's `harness` and `backends`
from the source tree (PYTHONPATH), and the frameworks from its own site-packages; it needs
numpy, ml_dtypes and mpmath besides the framework under test.
"""

from __future__ import annotations

import os
import re
import sys

_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
LABEL_ENV = "XENTCHECK_INTERPRETER_LABEL"  # tells the worker to name its backend BACKEND@LABEL


def parse(values: tuple[str, ...] | list[str]) -> dict[str, str]:
    """{label: python path} from LABEL=PATH values; ValueError on a malformed or missing one."""
    out: dict[str, str] = {}
    for v in values:
        label, sep, path = v.partition("=")
        label, path = label.strip(), path.strip()
        if not sep or not label or not path:
            raise ValueError(f"--python must be LABEL=PATH, got {v!r}")
        if not _LABEL_RE.match(label):
            raise ValueError(f"--python label {label!r}: use letters, digits and . _ + - only")
        if label in out:
            raise ValueError(f"--python label {label!r} given twice")
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise ValueError(f"--python {label}: {path} is not an executable file")
        out[label] = os.path.abspath(path)
    return out


def expand(specs: list[str], interpreters: dict[str, str]) -> list[str]:
    """The backends in this interpreter, then each backend again in every other interpreter."""
    return specs + [f"{s}@{label}" for label in interpreters for s in specs]


def resolve(spec: str, interpreters: dict[str, str]) -> tuple[str, str, str | None]:
    """(python executable, backend spec for the worker, label or None) for a worker spec."""
    base, sep, label = spec.rpartition("@")
    if sep and label in interpreters:
        return interpreters[label], base, label
    return sys.executable, spec, None
