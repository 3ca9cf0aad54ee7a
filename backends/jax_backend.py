"""The old path of `xentcheck.backends.jax.ce`, kept for plugins that import it (deprecated)."""

import warnings

from xentcheck.backends.jax.ce import JaxBackend  # noqa: F401

warnings.warn("xentcheck.backends.jax_backend is now xentcheck.backends.jax.ce", DeprecationWarning, stacklevel=2)
