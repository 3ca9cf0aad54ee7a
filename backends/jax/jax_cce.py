"""jax-cce (PyPI `jax-cce`, pinned 0.1.0) as a linear-CE backend, run only when named
(`--backends jax-cce`; pip install 'xentcheck[jax-cce]'):

    jax_cce.linear_cross_entropy(x, w, labels, *, chunk_size=4096, filter_eps=None)

the mean over all rows of CE(x @ w.T, labels), the vocabulary processed in chunks of `chunk_size`
rows of w by lax.scan (online logsumexp in float32), its backward a custom_vjp that recomputes
each chunk's softmax as exp(logit - lse). No bias, ignore_index, smoothing or other reduction:
only mean cases (and scalar cotangents) run. Variants: chunk_size 4096 (its default) and 256
(several chunks at these cases' V), eagerly and under jax.jit; and, as a documented deviation,
filter_eps = -ln(eps(dtype) / 32) at chunk_size 256 (chunks whose largest logit is that far below
the row's are dropped from the gradient on purpose: cut-cross-entropy's default threshold).
Gradients by jax.vjp with the cotangent; float64 with jax_enable_x64 (the kernel still computes
in float32).
"""

from __future__ import annotations

import math

import numpy as np

from xentcheck.backends.base import Backend, Output, Variant
from xentcheck.core import dtypes
from xentcheck.core.cases import Case

INSTALL = "pip install 'xentcheck[jax-cce]' (jax-cce, next to jax)"
CALL = "jax_cce.linear_cross_entropy(h, W, y, chunk_size={chunk}{extra})"
FILTER_DOC = ("filter_eps = -ln(eps(dtype) / 32) drops on purpose the gradient of every vocabulary chunk whose "
              "largest logit is that far below the row's largest: approximate by design")


def filter_eps(dtype: str) -> float:
    """cut-cross-entropy's default threshold eps(dtype) / 32 on the softmax, as a logit gap."""
    return -math.log(2.0 ** (1 - dtypes.info(dtype).digits) / 32)


class JaxCCE(Backend):
    name = "jax-cce"
    framework = "jax-cce"
    label_forms = ("index",)

    def variants(self) -> list[Variant]:
        out = [Variant(f"jax_cce_c{c}", m, ("index",), api=CALL.format(chunk=c, extra="") if m == "eager" else
                       f"jax.jit({CALL.format(chunk=c, extra='')})", options=("ct",), kind="linear")
               for c in (4096, 256) for m in ("eager", "jit")]
        out.append(Variant("jax_cce_c256_filter", "jit", ("index",),
                           api="jax.jit(" + CALL.format(chunk=256, extra=", filter_eps=-ln(eps / 32)") + ")",
                           documented=FILTER_DOC, options=("ct",), kind="linear"))
        return out

    def load(self) -> None:
        try:
            import jax
            import jax_cce
        except ImportError as exc:
            raise ImportError(f"{exc}; {INSTALL}") from exc
        jax.config.update("jax_enable_x64", True)  # float64 inputs stay float64 up to the kernel
        self.jax, self.jax_cce = jax, jax_cce
        self._fns: dict = {}

    def devices(self) -> list[str]:
        kinds = {d.platform for d in self.jax.devices()}
        return ["cpu"] + (["cuda"] if "gpu" in kinds or "cuda" in kinds else [])

    def settings(self) -> dict:
        return {"jax": self.jax.__version__, "jax_enable_x64": True,
                "default_matmul_precision": str(self.jax.config.jax_default_matmul_precision)}  # type: ignore[attr-defined]

    def unsupported(self, case: Case, device: str) -> str | None:
        if not case.linear:
            return f"{self.name} computes linear-CE only (cases with a hidden size, ..._lin<D>_...)"
        if case.reduction != "mean":
            return f"jax-cce computes the mean only (reduction {case.reduction!r} not taken)"
        return super().unsupported(case, device)

    def _fn(self, variant: Variant, dtype: str):
        key = (variant.impl, variant.mode, dtype)
        if key not in self._fns:
            jax = self.jax
            chunk = int(variant.impl.split("_")[2][1:])  # jax_cce_c<chunk>[_filter]
            eps = filter_eps(dtype) if variant.impl.endswith("_filter") else None

            def f(h, w, y, ct):
                loss, pull = jax.vjp(lambda h_, w_: self.jax_cce.linear_cross_entropy(
                    h_, w_, y, chunk_size=chunk, filter_eps=eps), h, w)
                return loss, pull(ct.astype(loss.dtype))

            self._fns[key] = jax.jit(f) if variant.mode == "jit" else f
        return self._fns[key]

    def run_variant(self, variant: Variant, case: Case, inputs, device: str) -> Output:
        jax, jnp = self.jax, self.jax.numpy
        dev = jax.devices("gpu" if device == "cuda" else "cpu")[0]
        put = lambda a: jax.device_put(jnp.asarray(a), dev)  # noqa: E731
        ct = np.ones((), dtype=inputs.hidden.dtype) if inputs.cotangent is None else inputs.cotangent
        loss, (dh, dw) = self._fn(variant, case.dtype)(put(inputs.hidden), put(inputs.weight), put(inputs.labels),
                                                       put(ct))
        dh.block_until_ready()
        return Output(np.asarray(loss), grads={"dh": np.asarray(dh), "dw": np.asarray(dw)}, loss_dtype=loss.dtype.name,
                      grad_dtype=dh.dtype.name)
