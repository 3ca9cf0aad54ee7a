"""xentcheck harness: cases, high-precision reference, comparison, runner and CLI.

Importing this package never imports torch, tensorflow or jax: each backend adapter
imports its framework lazily, inside its own worker process.
"""

__version__ = "0.1.0"
