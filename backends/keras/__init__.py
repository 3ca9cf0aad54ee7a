"""Keras 3 adapters: `ce.py`, the Keras losses on Keras's TensorFlow, JAX and torch backends
(keras-tensorflow, keras-jax, keras-torch; Keras has no linear-CE loss)."""
