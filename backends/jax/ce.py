"""JAX: optax losses and a written-out log_softmax through jax.vjp, op by op or under jax.jit.

float64 needs x64: this adapter enables jax_enable_x64 (it runs in its own worker process),
so a float64 request is computed in float64, and says so in its settings.

The LLM-training options are composed as an optax user writes them, inside the jitted function
under jax.jit (docs/llm-options.md): x = s * x; x = c * jnp.tanh(x / c); per-row loss
+ z * jax.nn.logsumexp(x, axis=-1)**2, then the reduction. The gradient is the pullback of
jax.vjp applied to the case's cotangent (ones without option "ct").
"""

from __future__ import annotations

import numpy as np

from xentcheck.backends.base import Backend, Output, Variant, kind_adapter
from xentcheck.core.cases import Case, Inputs

_LLM = ("s", "cap", "z", "ct")  # logit scale, softcap, z-loss, upstream cotangent: composed around the call
_IMPLS = (  # name, label forms, call, in the default suite, options (label smoothing via optax.smooth_labels)
    ("optax_sce_int", ("index",), "optax.softmax_cross_entropy_with_integer_labels", True, _LLM),
    ("optax_sce", ("onehot", "soft", "unnorm"), "optax.softmax_cross_entropy", True, ("ls", *_LLM)),
    ("optax_safe_sce", ("onehot", "soft", "unnorm"), "optax.safe_softmax_cross_entropy", False, ("ls", *_LLM)),
    ("log_softmax", ("index", "onehot", "soft", "unnorm"), "-sum(labels * jax.nn.log_softmax(x))", False, _LLM),
    ("softmax_log", ("index", "onehot", "soft", "unnorm"), "-sum(labels * jnp.log(jax.nn.softmax(x)))", False, _LLM),
)
# what the written-out losses are fed (backends/base.py: Variant.takes); the optax ones take logits
_TAKES = {"log_softmax": "logprobs", "softmax_log": "probs"}


def _sharded_variants() -> list[Variant]:
    from xentcheck.backends.jax import sharded as jax_sharded
    return jax_sharded.variants()


class JaxBackend(Backend):
    name = "jax"
    framework = "jax"
    impl = "optax_sce_int"
    extra_dims = True  # optax and jax.nn take any leading dimensions, classes last
    float64_hint = "set JAX_ENABLE_X64=1 or jax.config.update('jax_enable_x64', True) for float64"

    def variants(self) -> list[Variant]:
        from xentcheck.backends.jax import distill as jax_distill
        from xentcheck.backends.jax import grpo as jax_grpo
        from xentcheck.backends.jax import lindistill as jax_lindistill
        from xentcheck.backends.jax import linear as jax_linear
        from xentcheck.backends.jax import rl as jax_rl
        return [Variant(i, m, lf, api if m == "eager" else f"jax.jit({api})", default=d and m == "eager", options=o,
                        takes=_TAKES.get(i, "logits"))
                for m in ("eager", "jit") for i, lf, api, d, o in _IMPLS] + jax_linear.variants() + jax_distill.variants() \
            + jax_rl.variants() + jax_grpo.variants() + jax_lindistill.variants() + _sharded_variants()

    def load(self) -> None:
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        import optax
        self.jax, self.jnp, self.optax = jax, jnp, optax
        self._jitted: dict = {}

    def release(self) -> None:
        self._jitted.clear()
        self.jax.clear_caches()  # jit's executables and eager mode's per-op programs

    def devices(self) -> list[str]:
        kinds = {d.platform for d in self.jax.devices()} | {"cpu"}
        return ["cpu"] + (["cuda"] if "gpu" in kinds or "cuda" in kinds else [])

    def settings(self) -> dict:
        from importlib.metadata import version
        # jax adds its options to Config at run time (add_option); its stub does not declare them
        config = self.jax.config
        return {"jax_enable_x64": bool(config.jax_enable_x64),  # type: ignore[attr-defined]
                "default_backend": self.jax.default_backend(), "optax": version("optax"),
                "jaxlib": version("jaxlib"), "devices": [str(d) for d in self.jax.devices()],
                "default_matmul_precision": str(config.jax_default_matmul_precision)}  # type: ignore[attr-defined]

    def _loss(self, impl: str, labels_form: str, reduction: str, smoothing: float = 0.0,
              llm: tuple[float | None, float | None, float | None] = (None, None, None)):
        """The loss function (x, labels) -> loss; `llm`: the case's (scale, softcap, zloss)."""
        jnp, optax, jax = self.jnp, self.optax, self.jax

        def _logp(impl, x):  # log_softmax, or the log of softmax's probabilities (log 0 = -inf where they underflow)
            return jax.nn.log_softmax(x, axis=-1) if impl == "log_softmax" else jnp.log(jax.nn.softmax(x, axis=-1))

        if impl == "optax_sce_int":
            rows = optax.softmax_cross_entropy_with_integer_labels
        elif impl == "optax_sce":
            rows = optax.softmax_cross_entropy
        elif impl == "optax_safe_sce":
            rows = optax.safe_softmax_cross_entropy
        elif labels_form == "index":
            def rows(x, t):
                return -jnp.take_along_axis(_logp(impl, x), t[..., None], axis=-1)[..., 0]
        else:
            def rows(x, q):
                return -jnp.sum(q * _logp(impl, x), axis=-1)
        reduce = {"mean": jnp.mean, "sum": jnp.sum, "none": lambda r: r}[reduction]
        if smoothing:
            plain = rows
            rows = lambda x, labels: plain(x, optax.smooth_labels(labels, smoothing))  # noqa: E731
        scale, softcap, zloss = llm
        if scale is None and softcap is None and zloss is None:
            return lambda x, labels: reduce(rows(x, labels))

        def fn(x, labels):
            if scale is not None:
                x = scale * x
            if softcap is not None:
                x = softcap * jnp.tanh(x / softcap)
            loss = rows(x, labels)
            if zloss is not None:
                loss = loss + zloss * jax.nn.logsumexp(x, axis=-1) ** 2
            return reduce(loss)

        return fn

    def _value_and_grad(self, variant: Variant, case: Case, smoothing: float = 0.0):
        """f(x, labels, cotangent=None) -> (loss, the VJP with the cotangent, ones when None)."""
        jax, jnp = self.jax, self.jnp
        key = (variant.impl, case.labels, case.reduction, variant.mode, smoothing, _llm(case))
        if key in self._jitted:
            return self._jitted[key]
        loss_fn = self._loss(variant.impl, case.labels, case.reduction, smoothing, _llm(case))

        def f(x, labels, cotangent=None):
            loss, pullback = jax.vjp(lambda v: loss_fn(v, labels), x)
            v = jnp.ones_like(loss) if cotangent is None else cotangent.astype(loss.dtype)
            return loss, pullback(v)[0]

        if variant.mode == "jit":
            f = self._jitted[key] = jax.jit(f)
        return f

    def _put(self, a: np.ndarray, device: str):
        dev = self.jax.devices("gpu" if device == "cuda" else "cpu")[0]
        return self.jax.device_put(self.jnp.asarray(a), dev)

    def run_variant(self, variant: Variant, case: Case, inputs: Inputs, device: str) -> Output:
        adapter = kind_adapter("jax", variant.kind)
        if adapter is not None:
            return adapter.run(self, variant, case, inputs, device)
        ct = None if inputs.cotangent is None else self._put(inputs.cotangent, device)
        loss, grad = self._value_and_grad(variant, case, inputs.smoothing)(self._put(inputs.logits, device),
                                                                          self._put(inputs.labels, device), ct)
        grad.block_until_ready()
        return Output(loss=np.asarray(loss), grad=np.asarray(grad), loss_dtype=loss.dtype.name, grad_dtype=grad.dtype.name)

    def timing_fns(self, variant: Variant, case: Case, inputs: Inputs, device: str) -> dict | None:
        if variant.kind != "ce":  # another kind's variant (linear-CE): forward+backward through run_variant
            return None
        jax, jnp = self.jax, self.jnp
        loss_fn = self._loss(variant.impl, case.labels, case.reduction, inputs.smoothing, _llm(case))
        x, labels = self._put(inputs.logits, device), self._put(inputs.labels, device)
        ct = None if inputs.cotangent is None else self._put(inputs.cotangent, device)
        loss, pullback = jax.vjp(lambda v: loss_fn(v, labels), x)  # the kept forward
        ones = jnp.ones_like(loss) if ct is None else ct.astype(loss.dtype)
        apply = lambda pb, ct: pb(ct)[0]  # noqa: E731  (the pullback is a pytree: jit takes it as an argument)
        fwd, bwd, both = loss_fn, apply, self._value_and_grad(variant, case)
        if variant.mode == "jit":
            fwd, bwd = jax.jit(loss_fn), jax.jit(apply)
        return {"forward": lambda: fwd(x, labels).block_until_ready(),
                "backward": lambda: bwd(pullback, ones).block_until_ready(),
                "forward_backward": lambda: jax.block_until_ready(both(x, labels, ct))}

    def compute(self, case: Case, inputs: Inputs, device: str) -> Output:
        v = next(v for v in self.variants() if case.labels in v.label_forms)
        return self.run_variant(v, case, inputs, device)

    def jvp(self, variant, case, inputs, device, tangent):
        loss_fn = self._loss(variant.impl, case.labels, case.reduction, inputs.smoothing, _llm(case))
        labels = self._put(inputs.labels, device)
        x = self._put(inputs.logits, device)
        _, out = self.jax.jvp(lambda v: loss_fn(v, labels), (x,), (self._put(tangent.astype(inputs.logits.dtype), device),))
        return np.asarray(out)

    def hvp(self, variant, case, inputs, device, vector):
        jax, jnp = self.jax, self.jnp
        loss_fn = self._loss(variant.impl, case.labels, case.reduction, inputs.smoothing, _llm(case))
        labels = self._put(inputs.labels, device)
        v = self._put(vector.astype(inputs.logits.dtype), device)
        grad = jax.grad(lambda x: jnp.sum(loss_fn(x, labels)))
        return np.asarray(jax.grad(lambda x: jnp.sum(grad(x) * v))(self._put(inputs.logits, device)))


def _llm(case: Case) -> tuple[float | None, float | None, float | None]:
    """The case's (logit scale, softcap, z-loss coefficient): None where the option is absent."""
    return case.logit_scale, case.softcap, case.zloss
