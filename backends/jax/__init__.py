"""JAX adapters: `ce.py`, the jax backend and its plain CE variants; `linear.py`, its linear-CE
variants; `jax_cce.py`, the optional jax-cce kernel (PyPI `jax-cce`)."""
