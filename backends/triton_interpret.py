"""The old path of `xentcheck.backends.torch.triton_interpret`, kept for plugins that import it (deprecated)."""

import warnings

from xentcheck.backends.torch.triton_interpret import BFLOAT16, SHIMS, interpreter_shims  # noqa: F401

warnings.warn("xentcheck.backends.triton_interpret is now xentcheck.backends.torch.triton_interpret",
              DeprecationWarning, stacklevel=2)
