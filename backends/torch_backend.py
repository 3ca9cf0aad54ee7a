"""The old path of `xentcheck.backends.torch.ce`, kept for plugins that import it (deprecated)."""

import warnings

from xentcheck.backends.torch.ce import TorchBackend  # noqa: F401

warnings.warn("xentcheck.backends.torch_backend is now xentcheck.backends.torch.ce", DeprecationWarning, stacklevel=2)
