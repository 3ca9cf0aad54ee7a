"""JAX: optax.softmax_cross_entropy(_with_integer_labels) through jax.vjp.

float64 needs x64: this adapter enables jax_enable_x64 (it runs in its own worker process),
so a float64 request is computed in float64, and says so in its settings.
"""

from __future__ import annotations

import numpy as np

from backends.base import Backend, Output
from harness.cases import Case, Inputs


class JaxBackend(Backend):
    name = "jax"
    framework = "jax"
    impl = "optax.softmax_cross_entropy"

    def load(self) -> None:
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        import optax
        self.jax, self.jnp, self.optax = jax, jnp, optax

    def devices(self) -> list[str]:
        kinds = {d.platform for d in self.jax.devices()} | {"cpu"}
        return ["cpu"] + (["cuda"] if "gpu" in kinds or "cuda" in kinds else [])

    def settings(self) -> dict:
        from importlib.metadata import version
        return {"jax_enable_x64": bool(self.jax.config.jax_enable_x64),
                "default_backend": self.jax.default_backend(), "optax": version("optax"),
                "jaxlib": version("jaxlib"), "devices": [str(d) for d in self.jax.devices()],
                "default_matmul_precision": str(self.jax.config.jax_default_matmul_precision)}

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        jax, jnp, optax = self.jax, self.jnp, self.optax
        dev = jax.devices("gpu" if device == "cuda" else "cpu")[0]
        x = jax.device_put(jnp.asarray(inputs.logits), dev)
        labels = jax.device_put(jnp.asarray(inputs.labels), dev)
        if case.labels == "index":
            per_row = lambda v: optax.softmax_cross_entropy_with_integer_labels(v, labels)
        else:
            per_row = lambda v: optax.softmax_cross_entropy(v, labels)
        reduce = {"mean": jnp.mean, "sum": jnp.sum, "none": lambda r: r}[case.reduction]
        loss, pullback = jax.vjp(lambda v: reduce(per_row(v)), x)
        (grad,) = pullback(jnp.ones_like(loss))
        grad.block_until_ready()
        return Output(loss=np.asarray(loss), grad=np.asarray(grad),
                      loss_dtype=loss.dtype.name, grad_dtype=grad.dtype.name)
