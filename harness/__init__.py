"""xentcheck harness: cases, high-precision reference, comparison, runner and CLI.

Importing this package never imports torch, tensorflow or jax: each backend adapter
imports its framework lazily, inside its own worker process. The public API below is
imported on first use (PEP 562), so `import xentcheck` (and the CLI's --help) stays light:

    from xentcheck import Backend, Output      # write a plugin
    xentcheck.verify(backends=[MyKernel])        # run the suite on it, as `xentcheck run` does
    xentcheck.reference(logits, labels)          # the high-precision loss and gradient of your arrays
    xentcheck.testing.assert_backend(MyKernel)   # in a test suite: AssertionError naming each finding
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it (None: the name is that submodule)
_LAZY: dict[str, str | None] = {
    "Backend": "xentcheck.backends.base",
    "Output": "xentcheck.backends.base",
    "Variant": "xentcheck.backends.base",
    "verify": "xentcheck.api",
    "VerifyResult": "xentcheck.api",
    "Finding": "xentcheck.api",
    "reference": "xentcheck.api",
    "ReferenceResult": "xentcheck.api",
    "Tolerances": "xentcheck.core.tolerances",
    "testing": None,
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # the lazy names, for type checkers ("X as X": an explicit re-export)
    from xentcheck import testing as testing
    from xentcheck.api import Finding as Finding
    from xentcheck.api import ReferenceResult as ReferenceResult
    from xentcheck.api import VerifyResult as VerifyResult
    from xentcheck.api import reference as reference
    from xentcheck.api import verify as verify
    from xentcheck.backends.base import Backend as Backend
    from xentcheck.backends.base import Output as Output
    from xentcheck.backends.base import Variant as Variant
    from xentcheck.core.tolerances import Tolerances as Tolerances


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'xentcheck' has no attribute {name!r}")
    module = _LAZY[name]
    value = importlib.import_module(f"xentcheck.{name}") if module is None else getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
