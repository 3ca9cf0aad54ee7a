"""The old path of `xentcheck.backends.keras.ce`, kept for plugins that import it (deprecated)."""

import warnings

from xentcheck.backends.keras.ce import KerasJaxBackend, KerasTensorflowBackend, KerasTorchBackend  # noqa: F401

warnings.warn("xentcheck.backends.keras_backend is now xentcheck.backends.keras.ce", DeprecationWarning, stacklevel=2)
