"""The old path of `xentcheck.backends.tensorflow.ce`, kept for plugins that import it (deprecated)."""

import warnings

from xentcheck.backends.tensorflow.ce import TensorflowBackend  # noqa: F401

warnings.warn("xentcheck.backends.tensorflow_backend is now xentcheck.backends.tensorflow.ce", DeprecationWarning, stacklevel=2)
