"""The old path of `xentcheck.backends.numpy.ce`, kept for plugins that import it (deprecated)."""

import warnings

from xentcheck.backends.numpy.ce import NumpyBackend  # noqa: F401

warnings.warn("xentcheck.backends.numpy_backend is now xentcheck.backends.numpy.ce", DeprecationWarning, stacklevel=2)
