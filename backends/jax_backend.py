"""JAX: optax losses and a written-out log_softmax through jax.vjp, op by op or under jax.jit.

float64 needs x64: this adapter enables jax_enable_x64 (it runs in its own worker process),
so a float64 request is computed in float64, and says so in its settings.
"""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Backend, Output, Variant
from xentcheck.core.cases import Case, Inputs

_IMPLS = (  # name, label forms, call, in the default suite, options (label smoothing via optax.smooth_labels)
    ("optax_sce_int", ("index",), "optax.softmax_cross_entropy_with_integer_labels", True, ()),
    ("optax_sce", ("onehot", "soft"), "optax.softmax_cross_entropy", True, ("ls",)),
    ("optax_safe_sce", ("onehot", "soft"), "optax.safe_softmax_cross_entropy", False, ("ls",)),
    ("log_softmax", ("index", "onehot", "soft"), "-sum(labels * jax.nn.log_softmax(x))", False, ()),
)


class JaxBackend(Backend):
    name = "jax"
    framework = "jax"
    impl = "optax_sce_int"
    extra_dims = True  # optax and jax.nn take any leading dimensions, classes last
    float64_hint = "set JAX_ENABLE_X64=1 or jax.config.update('jax_enable_x64', True) for float64"

    def variants(self) -> list[Variant]:
        return [Variant(i, m, lf, api if m == "eager" else f"jax.jit({api})", default=d and m == "eager", options=o)
                for m in ("eager", "jit") for i, lf, api, d, o in _IMPLS]

    def load(self) -> None:
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        import optax
        self.jax, self.jnp, self.optax = jax, jnp, optax
        self._jitted: dict = {}

    def devices(self) -> list[str]:
        kinds = {d.platform for d in self.jax.devices()} | {"cpu"}
        return ["cpu"] + (["cuda"] if "gpu" in kinds or "cuda" in kinds else [])

    def settings(self) -> dict:
        from importlib.metadata import version
        return {"jax_enable_x64": bool(self.jax.config.jax_enable_x64),
                "default_backend": self.jax.default_backend(), "optax": version("optax"),
                "jaxlib": version("jaxlib"), "devices": [str(d) for d in self.jax.devices()],
                "default_matmul_precision": str(self.jax.config.jax_default_matmul_precision)}

    def _loss(self, impl: str, labels_form: str, reduction: str, smoothing: float = 0.0):
        jnp, optax, jax = self.jnp, self.optax, self.jax
        if impl == "optax_sce_int":
            rows = optax.softmax_cross_entropy_with_integer_labels
        elif impl == "optax_sce":
            rows = optax.softmax_cross_entropy
        elif impl == "optax_safe_sce":
            rows = optax.safe_softmax_cross_entropy
        elif labels_form == "index":
            def rows(x, t):
                return -jnp.take_along_axis(jax.nn.log_softmax(x, axis=-1), t[..., None], axis=-1)[..., 0]
        else:
            def rows(x, q):
                return -jnp.sum(q * jax.nn.log_softmax(x, axis=-1), axis=-1)
        reduce = {"mean": jnp.mean, "sum": jnp.sum, "none": lambda r: r}[reduction]
        if smoothing:
            return lambda x, labels: reduce(rows(x, optax.smooth_labels(labels, smoothing)))
        return lambda x, labels: reduce(rows(x, labels))

    def _value_and_grad(self, variant: Variant, case: Case, smoothing: float = 0.0):
        jax, jnp = self.jax, self.jnp
        key = (variant.impl, case.labels, case.reduction, variant.mode, smoothing)
        if key in self._jitted:
            return self._jitted[key]
        loss_fn = self._loss(variant.impl, case.labels, case.reduction, smoothing)

        def f(x, labels):
            loss, pullback = jax.vjp(lambda v: loss_fn(v, labels), x)
            return loss, pullback(jnp.ones_like(loss))[0]

        if variant.mode == "jit":
            f = self._jitted[key] = jax.jit(f)
        return f

    def _put(self, a: np.ndarray, device: str):
        dev = self.jax.devices("gpu" if device == "cuda" else "cpu")[0]
        return self.jax.device_put(self.jnp.asarray(a), dev)

    def run_variant(self, variant: Variant, case: Case, inputs: Inputs, device: str) -> Output:
        loss, grad = self._value_and_grad(variant, case, inputs.smoothing)(self._put(inputs.logits, device),
                                                                          self._put(inputs.labels, device))
        grad.block_until_ready()
        return Output(loss=np.asarray(loss), grad=np.asarray(grad), loss_dtype=loss.dtype.name, grad_dtype=grad.dtype.name)

    def timing_fns(self, variant: Variant, case: Case, inputs: Inputs, device: str) -> dict:
        jax, jnp = self.jax, self.jnp
        loss_fn = self._loss(variant.impl, case.labels, case.reduction)
        x, labels = self._put(inputs.logits, device), self._put(inputs.labels, device)
        loss, pullback = jax.vjp(lambda v: loss_fn(v, labels), x)  # the kept forward
        ones = jnp.ones_like(loss)
        apply = lambda pb, ct: pb(ct)[0]  # noqa: E731  (the pullback is a pytree: jit takes it as an argument)
        fwd, bwd, both = loss_fn, apply, self._value_and_grad(variant, case)
        if variant.mode == "jit":
            fwd, bwd = jax.jit(loss_fn), jax.jit(apply)
        return {"forward": lambda: fwd(x, labels).block_until_ready(),
                "backward": lambda: bwd(pullback, ones).block_until_ready(),
                "forward_backward": lambda: jax.block_until_ready(both(x, labels))}

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        v = next(v for v in self.variants() if case.labels in v.label_forms)
        return self.run_variant(v, case, inputs, device)

    def jvp(self, variant, case, inputs, device, tangent):
        loss_fn = self._loss(variant.impl, case.labels, case.reduction, inputs.smoothing)
        labels = self._put(inputs.labels, device)
        x = self._put(inputs.logits, device)
        _, out = self.jax.jvp(lambda v: loss_fn(v, labels), (x,), (self._put(tangent.astype(inputs.logits.dtype), device),))
        return np.asarray(out)

    def hvp(self, variant, case, inputs, device, vector):
        jax, jnp = self.jax, self.jnp
        loss_fn = self._loss(variant.impl, case.labels, case.reduction, inputs.smoothing)
        labels = self._put(inputs.labels, device)
        v = self._put(vector.astype(inputs.logits.dtype), device)
        grad = jax.grad(lambda x: jnp.sum(loss_fn(x, labels)))
        return np.asarray(jax.grad(lambda x: jnp.sum(grad(x) * v))(self._put(inputs.logits, device)))
